// SPDX-License-Identifier: Apache-2.0
// Slack's Events API payloads as chitin Inbounds, the memory that keeps a redelivered
// envelope or a message seen twice (message + app_mention) from being delivered twice, and
// Slack's ids and emoji names.
// Runs in: worker (sandboxed)

#pragma once

#include <deque>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "json-fields.h"
#include "platform.h"

namespace chitin::channel::slack {

struct Self {
  std::string userId;  // auth.test user_id: "<@U0BOT>" in text is a mention of us
  std::string name;
  std::string botId;  // auth.test bot_id: our own posts carry it
};

struct FileRef {
  std::string name, mimeType, url;  // url_private_download (or url_private): needs the token
  uint64_t size = 0;
};

struct Event {
  Inbound inbound;  // senderName = the user id until the caller looks the name up
  std::vector<FileRef> files;
};

// A `message` or `app_mention` event for chitin, or nullopt with `skipped` saying why (ours,
// a bot's, an edit or another subtype, an event of another type, missing fields).
std::optional<Event> parseEvent(const Json& event, const Self& self, std::string& skipped);

// The last `capacity` keys, oldest forgotten first: insert() is false for a key still held.
class RecentSet {
 public:
  explicit RecentSet(size_t capacity = 4096) : capacity_(capacity) {}
  bool insert(const std::string& key);

 private:
  size_t capacity_;
  std::set<std::string> keys_;
  std::deque<std::string> order_;
};

// Slack ids and timestamps, as checked before they go into a request.
bool isSlackId(std::string_view id);  // C0123ABCD, D..., G..., U...
bool isTs(std::string_view ts);       // "1712345678.123456"
int64_t tsMs(std::string_view ts);    // 0 when not a ts

// The reaction name Slack wants: "👀" -> "eyes" for the common emoji, ":name:" or "name" as
// given. Throws ChannelError for an emoji it does not know.
std::string emojiName(const std::string& emoji);

}  // namespace chitin::channel::slack
