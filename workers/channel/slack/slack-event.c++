// SPDX-License-Identifier: Apache-2.0
// Slack's events as chitin Inbounds, dedupe memory, ids and emoji names (see slack-event.h).
// Runs in: worker (sandboxed)

#include "slack-event.h"

#include <cstdlib>
#include <map>

#include "utf8.h"

namespace chitin::channel::slack {
namespace {

constexpr size_t MAX_FILES = 10;

// Slack escapes exactly these three in message text.
std::string unescape(std::string text) {
  static const std::pair<std::string, std::string> ENTITIES[] = {
      {"&lt;", "<"}, {"&gt;", ">"}, {"&amp;", "&"}};
  for (const auto& [from, to] : ENTITIES) {
    for (size_t at = text.find(from); at != std::string::npos;
         at = text.find(from, at + to.size())) {
      text.replace(at, from.size(), to);
    }
  }
  return text;
}

}  // namespace

bool isSlackId(std::string_view id) {
  if (id.size() < 2 || id.size() > 40) return false;
  for (char c : id) {
    if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

bool isTs(std::string_view ts) {
  size_t dot = ts.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 12 || ts.size() - dot - 1 == 0 ||
      ts.size() - dot - 1 > 9) {
    return false;
  }
  for (size_t i = 0; i < ts.size(); ++i) {
    if (i != dot && (ts[i] < '0' || ts[i] > '9')) return false;
  }
  return true;
}

int64_t tsMs(std::string_view ts) {
  if (!isTs(ts)) return 0;
  std::string text(ts);
  return static_cast<int64_t>(std::strtod(text.c_str(), nullptr) * 1000.0);
}

bool RecentSet::insert(const std::string& key) {
  if (!keys_.insert(key).second) return false;
  order_.push_back(key);
  if (order_.size() > capacity_) {
    keys_.erase(order_.front());
    order_.pop_front();
  }
  return true;
}

std::optional<Event> parseEvent(const Json& event, const Self& self, std::string& skipped) {
  std::string type = textField(event, "type");
  if (type != "message" && type != "app_mention") {
    skipped = "an event of type \"" + clipUtf8(type, 40) + "\"";
    return std::nullopt;
  }
  // Edits, deletions, joins and the like carry a subtype; a message with files is the one
  // subtype a person writes.
  std::string subtype = textField(event, "subtype");
  if (!subtype.empty() && subtype != "file_share") {
    skipped = "a message with subtype \"" + clipUtf8(subtype, 40) + "\"";
    return std::nullopt;
  }
  std::string user = textField(event, "user");
  // Bots (ourselves included) are skipped: two assistants answering each other would loop.
  if (field(event, "bot_id") != nullptr || user == self.userId) {
    skipped = "a bot's message";
    return std::nullopt;
  }
  std::string channel = textField(event, "channel");
  std::string ts = textField(event, "ts");
  if (!isSlackId(user) || !isSlackId(channel) || !isTs(ts)) {
    skipped = "a message without user, channel or ts";
    return std::nullopt;
  }
  Event out;
  Inbound& in = out.inbound;
  in.chatId = channel;
  // channel_type "im" is a direct message; app_mention carries none, but a DM channel's id
  // starts with D.
  std::string channelType = textField(event, "channel_type");
  in.group = channelType.empty() ? channel[0] != 'D' : channelType != "im";
  in.senderId = user;
  in.senderName = user;
  in.messageId = ts;
  std::string text = textField(event, "text");
  std::string mention = "<@" + self.userId + ">";
  in.mentioned = in.group && (type == "app_mention" ||
                              (!self.userId.empty() && text.find(mention) != std::string::npos));
  if (!self.userId.empty()) {
    for (size_t at = text.find(mention); at != std::string::npos; at = text.find(mention, at)) {
      text.replace(at, mention.size(), "@" + self.name);
      at += self.name.size() + 1;
    }
  }
  in.text = unescape(text);
  std::string thread = textField(event, "thread_ts");
  if (isTs(thread)) in.threadId = thread;
  in.timestampMs = tsMs(ts);
  const Json* files = field(event, "files");
  if (files != nullptr && files->is_array()) {
    for (const auto& f : *files) {
      if (out.files.size() == MAX_FILES) break;
      FileRef ref;
      ref.name = textField(f, "name");
      if (ref.name.empty()) ref.name = "file";
      ref.mimeType = textField(f, "mimetype");
      if (ref.mimeType.empty()) ref.mimeType = "application/octet-stream";
      ref.url = textField(f, "url_private_download");
      if (ref.url.empty()) ref.url = textField(f, "url_private");
      auto size = intField(f, "size");
      ref.size = size && *size > 0 ? static_cast<uint64_t>(*size) : 0;
      out.files.push_back(std::move(ref));
    }
  }
  return out;
}

std::string emojiName(const std::string& emoji) {
  static const std::map<std::string, std::string> NAMES = {
      {"👀", "eyes"},
      {"👍", "+1"},
      {"👎", "-1"},
      {"✅", "white_check_mark"},
      {"✔", "heavy_check_mark"},
      {"❤", "heart"},
      {"🎉", "tada"},
      {"😂", "joy"},
      {"🙏", "pray"},
      {"🔥", "fire"},
      {"👌", "ok_hand"},
      {"🤔", "thinking_face"},
      {"⏳", "hourglass_flowing_sand"},
      {"⌛", "hourglass"},
      {"❌", "x"},
      {"⚠", "warning"},
      {"🚀", "rocket"},
      {"👋", "wave"},
      {"💯", "100"},
      {"✨", "sparkles"},
      {"😄", "smile"},
      {"😀", "grinning"},
      {"🙂", "slightly_smiling_face"},
      {"😊", "blush"},
      {"🙌", "raised_hands"},
      {"👏", "clap"},
      {"😢", "cry"},
      {"😮", "open_mouth"},
      {"🤖", "robot_face"},
      {"📝", "memo"},
      {"👁", "eye"},
      {"💡", "bulb"},
      {"🐛", "bug"},
      {"⭐", "star"},
  };
  std::string key = emoji;
  // The variation selector (U+FE0F) asks for the emoji presentation; the name is the same.
  for (size_t at = key.find("\xEF\xB8\x8F"); at != std::string::npos;
       at = key.find("\xEF\xB8\x8F")) {
    key.erase(at, 3);
  }
  auto it = NAMES.find(key);
  if (it != NAMES.end()) return it->second;
  std::string name = key;
  if (name.size() > 2 && name.front() == ':' && name.back() == ':')
    name = name.substr(1, name.size() - 2);
  bool plain = !name.empty() && name.size() <= 100;
  for (char c : name) {
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '+' ||
                      c == '-' || c == '\'');
  }
  if (plain) return name;
  throw ChannelError("Slack reaction: no Slack name known for \"" + clipUtf8(emoji, 20) +
                     "\"; give the emoji's name, e.g. eyes or :thumbsup:");
}

}  // namespace chitin::channel::slack
