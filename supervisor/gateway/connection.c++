// SPDX-License-Identifier: Apache-2.0
// One client connection's protocol state: handshake, dispatch, and the runs it started.
// Runs in: supervisor

#include "connection.h"

#include <kj/exception.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace chitin::gateway {

namespace {

constexpr uint16_t CLOSE_POLICY_VIOLATION = 1008;
constexpr size_t MAX_CLIENT_FIELD = 64;

const std::vector<std::string> METHODS = {"connect",     "health",       "status",       "agent",
                                          "agent.abort", "chat.history", "sessions.list"};
const std::vector<std::string> EVENTS = {"connect.challenge", "agent", "approval.requested",
                                         "approval.resolved"};

std::string randomHex(size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  randombytes_buf(raw.data(), raw.size());
  std::string hex(bytes * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), raw.data(), raw.size());
  hex.pop_back();
  return hex;
}

// Compares secrets in time independent of where they differ and of their lengths: both sides
// are hashed first, so sodium_memcmp always sees 32 bytes.
bool secretEquals(std::string_view a, std::string_view b) {
  unsigned char ha[crypto_generichash_BYTES], hb[crypto_generichash_BYTES];
  crypto_generichash(ha, sizeof ha, reinterpret_cast<const unsigned char*>(a.data()), a.size(),
                     nullptr, 0);
  crypto_generichash(hb, sizeof hb, reinterpret_cast<const unsigned char*>(b.data()), b.size(),
                     nullptr, 0);
  return sodium_memcmp(ha, hb, sizeof ha) == 0;
}

// Client id and user name end up in session keys, so they are held to a plain alphabet.
bool plainName(std::string_view name) {
  if (name.empty() || name.size() > MAX_CLIENT_FIELD) return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '_' || c == '-' || c == '@';
  });
}

uint64_t millisSince(std::chrono::steady_clock::time_point from,
                     std::chrono::steady_clock::time_point to) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count());
}

class ConnectionSink final : public RunSink {
 public:
  ConnectionSink(std::weak_ptr<RunRouter> router, uint64_t serial, uint64_t slot)
      : router_(std::move(router)), serial_(serial), slot_(slot) {}

  void event(const AgentEvent& event) override {
    if (Connection* connection = find()) connection->runEvent(slot_, event);
  }
  void finished(const AgentResult& result) override {
    if (Connection* connection = find()) connection->runFinished(slot_, result);
  }

 private:
  // The client may have left (or the gateway stopped) while the run went on.
  Connection* find() {
    auto router = router_.lock();
    return router ? router->findConnection(serial_) : nullptr;
  }

  std::weak_ptr<RunRouter> router_;
  uint64_t serial_;
  uint64_t slot_;
};

}  // namespace

Connection::Connection(ConnectionContext& context, Outbox& outbox, uint64_t serial,
                       std::string remoteAddress)
    : context_(context),
      outbox_(outbox),
      serial_(serial),
      remoteAddress_(std::move(remoteAddress)),
      openedAt_(context.clock()) {
  // Idempotent and cheap after the first call; the nonce and ids below need the RNG ready.
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  identity_.connId = randomHex(8);
}

uint32_t Connection::maxMessageBytes() const {
  return authenticated_ ? context_.options.maxFrameBytes
                        : std::min(context_.options.maxFrameBytes, MAX_UNAUTHENTICATED_FRAME_BYTES);
}

void Connection::open() {
  nonce_ = randomHex(16);
  Challenge challenge;
  challenge.set_nonce(nonce_);
  challenge.set_ts(static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::system_clock::now().time_since_epoch())
                                             .count()));
  sendEvent("connect.challenge", challenge);
}

void Connection::onMessage(std::string_view text) {
  if (closing_) return;
  std::string id;
  std::string method;
  try {
    auto parsed = frames::parseRequest(text);
    if (auto* bad = std::get_if<frames::BadFrame>(&parsed)) {
      if (!authenticated_) {
        failHandshake(bad->id, bad->error, true);
      } else {
        replyError(bad->id, bad->error);
      }
      return;
    }
    auto& request = std::get<frames::Request>(parsed);
    id = request.id;
    method = request.method;
    if (!authenticated_) {
      handleConnect(request);
    } else {
      dispatch(request);
    }
  } catch (const kj::Exception& e) {
    internalError(id, method, e.getDescription().cStr());
  } catch (const std::exception& e) {
    internalError(id, method, e.what());
  }
}

