// SPDX-License-Identifier: Apache-2.0
// The Telegram platform's outbound calls: sendMessage (Markdown as HTML, chunked, plain text
// when Telegram cannot parse the HTML), sendPhoto/sendDocument, sendChatAction,
// setMessageReaction; each waits out 429 retry_after for up to a minute and follows a group
// that became a supergroup.
// Runs in: worker (sandboxed)

#include <kj/debug.h>

#include <algorithm>
#include <charconv>

#include "format.h"
#include "telegram-platform.h"

namespace chitin::channel::telegram {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// sendPhoto takes images up to 10 MB; larger ones, and everything else, go as documents (bots
// may upload up to 50 MB).
constexpr size_t MAX_PHOTO_BYTES = 10u << 20;
constexpr size_t MAX_UPLOAD_BYTES = 50u << 20;

std::optional<int64_t> parseInt(const std::string& text) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

int64_t requireId(const std::string& text, const char* what) {
  auto id = parseInt(text);
  if (!id) throw ChannelError("\"" + text + "\" is not a Telegram " + what);
  return *id;
}

std::string messageIdOf(const ApiReply& reply, const std::string& method) {
  const json& r = reply.result;
  if (!r.is_object() || !r.contains("message_id") || !r["message_id"].is_number_integer()) {
    throw ChannelError(method + ": the answer has no message_id");
  }
  return std::to_string(r["message_id"].get<int64_t>());
}

bool refusedHtml(const ApiReply& reply) {
  std::string d = reply.description;
  std::transform(d.begin(), d.end(), d.begin(), [](unsigned char c) { return std::tolower(c); });
  return reply.errorCode == 400 && d.find("can't parse entities") != std::string::npos;
}

std::string failure(const ApiReply& reply, const std::string& method) {
  std::string text = reply.describe(method);
  if (reply.errorCode == 429) text += " (longer than the minute a send may wait)";
  return text;
}

bool isBlank(const std::string& s) { return s.find_first_not_of(" \t\r\n") == std::string::npos; }

}  // namespace

ApiReply TelegramPlatform::callWaiting(const std::string& method, json& params, Deadline deadline) {
  for (int migrated = 0;;) {
    ApiReply reply = sendApi_.call(method, params);
    if (reply.ok) return reply;
    if (reply.errorCode == 429) {
      auto wait =
          std::chrono::seconds(std::clamp<int64_t>(reply.retryAfterSeconds.value_or(1), 1, 3600));
      if (Clock::now() + wait > deadline) return reply;
      if (!host_.sleepFor(wait)) throw Stopping{};
      continue;
    }
    if (reply.migrateToChatId && params.contains("chat_id") && migrated++ < 2) {
      recordMigration(params["chat_id"].get<int64_t>(), *reply.migrateToChatId);
      params["chat_id"] = *reply.migrateToChatId;
      continue;
    }
    return reply;
  }
}

std::vector<std::string> TelegramPlatform::send(const Outbound& message) {
  int64_t chat = resolveChat(message.chatId);
  std::optional<int64_t> replyTo, thread;
  if (!message.replyTo.empty()) replyTo = requireId(message.replyTo, "message id");
  if (!message.threadId.empty()) thread = requireId(message.threadId, "thread id");
  if (isBlank(message.text) && message.attachments.empty()) {
    throw ChannelError("nothing to send: no text and no attachment");
  }
  Deadline deadline = Clock::now() + MAX_RATE_LIMIT_WAIT;
  std::vector<std::string> ids;
  // Entity parsing removes the markup, so a chunk of at most 4096 UTF-16 units of Markdown is
  // at most 4096 once Telegram has parsed its HTML, and as plain text too.
  for (const std::string& piece : chunkText(message.text, MAX_MESSAGE_UTF16, Unit::UTF16)) {
    std::string plain = convertMarkdown(piece, Format::PLAIN);
    if (isBlank(plain)) continue;  // markup only ("```\n```"): Telegram refuses empty text
    json params = {{"chat_id", chat},
                   {"text", convertMarkdown(piece, Format::TELEGRAM_HTML)},
                   {"parse_mode", "HTML"}};
    if (replyTo && ids.empty()) {
      params["reply_parameters"] = {{"message_id", *replyTo},
                                    {"allow_sending_without_reply", true}};
    }
    if (thread) params["message_thread_id"] = *thread;
    ApiReply reply = callWaiting("sendMessage", params, deadline);
    if (!reply.ok && refusedHtml(reply)) {
      // Our HTML should always parse; if Telegram disagrees, the words still get through.
      KJ_LOG(WARNING, "telegram refused the converted HTML; sending plain text", reply.description);
      params.erase("parse_mode");
      params["text"] = plain;
      reply = callWaiting("sendMessage", params, deadline);
    }
    if (!reply.ok) throw ChannelError(failure(reply, "sendMessage"));
    chat = params["chat_id"].get<int64_t>();
    ids.push_back(messageIdOf(reply, "sendMessage"));
  }
  for (const Attachment& attachment : message.attachments) {
    ids.push_back(sendAttachment(chat, attachment, message, replyTo && ids.empty(), deadline));
  }
  return ids;
}

