// SPDX-License-Identifier: Apache-2.0
// Telegram's Message objects (from getUpdates) read into chitin's Inbound: who, where, what,
// whether the bot was addressed, and which files to fetch.
// Runs in: worker (sandboxed)
//
// Everything here comes from the internet: every field is type-checked, a message that lacks
// what chitin needs is skipped with a reason, never half-read. Entity offsets are UTF-16 code
// units (the Bot API counts that way) and are checked against the text before use.

#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "platform.h"

namespace chitin::channel::telegram {

struct BotIdentity {
  int64_t id = 0;
  std::string username;  // without "@"
};

// A file the message carries, fetched with getFile before delivery.
struct FileRef {
  std::string fileId;
  std::string name;
  std::string mimeType;
  uint64_t size = 0;  // as the message states it (0 = not stated)
};

struct ParsedMessage {
  Inbound message;
  std::vector<FileRef> files;
};

// A user's message for the assistant, or nullopt with `why` set: service messages (joins,
// pins, migrations), messages from bots, channel posts, and anything malformed.
std::optional<ParsedMessage> parseMessage(const nlohmann::json& message, const BotIdentity& bot,
                                          std::string& why);

// A group's move to a supergroup, announced in either chat: {old chat id, new chat id}.
std::optional<std::pair<int64_t, int64_t>> migrationIn(const nlohmann::json& message);

// text[offset, offset + length) counted in UTF-16 code units, or nullopt when the range is not
// inside the text or splits a surrogate pair.
std::optional<std::string> utf16Slice(std::string_view text, int64_t offset, int64_t length);

}  // namespace chitin::channel::telegram
