// SPDX-License-Identifier: Apache-2.0
// Tests for one connection's protocol logic, without sockets: handshake, lockout, dispatch,
// run streaming, idempotency, and late callbacks after the connection has gone.
// Runs in: supervisor (tests)

#include "connection.h"

#include <doctest/doctest.h>
#include <google/protobuf/util/json_util.h>

#include <stdexcept>

namespace chitin::gateway {
namespace {

using google::protobuf::Struct;
using namespace std::chrono_literals;

const std::string TOKEN = "s3cret-token";

Struct parse(const std::string& json) {
  Struct out;
  auto status = google::protobuf::util::JsonStringToMessage(json, &out);
  REQUIRE_MESSAGE(status.ok(), json);
  return out;
}
std::string str(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? "<missing>" : it->second.string_value();
}
const Struct& obj(const Struct& s, const std::string& key) {
  return s.fields().at(key).struct_value();
}
bool okOf(const Struct& s) { return s.fields().at("ok").bool_value(); }

struct RecordingOutbox : Outbox {
  std::vector<Struct> frames;
  std::optional<uint16_t> closedWith;
  void send(std::string frame) override { frames.push_back(parse(frame)); }
  void close(uint16_t code, std::string) override { closedWith = code; }
};

// Keeps the sinks so the test decides when events and results arrive.
struct ScriptedService : AgentService {
  std::map<std::string, std::shared_ptr<RunSink>> sinks;
  int started = 0;
  bool finishInsideStart = false;
  bool throwOnStatus = false;

  Result<AgentAccepted> startRun(const AgentParams& params, const ClientIdentity& who,
                                 std::shared_ptr<RunSink> sink) override {
    if (params.message() == "refuse") return UserError{"UNAVAILABLE", "no model"};
    std::string runId = "run-" + std::to_string(++started);
    AgentAccepted accepted;
    accepted.set_run_id(runId);
    accepted.set_session_key("agent:main:" + who.clientId + ":direct:" + who.user);
    if (finishInsideStart) {
      AgentResult result;
      result.set_run_id(runId);
      result.set_status("error");
      sink->finished(result);
    }
    sinks[runId] = std::move(sink);
    return accepted;
  }
  Result<bool> abortRun(const std::string& runId) override { return sinks.count(runId) > 0; }
  Result<ChatHistory> history(const ChatHistoryParams&, const ClientIdentity&) override {
    return UserError{"NOT_FOUND", "no such session"};
  }
  SessionsList sessions() override { return {}; }
  StatusPayload status() override {
    if (throwOnStatus) throw std::runtime_error("secret detail /etc/shadow");
    return {};
  }
};

struct Harness : RunRouter {
  GatewayOptions options;
  ScriptedService service;
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  AuthLimiter limiter{5, 60s, [this] { return now; }};
  std::shared_ptr<RunRouter> self{this, [](RunRouter*) {}};
  ConnectionContext context{options,           service, limiter, [this] { return now; },
                            [] { return 1u; }, now,     self};
  std::map<uint64_t, std::pair<std::unique_ptr<RecordingOutbox>, std::unique_ptr<Connection>>> live;
  uint64_t nextSerial = 1;

  Harness() {
    options.token = TOKEN;
    options.version = "test";
  }

  Connection* findConnection(uint64_t serial) override {
    auto it = live.find(serial);
    return it == live.end() ? nullptr : it->second.second.get();
  }
  std::pair<Connection*, RecordingOutbox*> open(const std::string& address = "127.0.0.1") {
    uint64_t serial = nextSerial++;
    auto outbox = std::make_unique<RecordingOutbox>();
    auto connection = std::make_unique<Connection>(context, *outbox, serial, address);
    auto result = std::make_pair(connection.get(), outbox.get());
    live[serial] = {std::move(outbox), std::move(connection)};
    result.first->open();
    return result;
  }
  static std::string connectFrame(const RecordingOutbox& out, const std::string& token,
                                  const std::string& method = "connect") {
    std::string nonce = str(obj(out.frames.at(0), "payload"), "nonce");
    return R"({"type":"req","id":"c1","method":")" + method + R"(","params":{"auth":{"token":")" +
           token + R"("},"nonce":")" + nonce +
           R"(","client":{"id":"cli","version":"1","user":"alice"},"minProtocol":1,"maxProtocol":1}})";
  }
  std::pair<Connection*, RecordingOutbox*> connected() {
    auto [connection, out] = open();
    connection->onMessage(connectFrame(*out, TOKEN));
    REQUIRE(connection->authenticated());
    out->frames.clear();
    return {connection, out};
  }
};

