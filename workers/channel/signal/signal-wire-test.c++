// SPDX-License-Identifier: Apache-2.0
// Tests for signal-cli envelope parsing and JSON-RPC parameter building, on envelopes shaped
// like signal-cli's JsonMessageEnvelope and on hostile ones.
// Runs in: worker (sandboxed) -- test code, runs unconfined.

#include "signal-wire.h"

#include <doctest/doctest.h>

namespace chitin::channel {
namespace {

using Json = nlohmann::json;

const std::string ALICE = "+15551110000";
const std::string ALICE_UUID = "11111111-1111-4111-8111-111111111111";
const std::string SELF = "+15550000000";
const std::string SELF_UUID = "00000000-0000-4000-8000-000000000001";
const std::string GROUP = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";  // bytes 0..31

SignalSelf self() { return {SELF, SELF_UUID, {"chitin"}}; }

Json envelope(Json dataMessage, std::string number = ALICE, std::string uuid = ALICE_UUID) {
  Json env = {{"source", number},
              {"sourceNumber", number},
              {"sourceUuid", uuid},
              {"sourceName", "Alice"},
              {"sourceDevice", 1},
              {"timestamp", 1700000000123},
              {"serverReceivedTimestamp", 1700000000200},
              {"serverDeliveredTimestamp", 1700000000201}};
  if (!dataMessage.is_null()) env["dataMessage"] = std::move(dataMessage);
  return {{"envelope", env}, {"account", SELF}};
}

Json text(std::string body) {
  return {{"timestamp", 1700000000123},
          {"message", body},
          {"expiresInSeconds", 0},
          {"viewOnce", false}};
}

std::optional<SignalReceived> parse(const Json& event, std::string* reason = nullptr) {
  std::string why;
  auto out = parseReceiveEvent(event.dump(), self(), why);
  if (reason) *reason = why;
  return out;
}

TEST_CASE("signal: a direct message is keyed by the sender's ACI and the sender timestamp") {
  auto got = parse(envelope(text("hello")));
  REQUIRE(got);
  CHECK(got->message.chatId == ALICE_UUID);
  CHECK(got->message.senderId == ALICE_UUID);
  CHECK(got->message.senderName == "Alice");
  CHECK(got->message.messageId == ALICE_UUID + ":1700000000123");
  CHECK(got->message.timestampMs == 1700000000123);
  CHECK(got->message.text == "hello");
  CHECK_FALSE(got->message.group);
  CHECK(got->groupId.empty());

  auto numberOnly = parse(envelope(text("hi"), ALICE, ""));
  REQUIRE(numberOnly);
  CHECK(numberOnly->message.senderId == ALICE);  // no ACI given: the number, never nothing
}

TEST_CASE("signal: a group message is group:<id>; mentioned by our ACI, our number or our name") {
  Json plain = text("hello all");
  plain["groupInfo"] = {
      {"groupId", GROUP}, {"groupName", "G"}, {"revision", 2}, {"type", "DELIVER"}};
  auto got = parse(envelope(plain));
  REQUIRE(got);
  CHECK(got->message.group);
  CHECK(got->message.chatId == "group:" + GROUP);
  CHECK(got->groupId == GROUP);
  CHECK_FALSE(got->message.mentioned);

  Json byUuid = plain;
  byUuid["message"] = "\xEF\xBF\xBC what time is it";
  byUuid["mentions"] = Json::array({{{"name", SELF_UUID},
                                     {"number", nullptr},
                                     {"uuid", SELF_UUID},
                                     {"start", 0},
                                     {"length", 1}}});
  got = parse(envelope(byUuid));
  REQUIRE(got);
  CHECK(got->message.mentioned);
  CHECK(got->message.text == "@chitin what time is it");  // the placeholder written out

  Json byNumber = byUuid;
  byNumber["mentions"][0]["uuid"] = nullptr;
  byNumber["mentions"][0]["number"] = SELF;
  CHECK(parse(envelope(byNumber))->message.mentioned);

  Json other = byUuid;
  other["mentions"][0]["uuid"] = ALICE_UUID;
  got = parse(envelope(other));
  CHECK_FALSE(got->message.mentioned);
  CHECK(got->message.text == "@" + ALICE_UUID + " what time is it");

  Json byName = plain;
  byName["message"] = "hey @Chitin, look";
  CHECK(parse(envelope(byName))->message.mentioned);
  byName["message"] = "chitinous shells";
  CHECK_FALSE(parse(envelope(byName))->message.mentioned);
}

TEST_CASE("signal: a quote becomes replyTo, and quoting one of our messages counts as a mention") {
  Json dm = text("yes");
  dm["groupInfo"] = {{"groupId", GROUP}, {"type", "DELIVER"}};
  dm["quote"] = {{"id", 1699999999000},     {"author", SELF},     {"authorNumber", SELF},
                 {"authorUuid", SELF_UUID}, {"text", "shall I?"}, {"attachments", Json::array()}};
  auto got = parse(envelope(dm));
  REQUIRE(got);
  CHECK(got->message.replyTo == SELF_UUID + ":1699999999000");
  CHECK(got->message.mentioned);
  dm["quote"]["authorNumber"] = ALICE;
  dm["quote"]["authorUuid"] = ALICE_UUID;
  got = parse(envelope(dm));
  CHECK(got->message.replyTo == ALICE_UUID + ":1699999999000");
  CHECK_FALSE(got->message.mentioned);
}

TEST_CASE("signal: attachments are listed for getAttachment; ids that are not plain are skipped") {
  Json dm = text("");
  dm["attachments"] = Json::array(
      {{{"contentType", "image/png"}, {"filename", "a.png"}, {"id", "x1Yz.png"}, {"size", 70}},
       {{"contentType", "text/plain"},
        {"filename", "../../etc"},
        {"id", "../../etc/passwd"},
        {"size", 1}},
       {{"contentType", "text/plain"}, {"id", nullptr}, {"size", 1}}});
  auto got = parse(envelope(dm));
  REQUIRE(got);
  REQUIRE(got->attachments.size() == 1);
  CHECK(got->attachments[0].id == "x1Yz.png");
  CHECK(got->attachments[0].name == "a.png");
  CHECK(got->attachments[0].mimeType == "image/png");
  CHECK(got->attachments[0].size == 70);
  CHECK(got->senderAddress == ALICE_UUID);
}

TEST_CASE(
    "signal: sync, typing, receipts, reactions, deletes, our own and empty messages are skipped "
    "quietly") {
  std::string why = "unset";
  Json typing = envelope(nullptr);
  typing["envelope"]["typingMessage"] = {{"action", "STARTED"}, {"timestamp", 1}};
  CHECK_FALSE(parse(typing, &why));
  CHECK(why.empty());
  Json sync = envelope(nullptr);
  sync["envelope"]["syncMessage"] = {{"sentMessage", {{"message", "from my phone"}}}};
  CHECK_FALSE(parse(sync, &why));
  Json reaction = text("");
  reaction["reaction"] = {{"emoji", "👍"}, {"targetAuthor", SELF}, {"targetSentTimestamp", 5}};
  CHECK_FALSE(parse(envelope(reaction), &why));
  CHECK(why.empty());
  Json del = text("");
  del["remoteDelete"] = {{"timestamp", 5}};
  CHECK_FALSE(parse(envelope(del), &why));
  CHECK_FALSE(parse(envelope(text("echo"), SELF, ""), &why));  // from this account
  CHECK_FALSE(parse(envelope(text("echo"), "", SELF_UUID), &why));
  CHECK_FALSE(parse(envelope(text("")), &why));
  CHECK(why.empty());
}

TEST_CASE("signal: malformed envelopes are dropped with a reason for the log") {
  std::string why;
  CHECK_FALSE(parseReceiveEvent(std::string(100, '[') + std::string(100, ']'), self(), why));
  CHECK(why.find("nested") != std::string::npos);
  CHECK_FALSE(parseReceiveEvent("{\"envelope\":", self(), why));
  CHECK(why == "not a receive event");
  CHECK_FALSE(parse(envelope(text("x"), "15551110000", "not-a-uuid"), &why));
  CHECK(why == "no valid sender");
  Json badGroup = text("x");
  badGroup["groupInfo"] = {{"groupId", "../../x"}};
  CHECK_FALSE(parse(envelope(badGroup), &why));
  CHECK(why == "malformed group id");
  Json noTime = envelope(text("x"));
  noTime["envelope"]["timestamp"] = "soon";
  CHECK_FALSE(parse(noTime, &why));
  CHECK(why == "no valid timestamp");
  Json wrongTypes = envelope(text("x"));
  wrongTypes["envelope"]["dataMessage"]["message"] = Json::array({1, 2});
  wrongTypes["envelope"]["dataMessage"]["mentions"] = "everyone";
  wrongTypes["envelope"]["sourceName"] = 7;
  CHECK_FALSE(parse(wrongTypes, &why));  // no text left: nothing to answer, not a crash
  Json exception = {{"exception", {{"message", "decrypt failed"}}}, {"account", SELF}};
  CHECK_FALSE(parse(exception, &why));
  CHECK(why == "signal-cli reported an error receiving a message");
}

TEST_CASE("signal: chat ids map to recipient or groupId, anything else is refused") {
  CHECK(signalTarget(ALICE_UUID) == Json{{"recipient", ALICE_UUID}});
  CHECK(signalTarget(ALICE) == Json{{"recipient", ALICE}});
  CHECK(signalTarget("group:" + GROUP) == Json{{"groupId", GROUP}});
  CHECK_THROWS_AS(signalTarget("group:"), ChannelError);
  CHECK_THROWS_AS(signalTarget("alice"), ChannelError);
  CHECK_THROWS_WITH_AS(signalTarget("+1 555"), doctest::Contains("neither a number"), ChannelError);
}

TEST_CASE("signal: message ids round-trip and bad ones do not parse") {
  std::string author;
  int64_t ts = 0;
  REQUIRE(parseSignalMessageId(signalMessageId(ALICE_UUID, 1700000000123), author, ts));
  CHECK(author == ALICE_UUID);
  CHECK(ts == 1700000000123);
  REQUIRE(parseSignalMessageId(SELF + ":42", author, ts));
  CHECK(author == SELF);
  std::vector<std::string> bad = {
      "", ":5", "+1555:", "alice:5", SELF + ":5x", SELF + ":99999999999999999999"};
  for (const auto& id : bad) CHECK_FALSE(parseSignalMessageId(id, author, ts));
}

TEST_CASE("signal: outbound attachments are RFC 2397 data URIs signal-cli's pattern accepts") {
  CHECK(signalDataUri({"a b;c=d.txt", "text/plain", "hello", 5}) ==
        "data:text/plain;filename=a%20b%3Bc%3Dd.txt;base64,aGVsbG8=");
  CHECK(signalDataUri({"", "no slash", "hi", 2}) == "data:application/octet-stream;base64,aGk=");
  CHECK(signalDataUri({"x", "image/png", "", 0}) == "data:image/png;filename=x;base64,");
  std::string binary("\x00\xff\x10", 3);
  CHECK(signalBase64Decode("AP8Q") == binary);
  CHECK(signalBase64Decode("aGVsbG8=") == std::string("hello"));
  CHECK(signalBase64Decode("aGk=") == std::string("hi"));
  CHECK(signalBase64Decode("") == std::string());
  CHECK_FALSE(signalBase64Decode("aGk"));
  CHECK_FALSE(signalBase64Decode("a\nGk="));
  CHECK_FALSE(signalBase64Decode("===="));
}

TEST_CASE("signal: JSON-RPC errors read for people, rate limits give their wait") {
  Json limited = {
      {"code", -5},
      {"message", "Failed to send message due to rate limiting"},
      {"data",
       {{"response",
         {{"timestamp", 1},
          {"results", Json::array({{{"type", "RATE_LIMIT_FAILURE"}, {"retryAfterSeconds", 3}},
                                   {{"type", "SUCCESS"}}})}}}}}};
  CHECK(signalRpcError("send", limited) ==
        "signal-cli send: Failed to send message due to rate limiting (code -5)");
  CHECK(signalRetryAfterSeconds(limited) == 3);
  CHECK(signalRetryAfterSeconds({{"code", -1}, {"message", "x"}, {"data", nullptr}}) == 0);
  CHECK(signalRpcError("sendReaction", "not an object") ==
        "signal-cli sendReaction: error (code 0)");
}

}  // namespace
}  // namespace chitin::channel
