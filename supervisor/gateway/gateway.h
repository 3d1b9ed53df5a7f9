// SPDX-License-Identifier: Apache-2.0
// The gateway: one HTTP + WebSocket port on the supervisor's libuv loop (libwebsockets).
// Runs in: supervisor
//
// Serves GET /healthz, the web chat (web/), and the JSON-frame control protocol described in
// proto/gateway.proto. Every connection must `connect` with the gateway token (loopback is not
// trusted by itself); browser Origins are checked; failed authentication is rate-limited per
// remote address; oversized or malformed frames get an error frame and the connection lives on.

#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "agent-service.h"

typedef struct uv_loop_s uv_loop_t;

namespace chitin::gateway {

struct GatewayOptions {
  std::string bind = "127.0.0.1";
  uint16_t port = 18789;  // 0 = pick a free port (tests)
  std::string token;      // required
  // Besides http://127.0.0.1:PORT, http://localhost:PORT and http://[::1]:PORT; each exactly
  // scheme://host[:port].
  std::vector<std::string> allowedOrigins;
  std::string webRoot;  // directory with index.html etc.; empty = no web chat
  uint32_t maxFrameBytes = 1 << 20;
  // Beyond this many open WebSockets new upgrades get 503: a runaway client cannot exhaust the
  // supervisor's descriptors (config gateway.max_connections).
  uint32_t maxConnections = 1024;
  uint32_t authFailuresBeforeLockout = 5;
  uint32_t lockoutSeconds = 60;
  std::string version;
};

class Gateway {
 public:
  Gateway(uv_loop_t* loop, GatewayOptions options, AgentService& service);
  ~Gateway();

  // Binds and starts serving. Throws std::runtime_error naming the address on failure; the
  // caller then still runs the teardown below (lws may already own handles on the loop).
  void start();
  // Closes all connections and the listener. Follows lws 4.1's two-step foreign-loop teardown:
  // call stop(), run the loop until lws' handles close, then finishStop().
  void stop();
  void finishStop();

  uint16_t port() const;  // the bound port (after start)
  // Sends an event to every authenticated connection.
  void broadcast(const std::string& event, const google::protobuf::Message& payload);
  uint32_t connectionCount() const;

  struct Impl;  // public only so the lws callbacks in gateway.c++ can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace chitin::gateway
