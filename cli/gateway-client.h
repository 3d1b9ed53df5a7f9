// SPDX-License-Identifier: Apache-2.0
// The CLI's client for the gateway's WebSocket control protocol (proto/gateway.proto).
// Runs in: CLI (the invoking user's process, unprivileged)
//
// Why a small blocking RFC 6455 client over a TCP socket instead of libwebsockets' client:
// a CLI command is one connection, a handful of frames and then exit, and its budget is
// `chitin status` in 20 ms. lws needs a context (vhost, protocol table, its own poll loop,
// callbacks that may only write from WRITEABLE) whose setup and teardown dominate such a run
// and turn "send, then wait for the answer with a deadline" into a state machine. Here every
// call is send-then-poll() on one non-blocking socket, so each deadline is one poll timeout,
// start-up does no work beyond connect(), and the whole client is readable in one file.
// Scope is what the gateway speaks: ws:// only (the gateway binds loopback; reach a remote one
// through an SSH tunnel), text messages with fragmentation, ping/pong, close, and a checked
// 101 answer (Sec-WebSocket-Accept computed with OpenSSL's SHA-1).
//
// Errors: failing to reach or to talk to the gateway, or being refused at `connect`, throws
// GatewayError (its kind decides the CLI's exit code); a request the gateway answers with
// ok:false is an expected outcome and comes back as a Response value.

#pragma once

#include <cstdint>
#include <cstdlib>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace chitin::cli {

// ws://HOST[:PORT][/PATH]; HOST may be a name, an IPv4 address or [IPv6].
struct GatewayUrl {
  std::string host;  // without brackets
  uint16_t port = 0;
  std::string path;  // "/ws" when the URL has none
  std::string text;  // the URL as given, for messages

  // Throws std::invalid_argument naming the URL and what was expected.
  static GatewayUrl parse(std::string_view url);
};

class GatewayError : public std::runtime_error {
 public:
  enum class Kind {
    UNREACHABLE,      // no gateway answers at the URL (refused, no route, timeout, not 101)
    REJECTED,         // the gateway refused `connect` (UNAUTHORIZED, INVALID_REQUEST, ...)
    PROTOCOL,         // the peer broke RFC 6455 or the frame protocol
    CONNECTION_LOST,  // the connection closed or reset after the handshake
    TIMEOUT,          // an answer did not arrive in time
  };
  GatewayError(Kind kind, std::string message, std::string code = {})
      : std::runtime_error(std::move(message)), kind_(kind), code_(std::move(code)) {}
  Kind kind() const { return kind_; }
  const std::string& code() const { return code_; }  // the server's error code, if any

 private:
  Kind kind_;
  std::string code_;
};

// A `res` frame. Missing keys are protobuf JSON defaults (ok:false, empty payload).
struct Response {
  std::string id;
  bool ok = false;
  nlohmann::json payload = nlohmann::json::object();
  std::string errorCode;
  std::string errorMessage;
};

// An `event` frame.
struct Event {
  std::string name;
  nlohmann::json payload = nlohmann::json::object();
  uint32_t seq = 0;
};

struct ClientOptions {
  std::string token;
  std::string user;  // sent as client.user (the sender id)
  std::string clientId = "cli";
  std::string version = "0.1.0";
  int connectTimeoutMs = 2000;  // TCP connect + upgrade + challenge + connect reply
  // Larger incoming messages are a protocol error. The gateway's own bound on what it queues for
  // one connection (64 MiB): a pending approval carries its arguments (at most 4 MiB of JSON)
  // twice, as JSON and as the escaped full call, up to ~25 MiB when they are full of what must
  // be escaped, and approvals.list carries every pending one.
  size_t maxMessageBytes = 64u << 20;
};