void Connection::onOversized() {
  if (closing_) return;
  UserError error{
      "FRAME_TOO_LARGE",
      "frame exceeds the limit of " + std::to_string(maxMessageBytes()) + " bytes and was dropped"};
  if (!authenticated_) {
    failHandshake("", error, true);
  } else {
    replyError("", error);
  }
}

void Connection::onBinary() {
  if (closing_) return;
  UserError error{"INVALID_REQUEST", "binary frames are not accepted; send JSON text frames"};
  if (!authenticated_) {
    failHandshake("", error, true);
  } else {
    replyError("", error);
  }
}

void Connection::onTick() {
  auto now = context_.clock();
  if (!authenticated_ && !closing_ && now - openedAt_ >= CONNECT_TIMEOUT) {
    failHandshake("",
                  {"UNAUTHORIZED",
                   "no connect request within " + std::to_string(CONNECT_TIMEOUT.count()) + " s"},
                  false);
  }
  std::erase_if(idempotency_,
                [&](const auto& entry) { return now - entry.second.at >= IDEMPOTENCY_WINDOW; });
}

void Connection::failHandshake(std::string_view id, UserError error, bool countsAsFailure) {
  if (countsAsFailure) context_.limiter.recordFailure(remoteAddress_);
  spdlog::warn("gateway: connection {} from {} refused: {} {}", identity_.connId, remoteAddress_,
               error.code, error.message);
  replyError(id, std::move(error));
  closing_ = true;
  outbox_.close(CLOSE_POLICY_VIOLATION, "connect failed");
}

void Connection::handleConnect(const frames::Request& request) {
  // A locked-out address is turned away before its token is looked at, so guessing stays
  // slow however many connections it opens.
  if (uint32_t wait = context_.limiter.lockedFor(remoteAddress_)) {
    failHandshake(request.id,
                  {"LOCKED_OUT", "too many failed authentication attempts from " + remoteAddress_ +
                                     "; try again in " + std::to_string(wait) + " s"},
                  false);
    return;
  }
  if (request.method != "connect") {
    failHandshake(request.id,
                  {"UNAUTHORIZED", "the first request must be \"connect\", not \"" +
                                       frames::sanitizeMessage(request.method, 64) + "\""},
                  true);
    return;
  }
  auto parsed = frames::paramsAs<ConnectParams>(request.params, "connect");
  if (auto* error = std::get_if<UserError>(&parsed)) {
    failHandshake(request.id, *error, true);
    return;
  }
  auto& params = std::get<ConnectParams>(parsed);
  if (params.nonce().size() != nonce_.size() || !secretEquals(params.nonce(), nonce_)) {
    failHandshake(request.id,
                  {"UNAUTHORIZED", "connect.nonce does not match the connect.challenge"}, true);
    return;
  }
  if (params.auth().token().empty()) {
    failHandshake(request.id, {"UNAUTHORIZED", "connect.auth.token is missing"}, true);
    return;
  }
  if (!secretEquals(params.auth().token(), context_.options.token)) {
    failHandshake(request.id, {"UNAUTHORIZED", "invalid gateway token"}, true);
    return;
  }
  context_.limiter.recordSuccess(remoteAddress_);

  uint32_t minProtocol = params.min_protocol(), maxProtocol = params.max_protocol();
  if (minProtocol > PROTOCOL_VERSION || (maxProtocol != 0 && maxProtocol < PROTOCOL_VERSION)) {
    failHandshake(
        request.id,
        {"INVALID_REQUEST", "this gateway speaks protocol " + std::to_string(PROTOCOL_VERSION) +
                                ", the client asked for " + std::to_string(minProtocol) + ".." +
                                std::to_string(maxProtocol)},
        false);
    return;
  }
  if (!plainName(params.client().id()) || !plainName(params.client().user())) {
    failHandshake(request.id,
                  {"INVALID_REQUEST",
                   "connect.client.id and connect.client.user must be 1-64 characters of "
                   "A-Z a-z 0-9 . _ - @"},
                  false);
    return;
  }

  authenticated_ = true;
  identity_.clientId = params.client().id();
  identity_.user = params.client().user();
  spdlog::info("gateway: connection {} from {} authenticated as {}/{}", identity_.connId,
               remoteAddress_, identity_.clientId, identity_.user);

  HelloOk hello;
  hello.set_protocol(PROTOCOL_VERSION);
  hello.set_server_version(context_.options.version);
  hello.set_conn_id(identity_.connId);
  for (const auto& m : METHODS) hello.add_methods(m);
  for (const auto& m : context_.service.controlMethods()) hello.add_methods(m);
  for (const auto& e : EVENTS) hello.add_events(e);
  reply(request.id, hello);
}

