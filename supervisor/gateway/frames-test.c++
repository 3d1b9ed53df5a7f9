// SPDX-License-Identifier: Apache-2.0
// Tests for frame parsing and printing: every way a client frame can be refused, and the exact
// shape of what the server prints.
// Runs in: supervisor (tests)

#include "frames.h"

#include <doctest/doctest.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace chitin::gateway {
namespace {

frames::BadFrame expectBad(std::string_view text) {
  auto parsed = frames::parseRequest(text);
  REQUIRE(std::holds_alternative<frames::BadFrame>(parsed));
  auto bad = std::get<frames::BadFrame>(parsed);
  CHECK(bad.error.code == "INVALID_REQUEST");
  return bad;
}

TEST_CASE("frames: a req frame parses into id, method and params") {
  auto parsed = frames::parseRequest(
      R"({"type":"req","id":"7","method":"chat.history","params":{"sessionKey":"k","limit":20}})");
  REQUIRE(std::holds_alternative<frames::Request>(parsed));
  auto& request = std::get<frames::Request>(parsed);
  CHECK(request.id == "7");
  CHECK(request.method == "chat.history");
  auto params = frames::paramsAs<ChatHistoryParams>(request.params, request.method);
  REQUIRE(std::holds_alternative<ChatHistoryParams>(params));
  CHECK(std::get<ChatHistoryParams>(params).session_key() == "k");
  CHECK(std::get<ChatHistoryParams>(params).limit() == 20);
}

TEST_CASE("frames: a req without params has empty params") {
  auto parsed = frames::parseRequest(R"({"type":"req","id":"1","method":"health"})");
  REQUIRE(std::holds_alternative<frames::Request>(parsed));
  CHECK(std::get<frames::Request>(parsed).params.fields().empty());
}

TEST_CASE("frames: malformed JSON is refused with the parser's reason and no id") {
  auto bad = expectBad(R"({"type":"req","id":"1")");
  CHECK(bad.id.empty());
  CHECK(bad.error.message.find("malformed frame") != std::string::npos);
  CHECK(bad.error.message.find("Unexpected end of string") != std::string::npos);
  CHECK(bad.error.message.find('\n') == std::string::npos);
}

TEST_CASE("frames: a JSON value that is not an object is refused") {
  CHECK(expectBad("[1,2]").error.message.find("Root element must be a message") !=
        std::string::npos);
  expectBad("\"req\"");
  expectBad("");
  expectBad("{} trailing");
}

TEST_CASE("frames: a schema mismatch echoes the id when it can be read") {
  auto bad = expectBad(R"({"type":"req","id":"42","method":"health","bogus":1})");
  CHECK(bad.id == "42");
  CHECK(bad.error.message.find("bogus") != std::string::npos);

  bad = expectBad(R"({"type":"req","id":"43","method":5})");
  CHECK(bad.id == "43");
  CHECK(bad.error.message.find("method") != std::string::npos);

  // The id itself has the wrong type: nothing to echo.
  CHECK(expectBad(R"({"type":"req","id":5,"method":"health"})").id.empty());
}

TEST_CASE("frames: missing or wrong type, id or method are refused by name") {
  auto bad = expectBad(R"({"id":"1","method":"health"})");
  CHECK(bad.id == "1");
  CHECK(bad.error.message.find(R"(no "type")") != std::string::npos);

  bad = expectBad(R"({"type":"res","id":"2","method":"health"})");
  CHECK(bad.id == "2");
  CHECK(bad.error.message.find(R"(got type "res")") != std::string::npos);

  bad = expectBad(R"({"type":"req","method":"health"})");
  CHECK(bad.error.message.find(R"(non-empty "id")") != std::string::npos);

  bad = expectBad(R"({"type":"req","id":"3"})");
  CHECK(bad.id == "3");
  CHECK(bad.error.message.find(R"(needs a "method")") != std::string::npos);
}

TEST_CASE("frames: an over-long id is refused and not echoed") {
  std::string id(frames::MAX_ID_LENGTH + 1, 'x');
  auto bad = expectBad(R"({"type":"req","id":")" + id + R"(","method":"health"})");
  CHECK(bad.id.empty());
  CHECK(bad.error.message.find("longer than") != std::string::npos);
}

TEST_CASE("frames: invalid UTF-8 is refused and the message stays printable") {
  auto bad = expectBad("{\"type\":\"req\",\"id\":\"\xff\xfe\",\"method\":\"health\"}");
  CHECK(bad.error.message.find("UTF-8") != std::string::npos);
  for (char c : bad.error.message) CHECK(static_cast<unsigned char>(c) < 0x80);
  // The error frame itself must print.
  CHECK(frames::printError(bad.id, bad.error).find("INVALID_REQUEST") != std::string::npos);
}

TEST_CASE("frames: deep nesting is refused before protobuf parses it") {
  std::string deep = R"({"type":"req","id":"1","method":"x","params":{"a":)" +
                     std::string(100000, '[') + std::string(100000, ']') + "}}";
  auto bad = expectBad(deep);
  CHECK(bad.error.message.find("deeper than") != std::string::npos);
}

TEST_CASE("frames: params of the wrong type name the method and the field") {
  google::protobuf::Struct params;
  (*params.mutable_fields())["limit"].set_number_value(1.5);
  auto result = frames::paramsAs<ChatHistoryParams>(params, "chat.history");
  REQUIRE(std::holds_alternative<UserError>(result));
  auto& error = std::get<UserError>(result);
  CHECK(error.code == "INVALID_REQUEST");
  CHECK(error.message.find("\"chat.history\"") != std::string::npos);
  CHECK(error.message.find("limit") != std::string::npos);

  google::protobuf::Struct unknown;
  (*unknown.mutable_fields())["sessionKy"].set_string_value("k");
  auto typo = frames::paramsAs<ChatHistoryParams>(unknown, "chat.history");
  REQUIRE(std::holds_alternative<UserError>(typo));
  CHECK(std::get<UserError>(typo).message.find("sessionKy") != std::string::npos);
}

TEST_CASE("frames: results print with ok:true and lowerCamelCase payload keys") {
  AgentAccepted accepted;
  accepted.set_run_id("run-1");
  accepted.set_status("accepted");
  accepted.set_session_key("agent:main:cli:direct:alice");
  std::string printed = frames::printResult("5", accepted);
  // Payload keys come from a Struct (a map), so their order is not fixed; the envelope's is.
  CHECK(printed.rfind(R"({"type":"res","id":"5","ok":true,"payload":{)", 0) == 0);
  CHECK(printed.find(R"("runId":"run-1")") != std::string::npos);
  CHECK(printed.find(R"("status":"accepted")") != std::string::npos);
  CHECK(printed.find(R"("sessionKey":"agent:main:cli:direct:alice")") != std::string::npos);
  CHECK(printed.find("run_id") == std::string::npos);
  // An empty payload is still an object.
  CHECK(frames::printResult("6", SessionsList()) ==
        R"({"type":"res","id":"6","ok":true,"payload":{}})");
}

TEST_CASE("frames: errors print with ok:false and an id, even an empty one") {
  CHECK(frames::printError("9", {"UNKNOWN_METHOD", "unknown method \"x\""}) ==
        R"({"type":"res","id":"9","ok":false,"error":{"code":"UNKNOWN_METHOD",)"
        R"("message":"unknown method \"x\""}})");
  CHECK(frames::printError("", {"INVALID_REQUEST", "bad"}) ==
        R"({"type":"res","id":"","ok":false,"error":{"code":"INVALID_REQUEST","message":"bad"}})");
}