// Protobuf's JSON mapping omits default values and writes 64-bit integers as strings. These
// read a field of a JSON object leniently: missing or of another type = the default.
inline std::string jsonString(const nlohmann::json& o, const char* key, std::string fallback = "") {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? it->get<std::string>() : fallback;
}
inline uint64_t jsonUint(const nlohmann::json& o, const char* key) {
  auto it = o.find(key);
  if (it == o.end()) return 0;
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  if (it->is_string()) return std::strtoull(it->get<std::string>().c_str(), nullptr, 10);
  return 0;
}
inline bool jsonBool(const nlohmann::json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_boolean() && it->get<bool>();
}

class GatewayClient {
 public:
  using EventHandler = std::function<void(const Event&)>;

  // Connects, upgrades, answers the challenge and authenticates. Throws GatewayError.
  GatewayClient(const GatewayUrl& url, const ClientOptions& options);
  // Sends a close frame and waits briefly for the server's, then closes the socket.
  ~GatewayClient();
  GatewayClient(const GatewayClient&) = delete;
  GatewayClient& operator=(const GatewayClient&) = delete;

  const nlohmann::json& hello() const { return hello_; }  // the connect reply's payload
  const GatewayUrl& url() const { return url_; }

  // Events arriving while waiting are passed here (in order); unset = dropped.
  void setEventHandler(EventHandler handler) { onEvent_ = std::move(handler); }
  // While waiting, a readable `fd` interrupts the wait (e.g. a SIGINT self-pipe). -1 = none.
  void setWakeFd(int fd) { wakeFd_ = fd; }

  // Sends {type:"req",id,method,params} and returns the id.
  std::string send(std::string_view method, const nlohmann::json& params);
  // Waits for the next `res` with this id, dispatching events meanwhile. Responses to other
  // ids are dropped (the CLI never has two requests it cares about in flight). timeoutMs < 0
  // waits without limit. Returns nullopt when the wake fd became readable (the byte is
  // consumed). Throws GatewayError on timeout, close or protocol violations.
  std::optional<Response> waitFor(const std::string& id, int timeoutMs);
  // send + waitFor, without the wake fd.
  Response request(std::string_view method, const nlohmann::json& params, int timeoutMs = 10000);

 private:
  enum : uint8_t {
    OP_CONT = 0,
    OP_TEXT = 1,
    OP_BINARY = 2,
    OP_CLOSE = 8,
    OP_PING = 9,
    OP_PONG = 10
  };
  struct Frame {
    bool fin;
    uint8_t opcode;
    std::string payload;
  };

  void connectSocket(int timeoutMs);
  void upgrade(int64_t deadline);
  void authenticate(int64_t deadline);
  void writeFrame(uint8_t opcode, std::string_view payload, int64_t deadline);
  void writeAll(std::string_view bytes, int64_t deadline);
  // Reads more bytes into in_; false if the wake fd fired first.
  bool fill(int64_t deadline, bool useWakeFd);
  std::optional<Frame> takeFrame();  // from in_, if complete
  // The next complete text message; handles control frames. nullopt if woken.
  std::optional<std::string> readMessage(int64_t deadline, bool useWakeFd);
  nlohmann::json parseFrame(const std::string& message);  // a JSON object, or PROTOCOL
  // Parses one message; returns the Response if it is a `res`, dispatches events.
  std::optional<Response> dispatch(const std::string& message);
  void sendCloseQuietly(std::string_view codeBytes);        // once; errors ignored (we are leaving)
  [[noreturn]] void protocolError(const std::string& why);  // close 1002, throw PROTOCOL
  [[noreturn]] void lost(const std::string& why);

  GatewayUrl url_;
  ClientOptions options_;
  int fd_ = -1;
  int wakeFd_ = -1;
  bool closed_ = false;  // a close frame was sent or received, or the socket failed
  std::string in_;       // bytes received and not yet parsed
  std::string partial_;  // a fragmented text message being reassembled
  bool inFragmented_ = false;
  uint64_t nextId_ = 1;
  nlohmann::json hello_;
  EventHandler onEvent_;
};

}  // namespace chitin::cli