void Connection::dispatch(const frames::Request& request) {
  const std::string& method = request.method;
  if (method == "health") {
    HealthPayload health;
    health.set_ok(true);
    health.set_uptime_ms(millisSince(context_.startedAt, context_.clock()));
    health.set_version(context_.options.version);
    reply(request.id, health);
  } else if (method == "status") {
    StatusPayload status = context_.service.status();
    status.set_connections(context_.connectionCount());
    reply(request.id, status);
  } else if (method == "sessions.list") {
    reply(request.id, context_.service.sessions());
  } else if (method == "chat.history") {
    auto params = frames::paramsAs<ChatHistoryParams>(request.params, method);
    if (auto* error = std::get_if<UserError>(&params)) return replyError(request.id, *error);
    auto history = context_.service.history(std::get<ChatHistoryParams>(params), identity_);
    if (auto* error = std::get_if<UserError>(&history)) return replyError(request.id, *error);
    reply(request.id, std::get<ChatHistory>(history));
  } else if (method == "agent") {
    startAgent(request);
  } else if (method == "agent.abort") {
    abortAgent(request);
  } else if (method == "connect") {
    replyError(request.id, {"INVALID_REQUEST", "this connection is already connected"});
  } else if (context_.service.controlLater(
                 method, request.params, identity_,
                 [router = context_.router, serial = serial_,
                  id = request.id](Result<google::protobuf::Struct> answer) {
                   // The client may have left while the answer was being made.
                   auto live = router.lock();
                   Connection* connection = live ? live->findConnection(serial) : nullptr;
                   if (!connection) return;
                   if (auto* error = std::get_if<UserError>(&answer))
                     return connection->replyError(id, *error);
                   connection->reply(id, std::get<google::protobuf::Struct>(answer));
                 })) {
    // Answered when the work is done.
  } else if (auto answer = context_.service.control(method, request.params, identity_)) {
    if (auto* error = std::get_if<UserError>(&*answer)) return replyError(request.id, *error);
    reply(request.id, std::get<google::protobuf::Struct>(*answer));
  } else {
    replyError(request.id, {"UNKNOWN_METHOD",
                            "unknown method \"" + frames::sanitizeMessage(method, 64) + "\""});
  }
}

void Connection::startAgent(const frames::Request& request) {
  auto parsed = frames::paramsAs<AgentParams>(request.params, "agent");
  if (auto* error = std::get_if<UserError>(&parsed)) return replyError(request.id, *error);
  auto& params = std::get<AgentParams>(parsed);
  if (params.message().empty()) {
    return replyError(request.id, {"INVALID_REQUEST", "agent.message must not be empty"});
  }

  const std::string& key = params.idempotency_key();
  if (!key.empty()) {
    auto it = idempotency_.find(key);
    if (it != idempotency_.end() && context_.clock() - it->second.at < IDEMPOTENCY_WINDOW) {
      // A retry of a request already started: same run, no second turn. The client still gets
      // the usual pair of replies, the final one now or when the run ends.
      reply(request.id, it->second.accepted);
      if (it->second.result) {
        reply(request.id, *it->second.result);
      } else if (auto run = runs_.find(it->second.slot); run != runs_.end()) {
        run->second.requestIds.push_back(request.id);
      }
      return;
    }
    if (idempotency_.size() >= MAX_IDEMPOTENCY_KEYS) {
      return replyError(request.id, {"RATE_LIMITED",
                                     "too many idempotency keys in use on this "
                                     "connection; retry later"});
    }
  }

  uint64_t slot = nextSlot_++;
  runs_[slot] = Run{{request.id}, key, false, {}, std::nullopt};
  Result<AgentAccepted> started;
  try {
    started = context_.service.startRun(params, identity_, makeSink(slot));
  } catch (...) {
    runs_.erase(slot);
    throw;
  }
  if (auto* error = std::get_if<UserError>(&started)) {
    runs_.erase(slot);
    return replyError(request.id, *error);
  }
  AgentAccepted accepted = std::get<AgentAccepted>(std::move(started));
  if (accepted.status().empty()) accepted.set_status("accepted");
  if (!key.empty()) idempotency_[key] = Remembered{accepted, slot, std::nullopt, context_.clock()};

  auto run = runs_.find(slot);
  if (run == runs_.end()) return;  // cannot happen: only runFinished after acceptance erases
  run->second.accepted = true;
  reply(request.id, accepted);
  std::vector<AgentEvent> early = std::move(run->second.early);
  std::optional<AgentResult> earlyResult = std::move(run->second.earlyResult);
  for (const auto& event : early) sendEvent("agent", event);
  if (earlyResult) runFinished(slot, *earlyResult);
}

