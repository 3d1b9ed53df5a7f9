// SPDX-License-Identifier: Apache-2.0
// Reading Telegram Message objects: fields, mentions (UTF-16 entity offsets), files, and the
// messages that are not for the assistant.
// Runs in: tests

#include "updates.h"

#include <doctest/doctest.h>

namespace chitin::channel::telegram {
namespace {

using nlohmann::json;

const BotIdentity BOT{555, "Chitin_Bot"};

json userMessage(json extra = json::object()) {
  json m = {
      {"message_id", 17},
      {"date", 1700000000},
      {"chat", {{"id", 1001}, {"type", "private"}, {"first_name", "Ann"}}},
      {"from", {{"id", 1001}, {"is_bot", false}, {"first_name", "Ann"}, {"last_name", "Lee"}}},
      {"text", "hello"}};
  m.update(extra);
  return m;
}

json group(json extra = json::object()) {
  json m = userMessage(extra);
  m["chat"] = {{"id", -100123}, {"type", "supergroup"}, {"title", "Team"}};
  return m;
}

ParsedMessage parse(const json& m) {
  std::string why;
  auto parsed = parseMessage(m, BOT, why);
  INFO(why);
  REQUIRE(parsed);
  return *parsed;
}

std::string skipped(const json& m) {
  std::string why;
  CHECK_FALSE(parseMessage(m, BOT, why));
  return why;
}

TEST_CASE("telegram updates: a direct message becomes an Inbound with stable ids") {
  auto p = parse(userMessage({{"reply_to_message", {{"message_id", 9}}}}));
  CHECK(p.message.chatId == "1001");
  CHECK_FALSE(p.message.group);
  CHECK(p.message.senderId == "1001");
  CHECK(p.message.senderName == "Ann Lee");
  CHECK(p.message.messageId == "17");
  CHECK(p.message.text == "hello");
  CHECK(p.message.replyTo == "9");
  CHECK(p.message.timestampMs == 1700000000000);
  CHECK_FALSE(p.message.mentioned);
  CHECK(p.files.empty());
}

TEST_CASE("telegram updates: group mentions by entity, text_mention, command and reply") {
  // "😀 " is 3 UTF-16 units: the entity's offset counts them, not bytes (5) or code points (2).
  auto mention =
      parse(group({{"text", "\U0001F600 @chitin_bot hi"},
                   {"entities", {{{"type", "mention"}, {"offset", 3}, {"length", 11}}}}}));
  CHECK(mention.message.group);
  CHECK(mention.message.mentioned);
  // The same text with a byte-counted offset does not match.
  CHECK_FALSE(parse(group({{"text", "\U0001F600 @chitin_bot hi"},
                           {"entities", {{{"type", "mention"}, {"offset", 5}, {"length", 11}}}}}))
                  .message.mentioned);
  CHECK_FALSE(parse(group({{"text", "@someone_else hi"},
                           {"entities", {{{"type", "mention"}, {"offset", 0}, {"length", 13}}}}}))
                  .message.mentioned);
  CHECK(parse(group({{"text", "hey you"},
                     {"entities",
                      {{{"type", "text_mention"},
                        {"offset", 4},
                        {"length", 3},
                        {"user", {{"id", 555}, {"is_bot", true}, {"first_name", "C"}}}}}}}))
            .message.mentioned);
  CHECK(parse(group({{"text", "/status@chitin_bot"},
                     {"entities", {{{"type", "bot_command"}, {"offset", 0}, {"length", 18}}}}}))
            .message.mentioned);
  CHECK(parse(group({{"text", "yes"},
                     {"reply_to_message", {{"message_id", 3}, {"from", {{"id", 555}}}}}}))
            .message.mentioned);
  CHECK_FALSE(parse(group({{"text", "plain chat"}})).message.mentioned);
  // Entities outside the text, or splitting a surrogate pair, are ignored, not trusted.
  CHECK_FALSE(parse(group({{"text", "@chitin_bot"},
                           {"entities", {{{"type", "mention"}, {"offset", 0}, {"length", 99}}}}}))
                  .message.mentioned);
  // In a DM the flag is not used: it stays false.
  CHECK_FALSE(
      parse(userMessage({{"text", "@chitin_bot"},
                         {"entities", {{{"type", "mention"}, {"offset", 0}, {"length", 11}}}}}))
          .message.mentioned);
}

TEST_CASE("telegram updates: files: the largest photo, documents, voice; captions as text") {
  auto photo = parse(userMessage(
      {{"text", nullptr},
       {"caption", "look"},
       {"photo",
        {{{"file_id", "small"}, {"width", 90}, {"height", 90}, {"file_size", 1000}},
         {{"file_id", "big"}, {"width", 800}, {"height", 600}, {"file_size", 90000}},
         {{"file_id", "mid"}, {"width", 320}, {"height", 240}, {"file_size", 9000}}}}}));
  CHECK(photo.message.text == "look");
  REQUIRE(photo.files.size() == 1);
  CHECK(photo.files[0].fileId == "big");
  CHECK(photo.files[0].mimeType == "image/jpeg");
  CHECK(photo.files[0].size == 90000);

  json m = userMessage({{"document",
                         {{"file_id", "D1"},
                          {"file_name", "report.pdf"},
                          {"mime_type", "application/pdf"},
                          {"file_size", 1234}}}});
  m.erase("text");
  auto doc = parse(m);
  CHECK(doc.message.text.empty());
  REQUIRE(doc.files.size() == 1);
  CHECK(doc.files[0].name == "report.pdf");
  CHECK(doc.files[0].mimeType == "application/pdf");

  json v = userMessage({{"voice", {{"file_id", "V1"}, {"duration", 3}}}});
  v.erase("text");
  auto voice = parse(v);
  REQUIRE(voice.files.size() == 1);
  CHECK(voice.files[0].name == "voice.ogg");
  CHECK(voice.files[0].size == 0);
}

TEST_CASE("telegram updates: what the assistant never sees, and malformed input") {
  CHECK(skipped(userMessage({{"from", {{"id", 9}, {"is_bot", true}, {"first_name", "B"}}}})) ==
        "from a bot");
  json join = group({{"new_chat_members", json::array()}});
  join.erase("text");
  CHECK(skipped(join).find("no text") == 0);
  json post = userMessage();
  post["chat"] = {{"id", -1009}, {"type", "channel"}};
  CHECK(skipped(post) == "a channel message");
  CHECK(skipped(userMessage({{"message_id", "17"}})).find("malformed") == 0);
  CHECK(skipped(userMessage({{"chat", 5}})).find("malformed") == 0);
  json noSender = userMessage();
  noSender.erase("from");
  CHECK(skipped(noSender) == "no sender");
  CHECK(skipped(json::array()).find("malformed") == 0);
  // Wrong types in optional fields are ignored, not trusted.
  auto odd = parse(userMessage({{"date", "yesterday"},
                                {"reply_to_message", "x"},
                                {"entities", "nope"},
                                {"photo", {{"file_id", 5}}}}));
  CHECK(odd.message.timestampMs == 0);
  CHECK(odd.message.replyTo.empty());
  CHECK(odd.files.empty());
  CHECK(parse(userMessage({{"date", json::number_integer_t(INT64_MAX)}})).message.timestampMs > 0);
}

TEST_CASE("telegram updates: group migrations, from either side") {
  json old = group({{"migrate_to_chat_id", -1009999}});
  old["chat"]["id"] = -4242;
  CHECK(migrationIn(old) == std::make_pair<int64_t, int64_t>(-4242, -1009999));
  json fresh = group({{"migrate_from_chat_id", -4242}});
  CHECK(migrationIn(fresh) == std::make_pair<int64_t, int64_t>(-4242, -100123));
  CHECK_FALSE(migrationIn(group()));
}

TEST_CASE("telegram updates: UTF-16 slices") {
  CHECK(utf16Slice("abc", 1, 1) == "b");
  CHECK(utf16Slice("a\U0001F600b", 1, 2) == "\U0001F600");
  CHECK(utf16Slice("a\U0001F600b", 3, 1) == "b");
  CHECK_FALSE(utf16Slice("a\U0001F600b", 2, 1));  // half a surrogate pair
  CHECK(utf16Slice("\u00e9t\u00e9", 0, 3) == "\u00e9t\u00e9");
  CHECK_FALSE(utf16Slice("abc", 2, 5));
  CHECK_FALSE(utf16Slice("abc", -1, 1));
  CHECK(utf16Slice("abc", 3, 0) == "");
}

}  // namespace
}  // namespace chitin::channel::telegram
