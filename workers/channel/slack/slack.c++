// SPDX-License-Identifier: Apache-2.0
// The Slack channel: settings, and the outbound side (mrkdwn messages, threads, reactions,
// the three-step file upload) over the Web API (see slack.h).
// Runs in: worker (sandboxed)

#include "slack.h"

#include "format.h"
#include "slack-api.h"
#include "slack-event.h"
#include "slack-socket.h"
#include "utf8.h"

namespace chitin::channel::slack {
namespace {

// Slack cuts a message at 40,000 characters and advises staying under 4,000. Chunks are cut
// before the mrkdwn conversion, which escapes &, < and > and so may lengthen them.
constexpr size_t MAX_MESSAGE_CHARS = 4000;

void requireId(const std::string& id, const char* what) {
  if (!isSlackId(id)) {
    throw ChannelError(std::string("Slack ") + what + " must be an id like C0123ABCD, not \"" +
                       clipUtf8(id, 40) + "\"");
  }
}

void requireTs(const std::string& ts, const char* what) {
  if (!isTs(ts)) {
    throw ChannelError(std::string("Slack ") + what +
                       " must be a message ts like "
                       "1712345678.123456, not \"" +
                       clipUtf8(ts, 40) + "\"");
  }
}

class SlackPlatform : public Platform {
 public:
  SlackPlatform(SocketConfig config, bool threadReplies, Host& host)
      : api_(config.apiRoot, config.tokens, config.egressSocket, host),
        socket_(std::move(config), host),
        threadReplies_(threadReplies) {}

  Capabilities capabilities() const override {
    Capabilities c;
    c.maxMessageChars = MAX_MESSAGE_CHARS;
    c.reactions = true;
    c.typing = false;  // Slack offers bots no typing indicator
    c.attachments = true;
    return c;
  }

  void run(Host&) override { socket_.run(); }

  void interrupt() override {
    socket_.interrupt();
    api_.interrupt();
  }

  std::vector<std::string> send(const Outbound& message) override {
    requireId(message.chatId, "channel");
    std::string thread = message.threadId;
    if (thread.empty() && threadReplies_ && !message.replyTo.empty() && message.chatId[0] != 'D') {
      thread = message.replyTo;
    }
    if (!thread.empty()) requireTs(thread, "thread");
    std::vector<std::string> ids;
    for (const auto& chunk : chunkText(message.text, MAX_MESSAGE_CHARS, Unit::CODE_POINTS)) {
      // Slack refuses a message of blanks (no_text).
      if (chunk.find_first_not_of(" \t\r\n") == std::string::npos) continue;
      Json args = {{"channel", message.chatId},
                   {"text", convertMarkdown(chunk, Format::SLACK_MRKDWN)},
                   {"mrkdwn", true}};
      if (!thread.empty()) args["thread_ts"] = thread;
      ids.push_back(textField(api_.call("chat.postMessage", args), "ts"));
    }
    for (const auto& file : message.attachments)
      ids.push_back(upload(message.chatId, thread, file));
    if (ids.empty()) throw ChannelError("nothing to send: no text and no attachment");
    return ids;
  }

  void typing(const std::string&, bool) override {}  // none for bots (capabilities say so)

  void react(const std::string& chatId, const std::string& messageId,
             const std::string& emoji) override {
    requireId(chatId, "channel");
    requireTs(messageId, "message");
    try {
      api_.call("reactions.add",
                {{"channel", chatId}, {"timestamp", messageId}, {"name", emojiName(emoji)}});
    } catch (const ApiError& e) {
      if (e.code() != "already_reacted") throw;  // the reaction is there: what was asked
    }
  }

 private:
  // Slack's three steps: ask for an upload URL, POST the bytes there, then complete the
  // upload into the channel (and thread). Returns the file id.
  std::string upload(const std::string& channel, const std::string& thread,
                     const Attachment& file) {
    std::string name = file.name.empty() ? "file" : file.name;
    if (file.data.empty())
      throw ChannelError("Slack cannot take an empty file (" + clipUtf8(name, 80) + ")");
    Json slot = api_.call("files.getUploadURLExternal",
                          {{"filename", name}, {"length", std::to_string(file.data.size())}}, true);
    std::string url = textField(slot, "upload_url");
    std::string fileId = textField(slot, "file_id");
    if (url.empty() || fileId.empty()) {
      throw ChannelError("Slack files.getUploadURLExternal gave no upload_url or file_id");
    }
    api_.upload(url, file.data, name);
    Json complete = {{"files", Json::array({{{"id", fileId}, {"title", name}}})},
                     {"channel_id", channel}};
    if (!thread.empty()) complete["thread_ts"] = thread;
    api_.call("files.completeUploadExternal", complete, true);
    return fileId;
  }

  Api api_;  // the outbound thread's
  Socket socket_;
  bool threadReplies_;
};

}  // namespace

std::unique_ptr<Platform> makeSlack(Settings& settings, Host& host) {
  SocketConfig config;
  config.apiRoot = settings.take("apiRoot", "https://slack.com/api");
  while (!config.apiRoot.empty() && config.apiRoot.back() == '/') config.apiRoot.pop_back();
  bool plain = config.apiRoot.rfind("http://", 0) == 0;
  if (!plain && config.apiRoot.rfind("https://", 0) != 0) {
    throw ChannelError("slack option apiRoot: expected an https:// URL, got \"" +
                       clipUtf8(config.apiRoot, 80) + "\"");
  }
  bool threadReplies = settings.takeBool("threadReplies", false);
  settings.finish();
  config.tokens = parseTokens(settings.credential);
  config.egressSocket = settings.egressSocket;
  config.maxAttachmentBytes = settings.maxAttachmentBytes;
  config.allowPlainWs = plain;
  if (!settings.stateDir.empty()) config.journalDir = settings.stateDir + "/slack-events";
  return std::make_unique<SlackPlatform>(std::move(config), threadReplies, host);
}

}  // namespace chitin::channel::slack