TEST_CASE("connection: the challenge comes first, with a fresh 32-hex nonce and seq 1") {
  Harness h;
  auto [c1, out1] = h.open();
  auto [c2, out2] = h.open();
  REQUIRE(out1->frames.size() == 1);
  const Struct& frame = out1->frames[0];
  CHECK(str(frame, "type") == "event");
  CHECK(str(frame, "event") == "connect.challenge");
  CHECK(frame.fields().at("seq").number_value() == 1);
  std::string nonce = str(obj(frame, "payload"), "nonce");
  CHECK(nonce.size() == 32);
  CHECK(nonce != str(obj(out2->frames[0], "payload"), "nonce"));
}

TEST_CASE("connection: connect with the token and nonce succeeds") {
  Harness h;
  auto [connection, out] = h.open();
  connection->onMessage(Harness::connectFrame(*out, TOKEN));
  REQUIRE(out->frames.size() == 2);
  const Struct& res = out->frames[1];
  CHECK(str(res, "id") == "c1");
  CHECK(okOf(res));
  CHECK(obj(res, "payload").fields().at("protocol").number_value() == 1);
  CHECK(str(obj(res, "payload"), "connId") == connection->connId());
  CHECK(connection->authenticated());
  CHECK_FALSE(out->closedWith);
  CHECK(connection->maxMessageBytes() == h.options.maxFrameBytes);
}

TEST_CASE("connection: wrong token, wrong nonce or another method first are refused and closed") {
  Harness h;
  SUBCASE("wrong token") {
    auto [connection, out] = h.open();
    connection->onMessage(Harness::connectFrame(*out, "guess"));
    CHECK(str(obj(out->frames.back(), "error"), "code") == "UNAUTHORIZED");
    CHECK(out->closedWith == 1008);
    CHECK_FALSE(connection->authenticated());
  }
  SUBCASE("wrong nonce") {
    auto [connection, out] = h.open();
    connection->onMessage(R"({"type":"req","id":"1","method":"connect","params":{"auth":)"
                          R"({"token":"s3cret-token"},"nonce":"00000000000000000000000000000000",)"
                          R"("client":{"id":"cli","user":"alice"}}})");
    CHECK(str(obj(out->frames.back(), "error"), "message").find("nonce") != std::string::npos);
    CHECK(out->closedWith == 1008);
  }
  SUBCASE("another method first") {
    auto [connection, out] = h.open();
    connection->onMessage(R"({"type":"req","id":"1","method":"health"})");
    CHECK(str(obj(out->frames.back(), "error"), "code") == "UNAUTHORIZED");
    CHECK(out->closedWith == 1008);
  }
  SUBCASE("input after the refusal is ignored") {
    auto [connection, out] = h.open();
    connection->onMessage("nonsense");
    size_t count = out->frames.size();
    connection->onMessage(Harness::connectFrame(*out, TOKEN));
    CHECK(out->frames.size() == count);
    CHECK_FALSE(connection->authenticated());
  }
}

// Issue 8 §9: the old lockout barred the right token too, so any local process could lock the
// owner out of their own gateway by failing on purpose.
TEST_CASE(
    "connection: after five failures only failing connections wait; the right token gets in") {
  Harness h;
  for (int i = 0; i < 4; ++i) {
    auto [connection, out] = h.open("10.1.1.1");
    connection->onMessage(Harness::connectFrame(*out, "guess"));
    CHECK(out->closedWith == 1008);  // answered at once
  }
  auto [failing, failingOut] = h.open("10.1.1.1");
  failing->onMessage(Harness::connectFrame(*failingOut, "guess"));
  size_t before = failingOut->frames.size();
  CHECK_FALSE(failingOut->closedWith);                            // held: no answer yet
  failing->onMessage(Harness::connectFrame(*failingOut, TOKEN));  // ignored now
  CHECK(failingOut->frames.size() == before);

  auto [right, rightOut] = h.open("10.1.1.1");
  right->onMessage(Harness::connectFrame(*rightOut, TOKEN));
  CHECK(right->authenticated());

  h.now += 300ms;
  failing->onTick();
  CHECK(str(obj(failingOut->frames.back(), "error"), "code") == "UNAUTHORIZED");
  CHECK(failingOut->closedWith == 1008);
  CHECK_FALSE(failing->authenticated());
}

