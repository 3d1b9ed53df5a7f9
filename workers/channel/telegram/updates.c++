// SPDX-License-Identifier: Apache-2.0
// Telegram Message objects read into Inbound (see updates.h).
// Runs in: worker (sandboxed)

#include "updates.h"

#include <algorithm>
#include <cctype>

namespace chitin::channel::telegram {

namespace {

using nlohmann::json;

const json* field(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::optional<int64_t> integer(const json& object, const char* key) {
  const json* v = field(object, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_number_integer() && !(v->is_number_unsigned() && v->get<uint64_t>() > INT64_MAX)) {
    return v->get<int64_t>();
  }
  return std::nullopt;
}

std::string text(const json& object, const char* key) {
  const json* v = field(object, key);
  return v != nullptr && v->is_string() ? v->get<std::string>() : "";
}

bool flag(const json& object, const char* key) {
  const json* v = field(object, key);
  return v != nullptr && v->is_boolean() && v->get<bool>();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// The bytes of the UTF-8 sequence at s[i] (1 for a byte that starts none).
size_t sequenceLength(std::string_view s, size_t i) {
  auto b = static_cast<unsigned char>(s[i]);
  size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xe ? 3 : (b >> 3) == 0x1e ? 4 : 1;
  return i + n <= s.size() ? n : 1;
}

std::optional<FileRef> fileOf(const json& m, const char* key, const char* defaultName,
                              const char* defaultType) {
  const json* f = field(m, key);
  if (f == nullptr) return std::nullopt;
  if (std::string(key) == "photo") {
    // PhotoSize[]: the largest stated size (the last one when sizes are not stated).
    if (!f->is_array() || f->empty()) return std::nullopt;
    const json* best = nullptr;
    int64_t bestSize = -1;
    for (auto& size : *f) {
      int64_t stated = integer(size, "file_size").value_or(0);
      int64_t area = integer(size, "width").value_or(0) * integer(size, "height").value_or(0);
      int64_t rank = stated > 0 ? stated : area;
      if (rank >= bestSize && !text(size, "file_id").empty()) {
        best = &size;
        bestSize = rank;
      }
    }
    if (best == nullptr) return std::nullopt;
    f = best;
  }
  std::string id = text(*f, "file_id");
  if (id.empty()) return std::nullopt;
  FileRef ref;
  ref.fileId = id;
  ref.name = text(*f, "file_name");
  if (ref.name.empty()) ref.name = defaultName;
  ref.mimeType = text(*f, "mime_type");
  if (ref.mimeType.empty()) ref.mimeType = defaultType;
  ref.size = static_cast<uint64_t>(std::max<int64_t>(0, integer(*f, "file_size").value_or(0)));
  return ref;
}

bool addressesBot(const json& m, const std::string& body, const BotIdentity& bot) {
  std::string handle = "@" + lower(bot.username);
  const json* entities = field(m, "entities");
  if (entities == nullptr) entities = field(m, "caption_entities");
  if (entities != nullptr && entities->is_array()) {
    for (auto& e : *entities) {
      std::string type = text(e, "type");
      auto offset = integer(e, "offset"), length = integer(e, "length");
      if (!offset || !length) continue;
      if (type == "text_mention") {
        const json* user = field(e, "user");
        if (user != nullptr && integer(*user, "id") == bot.id) return true;
        continue;
      }
      if (type != "mention" && type != "bot_command") continue;
      auto slice = utf16Slice(body, *offset, *length);
      if (!slice || bot.username.empty()) continue;
      std::string s = lower(*slice);
      if (type == "mention" && s == handle) return true;
      // "/start@chitin_bot" is addressed to this bot.
      if (type == "bot_command" && s.size() > handle.size() &&
          s.compare(s.size() - handle.size(), handle.size(), handle) == 0) {
        return true;
      }
    }
  }
  // A reply to one of the bot's own messages.
  const json* reply = field(m, "reply_to_message");
  if (reply != nullptr) {
    const json* from = field(*reply, "from");
    if (from != nullptr && integer(*from, "id") == bot.id) return true;
  }
  return false;
}

}  // namespace

std::optional<std::string> utf16Slice(std::string_view s, int64_t offset, int64_t length) {
  if (offset < 0 || length < 0) return std::nullopt;
  int64_t units = 0;
  std::optional<size_t> begin, end;
  for (size_t i = 0;;) {
    if (units == offset && !begin) begin = i;
    if (units == offset + length && begin) {
      end = i;
      break;
    }
    if (i >= s.size() || units > offset + length) break;
    size_t n = sequenceLength(s, i);
    units += n == 4 ? 2 : 1;
    i += n;
  }
  if (!begin || !end) return std::nullopt;
  return std::string(s.substr(*begin, *end - *begin));
}

std::optional<std::pair<int64_t, int64_t>> migrationIn(const json& m) {
  const json* chat = field(m, "chat");
  if (chat == nullptr) return std::nullopt;
  auto chatId = integer(*chat, "id");
  if (!chatId) return std::nullopt;
  if (auto to = integer(m, "migrate_to_chat_id")) return std::make_pair(*chatId, *to);
  if (auto from = integer(m, "migrate_from_chat_id")) return std::make_pair(*from, *chatId);
  return std::nullopt;
}

std::optional<ParsedMessage> parseMessage(const json& m, const BotIdentity& bot, std::string& why) {
  auto messageId = integer(m, "message_id");
  const json* chat = field(m, "chat");
  auto chatId = chat != nullptr ? integer(*chat, "id") : std::nullopt;
  std::string chatType = chat != nullptr ? text(*chat, "type") : "";
  if (!messageId || !chatId || chatType.empty()) {
    why = "malformed message (no message_id or chat)";
    return std::nullopt;
  }
  bool group = chatType == "group" || chatType == "supergroup";
  if (!group && chatType != "private") {
    why = "a " + chatType + " message";
    return std::nullopt;
  }
  const json* from = field(m, "from");
  auto senderId = from != nullptr ? integer(*from, "id") : std::nullopt;
  if (!senderId) {
    why = "no sender";
    return std::nullopt;
  }
  if (flag(*from, "is_bot")) {
    why = "from a bot";
    return std::nullopt;
  }

  ParsedMessage parsed;
  Inbound& in = parsed.message;
  in.text = text(m, "text");
  if (in.text.empty()) in.text = text(m, "caption");  // a photo's or a file's words
  struct Kind {
    const char* key;
    const char* name;
    const char* type;
  };
  for (const Kind& kind :
       {Kind{"photo", "photo.jpg", "image/jpeg"},
        Kind{"document", "document", "application/octet-stream"},
        Kind{"voice", "voice.ogg", "audio/ogg"}, Kind{"audio", "audio.mp3", "audio/mpeg"},
        Kind{"video", "video.mp4", "video/mp4"}, Kind{"video_note", "video_note.mp4", "video/mp4"},
        Kind{"animation", "animation.mp4", "video/mp4"}}) {
    if (auto file = fileOf(m, kind.key, kind.name, kind.type)) parsed.files.push_back(*file);
  }
  if (in.text.empty() && parsed.files.empty()) {
    why = "no text and no file (a service message or an unsupported kind)";
    return std::nullopt;
  }

  in.chatId = std::to_string(*chatId);
  in.group = group;
  in.senderId = std::to_string(*senderId);
  std::string first = text(*from, "first_name"), last = text(*from, "last_name");
  in.senderName = last.empty() ? first : first.empty() ? last : first + " " + last;
  if (in.senderName.empty()) in.senderName = text(*from, "username");
  in.messageId = std::to_string(*messageId);
  if (const json* reply = field(m, "reply_to_message")) {
    if (auto id = integer(*reply, "message_id")) in.replyTo = std::to_string(*id);
  }
  if (flag(m, "is_topic_message")) {
    if (auto thread = integer(m, "message_thread_id")) in.threadId = std::to_string(*thread);
  }
  // Seconds since the epoch; clamped so that a hostile value cannot overflow.
  in.timestampMs = std::clamp<int64_t>(integer(m, "date").value_or(0), 0, INT64_MAX / 1000) * 1000;
  in.mentioned = group && addressesBot(m, in.text, bot);
  return parsed;
}

}  // namespace chitin::channel::telegram