TEST_CASE("frames: ids are escaped, not spliced raw") {
  std::string printed = frames::printError("a\"b", {"X", "y"});
  CHECK(printed.find(R"("id":"a\"b")") != std::string::npos);
  CHECK(printed.find(R"("ok":false)") != std::string::npos);
}

TEST_CASE("frames: events carry the event name, payload and seq") {
  Challenge challenge;
  challenge.set_nonce("00ff");
  challenge.set_ts(1700000000000);
  std::string printed = frames::printEvent("connect.challenge", challenge, 1);
  CHECK(printed.find(R"("type":"event")") != std::string::npos);
  CHECK(printed.find(R"("event":"connect.challenge")") != std::string::npos);
  CHECK(printed.find(R"("nonce":"00ff")") != std::string::npos);
  // uint64 is a string in protobuf's JSON mapping.
  CHECK(printed.find(R"("ts":"1700000000000")") != std::string::npos);
  CHECK(printed.find(R"("seq":1)") != std::string::npos);
}

TEST_CASE("frames: sanitizeMessage keeps one printable line") {
  CHECK(frames::sanitizeMessage("first\nsecond") == "first");
  CHECK(frames::sanitizeMessage("a\tb\xc3\xa9") == "a?b??");
  CHECK(frames::sanitizeMessage(std::string(300, 'x'), 10) == "xxxxxxxxxx...");
}

// ---- The direct path and protobuf's parser agree ----

// Random JSON text shaped like requests: the frame's fields and others, values of every JSON
// type (right and wrong for the field), duplicate keys, integers at and past their limits,
// strings with escapes and non-ASCII, and some malformed text.
class FrameTexts {
 public:
  explicit FrameTexts(uint32_t seed) : random_(seed) {}

  std::string frame() {
    static const std::vector<std::string> keys = {"type",    "id",    "method", "params", "ok",
                                                  "payload", "event", "seq",    "bogus",  "ID"};
    std::string out = "{";
    std::vector<std::string> chosen;
    if (below(2) == 0) {  // shaped like a real request, perhaps with one thing wrong
      chosen = {"type", "id", "method"};
      if (below(3) > 0) chosen.push_back("params");
      if (below(4) == 0) chosen.push_back(keys[below(static_cast<int>(keys.size()))]);
      std::shuffle(chosen.begin(), chosen.end(), random_);
    } else {
      for (int i = below(6); i > 0; --i)
        chosen.push_back(keys[below(static_cast<int>(keys.size()))]);
    }
    for (size_t i = 0; i < chosen.size(); ++i) {
      if (i > 0) out += ",";
      const std::string& key = chosen[i];
      out += "\"" + key + "\":";
      if (key == "params" && below(4) > 0) {
        out += params();
      } else if ((key == "type" || key == "id" || key == "method") && below(4) > 0) {
        out += key == "type" ? (below(3) > 0 ? "\"req\"" : "\"res\"") : text();
      } else {
        out += value(2);
      }
    }
    out += "}";
    switch (below(12)) {
      case 0:
        return out.substr(0, out.size() / 2);  // cut short
      case 1:
        return out + " x";  // trailing text
      case 2:
        return "[" + out + "]";  // not an object
      default:
        return out;
    }
  }

  // Params for AgentParams and ChatHistoryParams: their fields (snake_case and camelCase),
  // unknown ones, values of every type.
  std::string params() {
    static const std::vector<std::string> keys = {
        "message",  "sessionKey", "session_key",    "limit", "mentioned",
        "chatType", "untrusted",  "idempotencyKey", "nope",  "sender"};
    std::string out = "{";
    int n = below(5);
    for (int i = 0; i < n; ++i) {
      if (i > 0) out += ",";
      out += "\"" + keys[below(static_cast<int>(keys.size()))] + "\":" + value(1);
    }
    return out + "}";
  }

  std::string value(int depth) {
    static const std::vector<std::string> scalars = {"null",
                                                     "true",
                                                     "false",
                                                     "0",
                                                     "1",
                                                     "-1",
                                                     "20",
                                                     "1.5",
                                                     "1e3",
                                                     "4294967295",
                                                     "4294967296",
                                                     "9007199254740993",
                                                     "-0",
                                                     "\"20\"",
                                                     "\"\"",
                                                     "\"a\\\"b\\n\\u00e9\"",
                                                     "\"caf\xC3\xA9\"",
                                                     "\"\xFF\""};
    int kind = below(depth > 0 ? 8 : 6);
    if (kind < 5) return scalars[below(static_cast<int>(scalars.size()))];
    if (kind == 5) return text();
    if (kind == 6) {
      std::string out = "[";
      for (int i = below(3); i > 0; --i) out += value(depth - 1) + (i > 1 ? "," : "");
      return out + "]";
    }
    return params();
  }

  std::string text() {
    static const std::vector<std::string> texts = {"\"1\"", "\"abc\"", "\"\"", "\"chat.history\"",
                                                   "\"agent\""};
    return texts[below(static_cast<int>(texts.size()))];
  }

 private:
  int below(int n) { return static_cast<int>(random_() % static_cast<uint32_t>(n)); }
  std::mt19937 random_;
};

bool same(const std::variant<frames::Request, frames::BadFrame>& a,
          const std::variant<frames::Request, frames::BadFrame>& b) {
  if (a.index() != b.index()) return false;
  if (auto* ra = std::get_if<frames::Request>(&a)) {
    auto& rb = std::get<frames::Request>(b);
    return ra->id == rb.id && ra->method == rb.method &&
           google::protobuf::util::MessageDifferencer::Equals(ra->params, rb.params);
  }
  auto& ba = std::get<frames::BadFrame>(a);
  auto& bb = std::get<frames::BadFrame>(b);
  return ba.id == bb.id && ba.error.code == bb.error.code && ba.error.message == bb.error.message;
}

template <typename T>
bool sameParams(const google::protobuf::Struct& params) {
  T direct, slow;
  auto a = frames::paramsInto(params, "m", direct);
  auto b = frames::detail::paramsIntoByProtobuf(params, "m", slow);
  if (a.index() != b.index()) return false;
  if (std::holds_alternative<UserError>(a)) {
    return std::get<UserError>(a).message == std::get<UserError>(b).message;
  }
  return google::protobuf::util::MessageDifferencer::Equals(direct, slow);
}

TEST_CASE("frames: the direct path accepts, refuses and words exactly as protobuf's parser") {
  FrameTexts texts(20261203);
  size_t requests = 0, accepted = 0, paramsChecked = 0;
  for (int i = 0; i < 10000; ++i) {
    std::string text = texts.frame();
    auto direct = frames::parseRequest(text);
    auto slow = frames::detail::parseRequestByProtobuf(text);
    INFO(text);
    REQUIRE(same(direct, slow));
    ++requests;
    if (auto* request = std::get_if<frames::Request>(&direct)) {
      ++accepted;
      CHECK(sameParams<AgentParams>(request->params));
      CHECK(sameParams<ChatHistoryParams>(request->params));
      paramsChecked += 2;
    }
  }
  CHECK(requests == 10000);
  CHECK(accepted > 250);  // the generator reaches well-formed requests, not only refusals
  CHECK(paramsChecked == accepted * 2);

  // Duplicate keys and the well-formed case, by hand.
  for (const char* text : {R"({"type":"req","id":"1","id":"2","method":"m"})",
                           R"({"type":"req","id":"1","method":"m","params":{"a":1,"a":2}})",
                           R"({"type":"req","id":"1","method":"m","params":{"limit":20}})"}) {
    INFO(text);
    CHECK(same(frames::parseRequest(text), frames::detail::parseRequestByProtobuf(text)));
  }
}

}  // namespace
}  // namespace chitin::gateway