TEST_CASE("connection: no connect within 10 s closes the connection") {
  Harness h;
  auto [connection, out] = h.open();
  h.now += 9s;
  connection->onTick();
  CHECK_FALSE(out->closedWith);
  h.now += 1s;
  connection->onTick();
  CHECK(out->closedWith == 1008);
  CHECK(str(obj(out->frames.back(), "error"), "message").find("10 s") != std::string::npos);
}

TEST_CASE("connection: before connect only small frames are read") {
  Harness h;
  auto [connection, out] = h.open();
  CHECK(connection->maxMessageBytes() == MAX_UNAUTHENTICATED_FRAME_BYTES);
  connection->onOversized();
  CHECK(str(obj(out->frames.back(), "error"), "code") == "FRAME_TOO_LARGE");
  CHECK(out->closedWith == 1008);
}

TEST_CASE("connection: after connect, bad frames get errors and the connection stays open") {
  Harness h;
  auto [connection, out] = h.connected();
  connection->onMessage("{not json");
  connection->onMessage(R"({"type":"req","id":"2","method":"nope"})");
  connection->onMessage(
      R"({"type":"req","id":"3","method":"chat.history","params":{"limit":"x"}})");
  connection->onOversized();
  connection->onBinary();
  connection->onMessage(R"({"type":"req","id":"4","method":"health"})");
  REQUIRE(out->frames.size() == 6);
  CHECK(str(obj(out->frames[0], "error"), "code") == "INVALID_REQUEST");
  CHECK(str(out->frames[0], "id") == "");
  CHECK(str(obj(out->frames[1], "error"), "code") == "UNKNOWN_METHOD");
  CHECK(str(obj(out->frames[2], "error"), "code") == "INVALID_REQUEST");
  CHECK(str(out->frames[2], "id") == "3");
  CHECK(str(obj(out->frames[3], "error"), "code") == "FRAME_TOO_LARGE");
  CHECK(str(obj(out->frames[4], "error"), "code") == "INVALID_REQUEST");
  CHECK(okOf(out->frames[5]));
  CHECK(obj(out->frames[5], "payload").fields().at("ok").bool_value());
  CHECK_FALSE(out->closedWith);
}

TEST_CASE("connection: service errors pass through; exceptions become INTERNAL with a ref") {
  Harness h;
  auto [connection, out] = h.connected();
  connection->onMessage(R"({"type":"req","id":"h","method":"chat.history","params":{}})");
  CHECK(str(obj(out->frames.back(), "error"), "code") == "NOT_FOUND");
  CHECK(str(obj(out->frames.back(), "error"), "message") == "no such session");

  h.service.throwOnStatus = true;
  connection->onMessage(R"({"type":"req","id":"s","method":"status"})");
  const Struct& error = obj(out->frames.back(), "error");
  CHECK(str(out->frames.back(), "id") == "s");
  CHECK(str(error, "code") == "INTERNAL");
  CHECK(str(error, "message").find("internal error (ref ") == 0);
  CHECK(str(error, "message").find("shadow") == std::string::npos);
}

TEST_CASE("connection: agent replies accepted, streams events in seq order, then the result") {
  Harness h;
  auto [connection, out] = h.connected();
  connection->onMessage(R"({"type":"req","id":"a","method":"agent","params":{"message":"hi"}})");
  REQUIRE(out->frames.size() == 1);
  CHECK(str(out->frames[0], "id") == "a");
  CHECK(str(obj(out->frames[0], "payload"), "status") == "accepted");
  std::string runId = str(obj(out->frames[0], "payload"), "runId");

  auto sink = h.service.sinks.at(runId);
  AgentEvent event;
  event.set_run_id(runId);
  event.set_stream("assistant");
  event.set_delta("Hel");
  sink->event(event);
  event.set_delta("lo");
  sink->event(event);
  AgentResult result;
  result.set_run_id(runId);
  result.set_status("ok");
  result.set_reply("Hello");
  sink->finished(result);

  REQUIRE(out->frames.size() == 4);
  CHECK(str(out->frames[1], "event") == "agent");
  CHECK(str(obj(out->frames[1], "payload"), "delta") == "Hel");
  double seq1 = out->frames[1].fields().at("seq").number_value();
  double seq2 = out->frames[2].fields().at("seq").number_value();
  CHECK(seq2 == seq1 + 1);
  CHECK(str(out->frames[3], "type") == "res");
  CHECK(str(out->frames[3], "id") == "a");
  CHECK(str(obj(out->frames[3], "payload"), "reply") == "Hello");

  // Late callbacks for a finished run are dropped.
  sink->event(event);
  CHECK(out->frames.size() == 4);
}

