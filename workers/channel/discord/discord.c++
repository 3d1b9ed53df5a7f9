// SPDX-License-Identifier: Apache-2.0
// The Discord channel: settings, and the outbound side (messages in 2000-character chunks,
// files, typing, reactions) over REST (see discord.h).
// Runs in: worker (sandboxed)

#include "discord.h"

#include <map>

#include "discord-gateway.h"
#include "discord-message.h"
#include "discord-rest.h"
#include "format.h"
#include "utf8.h"

namespace chitin::channel::discord {
namespace {

constexpr size_t MAX_MESSAGE_CHARS = 2000;  // Discord's limit on `content`, in code points

// Discord lets a message ping @everyone, @here and roles; what the model writes must not. Users
// it names (and the person it replies to) may still be mentioned.
const Json ALLOWED_MENTIONS = {{"parse", Json::array({"users"})}, {"replied_user", true}};

void requireSnowflake(const std::string& id, const char* what) {
  if (!isSnowflake(id)) {
    throw ChannelError(std::string("Discord ") + what + " must be a numeric id, not \"" +
                       clipUtf8(id, 40) + "\"");
  }
}

uint32_t parseIntents(const std::string& text) {
  uint32_t intents = 0;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string name =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    if (name == "guilds") {
      intents |= INTENT_GUILDS;
    } else if (name == "guild_messages") {
      intents |= INTENT_GUILD_MESSAGES;
    } else if (name == "direct_messages") {
      intents |= INTENT_DIRECT_MESSAGES;
    } else if (name == "message_content") {
      intents |= INTENT_MESSAGE_CONTENT;
    } else {
      throw ChannelError("discord option intents: unknown intent \"" + clipUtf8(name, 40) +
                         "\" (expected guilds, guild_messages, direct_messages, message_content)");
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return intents;
}

// The credential file holds the token, perhaps with a trailing newline or a "Bot " prefix.
std::string tokenFrom(const std::string& credential) {
  std::string token = credential;
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' ')) {
    token.pop_back();
  }
  if (token.rfind("Bot ", 0) == 0) token.erase(0, 4);
  bool clean = !token.empty() && token.size() <= 200;
  for (char c : token) clean = clean && c > ' ' && c < 0x7f;
  if (!clean) throw ChannelError("the Discord credential must be the bot token, on one line");
  return token;
}

class DiscordPlatform : public Platform {
 public:
  DiscordPlatform(GatewayConfig config, Host& host)
      : rest_(config.apiRoot, config.token, config.egressSocket, host),
        gateway_(std::move(config), host) {}

  Capabilities capabilities() const override {
    Capabilities c;
    c.maxMessageChars = MAX_MESSAGE_CHARS;
    c.reactions = c.typing = c.attachments = true;
    return c;
  }

  void run(Host&) override { gateway_.run(); }

  void interrupt() override {
    gateway_.interrupt();
    rest_.interrupt();
  }

  std::vector<std::string> send(const Outbound& message) override {
    requireSnowflake(message.chatId, "chat id");
    if (!message.replyTo.empty()) requireSnowflake(message.replyTo, "reply-to message id");
    auto dm = dmChannels_.find(message.chatId);
    if (dm != dmChannels_.end()) return sendTo(dm->second, message);
    try {
      return sendTo(message.chatId, message);
    } catch (const ApiError& e) {
      // A person's user id is no channel (the message tool may name one): open the DM with
      // them and post there. Nothing was posted yet: Discord refused the first request.
      if (e.code() != UNKNOWN_CHANNEL) throw;
      Json open = {{"recipient_id", message.chatId}};
      std::string channel = textField(
          rest_.call("POST", "/users/@me/channels", "POST /users/@me/channels", &open), "id");
      requireSnowflake(channel, "DM channel id");
      if (dmChannels_.size() >= 1024) dmChannels_.clear();
      dmChannels_[message.chatId] = channel;
      return sendTo(channel, message);
    }
  }