void Connection::abortAgent(const frames::Request& request) {
  auto parsed = frames::paramsAs<AbortParams>(request.params, "agent.abort");
  if (auto* error = std::get_if<UserError>(&parsed)) return replyError(request.id, *error);
  const std::string& runId = std::get<AbortParams>(parsed).run_id();
  if (runId.empty()) return replyError(request.id, {"INVALID_REQUEST", "agent.abort needs runId"});
  auto aborted = context_.service.abortRun(runId);
  if (auto* error = std::get_if<UserError>(&aborted)) return replyError(request.id, *error);
  if (!std::get<bool>(aborted)) {
    return replyError(
        request.id, {"NOT_FOUND", "no active run \"" + frames::sanitizeMessage(runId, 64) + "\""});
  }
  google::protobuf::Struct payload;
  (*payload.mutable_fields())["aborted"].set_bool_value(true);
  reply(request.id, payload);
}

void Connection::runEvent(uint64_t slot, const AgentEvent& event) {
  auto run = runs_.find(slot);
  if (run == runs_.end()) return;
  if (!run->second.accepted) {
    run->second.early.push_back(event);
    return;
  }
  if (closing_) return;
  try {
    sendEvent("agent", event);
  } catch (const std::exception& e) {
    spdlog::error("gateway: dropping an agent event of connection {}: {}", identity_.connId,
                  e.what());
  }
}

void Connection::runFinished(uint64_t slot, const AgentResult& result) {
  auto run = runs_.find(slot);
  if (run == runs_.end()) return;
  if (!run->second.accepted) {
    run->second.earlyResult = result;
    return;
  }
  Run finished = std::move(run->second);
  runs_.erase(run);
  if (!finished.idempotencyKey.empty()) {
    auto remembered = idempotency_.find(finished.idempotencyKey);
    if (remembered != idempotency_.end() && remembered->second.slot == slot) {
      remembered->second.result = result;
    }
  }
  if (closing_) return;
  for (const auto& id : finished.requestIds) {
    try {
      reply(id, result);
    } catch (const std::exception& e) {
      internalError(id, "agent", e.what());
    }
  }
}

std::shared_ptr<RunSink> Connection::makeSink(uint64_t slot) {
  return std::make_shared<ConnectionSink>(context_.router, serial_, slot);
}

void Connection::reply(std::string_view id, const google::protobuf::Message& payload) {
  outbox_.send(frames::printResult(id, payload));
}

void Connection::replyError(std::string_view id, UserError error) {
  outbox_.send(frames::printError(id, error));
}

void Connection::broadcastEvent(std::string_view event, const google::protobuf::Message& payload) {
  if (authenticated_ && !closing_) sendEvent(event, payload);
}

void Connection::sendEvent(std::string_view event, const google::protobuf::Message& payload) {
  outbox_.send(frames::printEvent(event, payload, nextSeq_++));
}

void Connection::internalError(std::string_view id, std::string_view method,
                               std::string_view detail) {
  std::string ref = randomHex(4);
  spdlog::error("gateway: internal error ref {} in \"{}\" on connection {}: {}", ref,
                frames::sanitizeMessage(method, 64), identity_.connId, detail);
  try {
    replyError(id, {"INTERNAL", "internal error (ref " + ref + ")"});
  } catch (const std::exception& e) {
    spdlog::error("gateway: cannot send the error reply for ref {}: {}", ref, e.what());
  }
}

}  // namespace chitin::gateway
