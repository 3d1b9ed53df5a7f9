// SPDX-License-Identifier: Apache-2.0
// Fuzz target: a whole client session on one gateway Connection (handshake, dispatch, runs,
// idempotency, late run events), with a scripted AgentService and no sockets.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: one text frame per line. Two placeholders let the fuzzer get past the handshake,
// which it could never guess: `$NONCE` becomes the connect.challenge's nonce and `$TOKEN` the
// gateway token. Lines starting with '#' drive the transport and the runs instead:
//   #tick N     advance the clock N seconds and call onTick()
//   #oversized  #binary   the transport's other two callbacks
//   #event      every live run emits an assistant delta
//   #finish     every live run finishes
// Checks: every frame sent is valid JSON in valid UTF-8 with a "type"; nothing is sent after
// close(); an unauthenticated connection never sees anything but the challenge and errors.

#include <google/protobuf/util/json_util.h>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "connection.h"
#include "fuzz-support.h"
#include "utf8.h"

using namespace chitin::gateway;
using namespace std::chrono_literals;

namespace {

const std::string TOKEN = "fuzz-token";

struct CheckingOutbox : Outbox {
  bool closed = false;
  std::string nonce;
  size_t sent = 0;
  void send(std::string frame) override {
    FUZZ_CHECK(!closed, "frame sent after close: " + frame);
    FUZZ_CHECK(chitin::isValidUtf8(kj::ArrayPtr<const char>(frame.data(), frame.size())), frame);
    auto json = nlohmann::json::parse(frame, nullptr, false);
    FUZZ_CHECK(json.is_object() && json.contains("type"), frame);
    if (sent++ == 0) nonce = json["payload"]["nonce"].get<std::string>();
  }
  void close(uint16_t, std::string) override { closed = true; }
};

// Accepts runs and keeps their sinks so the input decides when events and results arrive.
// Message text steers it like the gateway's FakeAgentService: "refuse" fails startRun, "fast"
// finishes inside startRun, "throw" throws from it.
struct ScriptedService : AgentService {
  std::map<std::string, std::shared_ptr<RunSink>> sinks;
  uint32_t started = 0;

  Result<AgentAccepted> startRun(const AgentParams& params, const ClientIdentity& who,
                                 std::shared_ptr<RunSink> sink) override {
    if (params.message() == "refuse") return UserError{"UNAVAILABLE", "no model"};
    if (params.message() == "throw") throw std::runtime_error("service fault");
    std::string runId = "run-" + std::to_string(++started);
    AgentAccepted accepted;
    accepted.set_run_id(runId);
    accepted.set_session_key(params.session_key().empty() ? "agent:main:" + who.clientId
                                                          : params.session_key());
    AgentEvent early;
    early.set_run_id(runId);
    early.set_stream("assistant");
    early.set_delta(params.message());
    sink->event(early);
    if (params.message() == "fast") {
      AgentResult result;
      result.set_run_id(runId);
      result.set_status("error");
      result.set_reply(params.message());
      sink->finished(result);
      return accepted;
    }
    sinks[runId] = std::move(sink);
    return accepted;
  }
  Result<bool> abortRun(const std::string& runId) override { return sinks.erase(runId) > 0; }
  Result<ChatHistory> history(const ChatHistoryParams& params, const ClientIdentity&) override {
    if (params.session_key().empty()) return UserError{"NOT_FOUND", "no such session"};
    ChatHistory history;
    history.set_session_key(params.session_key());
    return history;
  }
  SessionsList sessions() override { return {}; }
  StatusPayload status() override { return {}; }
  std::optional<Result<google::protobuf::Struct>> control(const std::string& method,
                                                          const google::protobuf::Struct& params,
                                                          const ClientIdentity&) override {
    if (method != "echo") return std::nullopt;
    return Result<google::protobuf::Struct>(params);
  }
  std::vector<std::string> controlMethods() const override { return {"echo"}; }

  void emitAll() {
    for (auto& [runId, sink] : sinks) {
      AgentEvent event;
      event.set_run_id(runId);
      event.set_stream("assistant");
      event.set_delta("more");
      sink->event(event);
    }
  }
  void finishAll() {
    auto all = std::move(sinks);
    sinks.clear();
    for (auto& [runId, sink] : all) {
      AgentResult result;
      result.set_run_id(runId);
      result.set_status("ok");
      sink->finished(result);
    }
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
  CheckingOutbox outbox;
  std::unique_ptr<Connection> connection;

  Harness() {
    options.token = TOKEN;
    options.version = "fuzz";
    options.maxFrameBytes = 64 * 1024;
    connection = std::make_unique<Connection>(context, outbox, 1, "127.0.0.1");
  }
  Connection* findConnection(uint64_t serial) override {
    return serial == 1 ? connection.get() : nullptr;
  }
};

std::string expand(std::string_view line, const std::string& nonce) {
  std::string out;
  for (size_t i = 0; i < line.size();) {
    if (line.substr(i, 6) == "$NONCE") {
      out += nonce;
      i += 6;
    } else if (line.substr(i, 6) == "$TOKEN") {
      out += TOKEN;
      i += 6;
    } else {
      out += line[i++];
    }
  }
  return out;
}

void command(Harness& h, std::string_view line) {
  if (line.rfind("#tick", 0) == 0) {
    uint32_t seconds = 0;
    for (char c : line.substr(5)) {
      if (c >= '0' && c <= '9') seconds = (seconds * 10 + (c - '0')) % 100000;
    }
    h.now += std::chrono::seconds(seconds);
    h.connection->onTick();
  } else if (line == "#oversized") {
    h.connection->onOversized();
  } else if (line == "#binary") {
    h.connection->onBinary();
  } else if (line == "#event") {
    h.service.emitAll();
  } else if (line == "#finish") {
    h.service.finishAll();
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  chitin::fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  Harness h;
  h.connection->open();
  FUZZ_CHECK(h.outbox.sent == 1 && h.outbox.nonce.size() == 32, "no challenge first");

  size_t start = 0;
  while (start <= input.size()) {
    size_t end = input.find('\n', start);
    if (end == std::string_view::npos) end = input.size();
    std::string_view line = input.substr(start, end - start);
    start = end + 1;
    if (!line.empty() && line[0] == '#') {
      command(h, line);
      continue;
    }
    std::string frame = expand(line, h.outbox.nonce);
    if (frame.size() > h.connection->maxMessageBytes()) {
      h.connection->onOversized();
    } else {
      bool wasAuthenticated = h.connection->authenticated();
      size_t before = h.outbox.sent;
      h.connection->onMessage(frame);
      // Every request gets an answer (unless the connection is already closing).
      FUZZ_CHECK(h.outbox.closed || h.outbox.sent > before || !wasAuthenticated,
                 "request without a reply: " + frame);
    }
  }
  // Runs that outlive the connection report into nothing.
  auto sinks = h.service.sinks;
  h.connection.reset();
  for (auto& [runId, sink] : sinks) {
    AgentResult result;
    result.set_run_id(runId);
    sink->finished(result);
  }
  return 0;
}
