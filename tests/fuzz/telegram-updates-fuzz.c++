// SPDX-License-Identifier: Apache-2.0
// Fuzz target: a getUpdates result as the Telegram worker reads it, each update's message
// through parseMessage (fields, mentions by UTF-16 entity offsets, files) and migrationIn.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: JSON, bounded like the worker's responses (json-bounds), then either an array of
// updates or one message object. Checks beyond "no crash": every id the worker would hand on
// is a decimal integer, every file has an id, and a message is never both delivered and
// reported skipped.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz-support.h"
#include "json-bounds.h"
#include "updates.h"

namespace {

using nlohmann::json;
using namespace chitin::channel::telegram;

bool decimal(const std::string& s) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i == s.size()) return false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

void check(const json& message) {
  const BotIdentity bot{4242, "Chitin_Bot"};
  std::string why;
  auto parsed = parseMessage(message, bot, why);
  if (!parsed) {
    FUZZ_CHECK(!why.empty(), "a skipped message says why");
  } else {
    FUZZ_CHECK(why.empty(), "a delivered message has no skip reason");
    const auto& in = parsed->message;
    FUZZ_CHECK(decimal(in.chatId) && decimal(in.senderId) && decimal(in.messageId), in.chatId);
    FUZZ_CHECK(in.replyTo.empty() || decimal(in.replyTo), in.replyTo);
    FUZZ_CHECK(in.threadId.empty() || decimal(in.threadId), in.threadId);
    FUZZ_CHECK(in.timestampMs >= 0, "timestamp");
    FUZZ_CHECK(!in.text.empty() || !parsed->files.empty(), "something to deliver");
    FUZZ_CHECK(in.group || !in.mentioned, "mentions only in groups");
    for (auto& f : parsed->files) FUZZ_CHECK(!f.fileId.empty() && !f.name.empty(), f.fileId);
  }
  migrationIn(message);
  if (message.is_object() && message.contains("text") && message["text"].is_string()) {
    std::string text = message["text"];
    for (int64_t offset : {0, 1, 2, 3, 7}) {
      for (int64_t length : {0, 1, 2, 5, 100}) {
        auto slice = utf16Slice(text, offset, length);
        if (slice) FUZZ_CHECK(slice->size() <= text.size(), "slice inside the text");
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (!chitin::checkJsonBounds(text, {8u << 20, 64}, "fuzz").empty()) return 0;
  json value = json::parse(text, nullptr, false);
  if (value.is_discarded()) return 0;
  if (value.is_array()) {
    for (auto& update : value) {
      if (update.is_object() && update.contains("message")) check(update["message"]);
    }
  } else {
    check(value);
  }
  return 0;
}