TEST_CASE("connection: a result delivered inside startRun still follows the accepted reply") {
  Harness h;
  h.service.finishInsideStart = true;
  auto [connection, out] = h.connected();
  connection->onMessage(R"({"type":"req","id":"a","method":"agent","params":{"message":"hi"}})");
  REQUIRE(out->frames.size() == 2);
  CHECK(str(obj(out->frames[0], "payload"), "status") == "accepted");
  CHECK(str(obj(out->frames[1], "payload"), "status") == "error");
}

TEST_CASE("connection: a refused run is an error reply and nothing else") {
  Harness h;
  auto [connection, out] = h.connected();
  connection->onMessage(
      R"({"type":"req","id":"a","method":"agent","params":{"message":"refuse"}})");
  REQUIRE(out->frames.size() == 1);
  CHECK(str(obj(out->frames[0], "error"), "code") == "UNAVAILABLE");
  connection->onMessage(R"({"type":"req","id":"b","method":"agent","params":{"message":""}})");
  CHECK(str(obj(out->frames[1], "error"), "message").find("empty") != std::string::npos);
}

TEST_CASE("connection: the same idempotency key returns the original run, not a new one") {
  Harness h;
  auto [connection, out] = h.connected();
  std::string frame =
      R"({"type":"req","id":"ID","method":"agent","params":{"message":"hi","idempotencyKey":"k1"}})";
  connection->onMessage(std::string(frame).replace(frame.find("ID"), 2, "a1"));
  connection->onMessage(std::string(frame).replace(frame.find("ID"), 2, "a2"));
  CHECK(h.service.started == 1);
  REQUIRE(out->frames.size() == 2);
  std::string runId = str(obj(out->frames[0], "payload"), "runId");
  CHECK(str(obj(out->frames[1], "payload"), "runId") == runId);

  AgentResult result;
  result.set_run_id(runId);
  result.set_status("ok");
  h.service.sinks.at(runId)->finished(result);
  REQUIRE(out->frames.size() == 4);  // both requests get their final reply
  CHECK(str(out->frames[2], "id") == "a1");
  CHECK(str(out->frames[3], "id") == "a2");

  // A retry after the run ended gets accepted + the remembered result right away.
  connection->onMessage(std::string(frame).replace(frame.find("ID"), 2, "a3"));
  CHECK(h.service.started == 1);
  REQUIRE(out->frames.size() == 6);
  CHECK(str(obj(out->frames[5], "payload"), "status") == "ok");

  // After ten minutes the key is forgotten.
  h.now += 11min;
  connection->onTick();
  connection->onMessage(std::string(frame).replace(frame.find("ID"), 2, "a4"));
  CHECK(h.service.started == 2);
}

TEST_CASE("connection: abort answers aborted:true or NOT_FOUND") {
  Harness h;
  auto [connection, out] = h.connected();
  connection->onMessage(R"({"type":"req","id":"a","method":"agent","params":{"message":"hi"}})");
  std::string runId = str(obj(out->frames[0], "payload"), "runId");
  connection->onMessage(R"({"type":"req","id":"x","method":"agent.abort","params":{"runId":")" +
                        runId + R"("}})");
  CHECK(obj(out->frames.back(), "payload").fields().at("aborted").bool_value());
  connection->onMessage(
      R"({"type":"req","id":"y","method":"agent.abort","params":{"runId":"run-99"}})");
  CHECK(str(obj(out->frames.back(), "error"), "code") == "NOT_FOUND");
}

TEST_CASE("connection: run callbacks after the connection has gone are harmless") {
  Harness h;
  auto [connection, out] = h.connected();
  connection->onMessage(R"({"type":"req","id":"a","method":"agent","params":{"message":"hi"}})");
  auto sink = h.service.sinks.begin()->second;
  h.live.clear();  // the client left
  AgentEvent event;
  event.set_delta("late");
  sink->event(event);
  sink->finished(AgentResult());
  CHECK(h.live.empty());
}

}  // namespace
}  // namespace chitin::gateway