 private:
  std::vector<std::string> sendTo(const std::string& channel, const Outbound& message) {
    std::string path = "/channels/" + channel + "/messages";
    std::string route = "POST " + path;
    std::vector<std::string> ids;
    // Discord renders Markdown itself: converted (a no-op for most text), then cut.
    std::string text = convertMarkdown(message.text, Format::DISCORD_MARKDOWN);
    for (const auto& chunk : chunkText(text, MAX_MESSAGE_CHARS, Unit::CODE_POINTS)) {
      // Discord refuses a message of blanks ("Cannot send an empty message").
      if (chunk.find_first_not_of(" \t\r\n") == std::string::npos) continue;
      Json body = {{"content", chunk}, {"allowed_mentions", ALLOWED_MENTIONS}};
      addReply(body, message, ids);
      ids.push_back(textField(rest_.call("POST", path, route, &body), "id"));
    }
    // One message per file, so each id names what it carries.
    for (const auto& file : message.attachments) {
      std::string name = file.name.empty() ? "file" : file.name;
      Json payload = {{"attachments", Json::array({{{"id", 0}, {"filename", name}}})},
                      {"allowed_mentions", ALLOWED_MENTIONS}};
      addReply(payload, message, ids);
      std::vector<HttpPart> parts;
      parts.push_back({"payload_json", payload.dump(-1, ' ', false, Json::error_handler_t::replace),
                       "", "application/json"});
      parts.push_back({"files[0]", file.data, name,
                       file.mimeType.empty() ? "application/octet-stream" : file.mimeType});
      ids.push_back(textField(rest_.call("POST", path, route, nullptr, std::move(parts)), "id"));
    }
    if (ids.empty()) throw ChannelError("nothing to send: no text and no attachment");
    return ids;
  }

 public:
  void typing(const std::string& chatId, bool on) override {
    // Discord's indicator lasts ~10 s or until we post; there is nothing to turn off.
    if (!on) return;
    requireSnowflake(chatId, "chat id");
    std::string path = "/channels/" + chatId + "/typing";
    rest_.call("POST", path, "POST " + path);
  }

  void react(const std::string& chatId, const std::string& messageId,
             const std::string& emoji) override {
    requireSnowflake(chatId, "chat id");
    requireSnowflake(messageId, "message id");
    if (emoji.empty() || emoji.size() > 100 ||
        !isValidUtf8(kj::ArrayPtr<const char>(emoji.data(), emoji.size()))) {
      throw ChannelError("Discord reaction: expected one emoji (or name:id of a custom one)");
    }
    // A unicode emoji travels percent-encoded in the path; a custom one as name:id.
    std::string path = "/channels/" + chatId + "/messages/" + messageId + "/reactions/" +
                       percentEncode(emoji) + "/@me";
    rest_.call("PUT", path, "PUT /channels/" + chatId + "/messages/reactions");
  }

 private:
  // The first thing posted answers the message it replies to; the rest follow it.
  static void addReply(Json& body, const Outbound& message, const std::vector<std::string>& ids) {
    if (message.replyTo.empty() || !ids.empty()) return;
    body["message_reference"] = {{"message_id", message.replyTo}, {"fail_if_not_exists", false}};
  }

  Rest rest_;  // the outbound thread's
  Gateway gateway_;
  std::map<std::string, std::string> dmChannels_;  // user id -> our DM channel with them
};

}  // namespace

std::unique_ptr<Platform> makeDiscord(Settings& settings, Host& host) {
  GatewayConfig config;
  config.apiRoot = settings.take("apiRoot", "https://discord.com/api/v10");
  while (!config.apiRoot.empty() && config.apiRoot.back() == '/') config.apiRoot.pop_back();
  bool plain = config.apiRoot.rfind("http://", 0) == 0;
  if (!plain && config.apiRoot.rfind("https://", 0) != 0) {
    throw ChannelError("discord option apiRoot: expected an https:// URL, got \"" +
                       clipUtf8(config.apiRoot, 80) + "\"");
  }
  config.gatewayUrl = settings.take("gatewayUrl");
  if (!config.gatewayUrl.empty() && config.gatewayUrl.rfind("wss://", 0) != 0 &&
      !(plain && config.gatewayUrl.rfind("ws://", 0) == 0)) {
    throw ChannelError(
        "discord option gatewayUrl: expected a wss:// URL (ws:// only with an "
        "http:// apiRoot)");
  }
  if (!config.gatewayUrl.empty()) parseWebSocketUrl(config.gatewayUrl);  // names what is wrong
  config.intents = parseIntents(
      settings.take("intents", "guilds,guild_messages,direct_messages,message_content"));
  settings.finish();
  config.token = tokenFrom(settings.credential);
  config.egressSocket = settings.egressSocket;
  config.sessionFile = settings.stateDir.empty() ? "" : settings.stateDir + "/discord-session.json";
  config.maxAttachmentBytes = settings.maxAttachmentBytes;
  config.allowPlainWs = plain;
  return std::make_unique<DiscordPlatform>(std::move(config), host);
}

}  // namespace chitin::channel::discord