std::string TelegramPlatform::sendAttachment(int64_t& chat, const Attachment& attachment,
                                             const Outbound& message, bool reply,
                                             Deadline deadline) {
  std::string name = attachment.name.empty() ? "file" : attachment.name;
  if (attachment.data.empty()) throw ChannelError("attachment \"" + name + "\" is empty");
  if (attachment.data.size() > MAX_UPLOAD_BYTES) {
    throw ChannelError("attachment \"" + name + "\" is larger than the 50 MB a bot may upload");
  }
  const std::string& type = attachment.mimeType;
  bool photo = (type == "image/jpeg" || type == "image/png" || type == "image/webp") &&
               attachment.data.size() <= MAX_PHOTO_BYTES;
  for (int migrated = 0;;) {
    std::string method = photo ? "sendPhoto" : "sendDocument";
    std::vector<HttpPart> parts;
    parts.push_back({"chat_id", std::to_string(chat), "", ""});
    if (reply) {
      json parameters = {{"message_id", requireId(message.replyTo, "message id")},
                         {"allow_sending_without_reply", true}};
      parts.push_back({"reply_parameters", parameters.dump(), "", ""});
    }
    if (!message.threadId.empty()) parts.push_back({"message_thread_id", message.threadId, "", ""});
    parts.push_back({photo ? "photo" : "document", attachment.data, name,
                     type.empty() ? "application/octet-stream" : type});
    ApiReply answer = sendApi_.upload(method, parts);
    if (answer.ok) return messageIdOf(answer, method);
    if (answer.errorCode == 429) {
      auto wait =
          std::chrono::seconds(std::clamp<int64_t>(answer.retryAfterSeconds.value_or(1), 1, 3600));
      if (Clock::now() + wait > deadline) throw ChannelError(failure(answer, method));
      if (!host_.sleepFor(wait)) throw Stopping{};
      continue;
    }
    if (answer.migrateToChatId && migrated++ < 2) {
      recordMigration(chat, *answer.migrateToChatId);
      chat = *answer.migrateToChatId;
      continue;
    }
    if (photo && answer.errorCode == 400) {
      // An image Telegram will not show as a photo (dimensions, format) still goes, as a file.
      photo = false;
      continue;
    }
    throw ChannelError(failure(answer, method) + " (attachment \"" + name + "\")");
  }
}

void TelegramPlatform::typing(const std::string& chatId, bool on) {
  // Telegram shows "typing" for about 5 s or until the next message; there is nothing to stop.
  if (!on) return;
  json params = {{"chat_id", resolveChat(chatId)}, {"action", "typing"}};
  ApiReply reply = callWaiting("sendChatAction", params, Clock::now() + MAX_RATE_LIMIT_WAIT);
  if (!reply.ok) throw ChannelError(failure(reply, "sendChatAction"));
}

void TelegramPlatform::react(const std::string& chatId, const std::string& messageId,
                             const std::string& emoji) {
  json reaction = json::array();
  if (!emoji.empty()) reaction.push_back({{"type", "emoji"}, {"emoji", emoji}});
  json params = {{"chat_id", resolveChat(chatId)},
                 {"message_id", requireId(messageId, "message id")},
                 {"reaction", reaction}};
  ApiReply reply = callWaiting("setMessageReaction", params, Clock::now() + MAX_RATE_LIMIT_WAIT);
  if (!reply.ok) throw ChannelError(failure(reply, "setMessageReaction"));
}

}  // namespace chitin::channel::telegram
