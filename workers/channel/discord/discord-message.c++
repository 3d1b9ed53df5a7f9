// SPDX-License-Identifier: Apache-2.0
// Discord's MESSAGE_CREATE dispatch as a chitin Inbound (see discord-message.h).
// Runs in: worker (sandboxed)

#include "discord-message.h"

#include <charconv>

namespace chitin::channel::discord {
namespace {

constexpr int64_t DISCORD_EPOCH_MS = 1420070400000;
constexpr size_t MAX_ATTACHMENTS = 10;  // Discord's own limit per message

// Message types a person writes: DEFAULT and REPLY. The rest are system notices.
bool writtenByAPerson(const Json& d) {
  auto type = intField(d, "type");
  return !type || *type == 0 || *type == 19;
}

bool mentionsUs(const Json& d, const std::string& selfId) {
  const Json* mentions = field(d, "mentions");
  if (mentions != nullptr && mentions->is_array()) {
    for (const auto& user : *mentions) {
      if (textField(user, "id") == selfId) return true;
    }
  }
  // A reply to one of our messages addresses us as well.
  const Json* referenced = field(d, "referenced_message");
  if (referenced != nullptr) {
    const Json* author = field(*referenced, "author");
    if (author != nullptr && textField(*author, "id") == selfId) return true;
  }
  return false;
}

// "<@ID> hi" reads "@chitin hi" for the model; the raw form is noise.
std::string readableMentions(std::string text, const Self& self) {
  for (const std::string& raw : {"<@" + self.id + ">", "<@!" + self.id + ">"}) {
    for (size_t at = text.find(raw); at != std::string::npos; at = text.find(raw, at)) {
      text.replace(at, raw.size(), "@" + self.name);
      at += self.name.size() + 1;
    }
  }
  return text;
}

}  // namespace

bool isSnowflake(std::string_view id) {
  if (id.empty() || id.size() > 20) return false;
  for (char c : id) {
    if (c < '0' || c > '9') return false;
  }
  uint64_t value = 0;
  auto result = std::from_chars(id.data(), id.data() + id.size(), value);
  return result.ec == std::errc() && result.ptr == id.data() + id.size();
}

int64_t snowflakeMs(std::string_view id) {
  if (!isSnowflake(id)) return 0;
  uint64_t value = 0;
  std::from_chars(id.data(), id.data() + id.size(), value);
  return static_cast<int64_t>(value >> 22) + DISCORD_EPOCH_MS;
}

std::optional<Message> parseMessageCreate(const Json& d, const Self& self, std::string& skipped) {
  const Json* author = field(d, "author");
  std::string id = textField(d, "id");
  std::string channel = textField(d, "channel_id");
  if (author == nullptr || !isSnowflake(id) || !isSnowflake(channel)) {
    skipped = "a message without id, channel_id or author";
    return std::nullopt;
  }
  std::string authorId = textField(*author, "id");
  if (!isSnowflake(authorId)) {
    skipped = "a message whose author has no id";
    return std::nullopt;
  }
  if (authorId == self.id) {
    skipped = "our own message";
    return std::nullopt;
  }
  // Other bots and webhooks are skipped: two assistants answering each other would loop.
  if (boolField(*author, "bot") || field(d, "webhook_id") != nullptr) {
    skipped = "a bot's or webhook's message";
    return std::nullopt;
  }
  if (!writtenByAPerson(d)) {
    skipped = "a system message";
    return std::nullopt;
  }

  Message out;
  Inbound& in = out.inbound;
  in.chatId = channel;
  in.group = field(d, "guild_id") != nullptr;  // no guild: a direct message
  in.senderId = authorId;
  const Json* member = field(d, "member");
  std::string nick = member != nullptr ? textField(*member, "nick") : "";
  std::string global = textField(*author, "global_name");
  in.senderName = !nick.empty() ? nick : !global.empty() ? global : textField(*author, "username");
  in.messageId = id;
  in.text = readableMentions(textField(d, "content"), self);
  in.mentioned = in.group && mentionsUs(d, self.id);
  const Json* reference = field(d, "message_reference");
  if (reference != nullptr) {
    std::string replyTo = textField(*reference, "message_id");
    if (isSnowflake(replyTo)) in.replyTo = replyTo;
  }
  in.timestampMs = snowflakeMs(id);

  const Json* attachments = field(d, "attachments");
  if (attachments != nullptr && attachments->is_array()) {
    for (const auto& a : *attachments) {
      if (out.files.size() == MAX_ATTACHMENTS) break;
      AttachmentRef ref;
      ref.name = textField(a, "filename");
      ref.mimeType = textField(a, "content_type");
      if (ref.mimeType.empty()) ref.mimeType = "application/octet-stream";
      ref.url = textField(a, "url");
      auto size = intField(a, "size");
      ref.size = size && *size > 0 ? static_cast<uint64_t>(*size) : 0;
      if (ref.name.empty()) ref.name = "attachment";
      out.files.push_back(std::move(ref));
    }
  }
  return out;
}

}  // namespace chitin::channel::discord
