// SPDX-License-Identifier: Apache-2.0
// Internals shared by the gateway's transport files (gateway.c++: WebSocket and lifecycle;
// gateway-http.c++: HTTP and the upgrade checks). Not part of the gateway's API.
// Runs in: supervisor

#pragma once

#include <libwebsockets.h>
#include <spdlog/spdlog.h>
#include <uv.h>

#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "auth-limiter.h"
#include "connection.h"
#include "gateway.h"
#include "origin-check.h"
#include "web-files.h"

namespace chitin::gateway {

namespace internal {

inline const char* const WS_PROTOCOL = "chitin-gateway";
// A client that stops reading is cut off instead of growing the send queue without bound.
constexpr size_t MAX_QUEUED_BYTES = 64u << 20;

struct HttpSession {
  const std::string* body;
  size_t sent;
};

struct WsSession {
  uint64_t serial;
};

int httpCallback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
int wsCallback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len);
// LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: path, subprotocol, Origin and connection limit.
int confirmUpgrade(lws* wsi, Gateway::Impl& impl, const char* upgrade);

}  // namespace internal

using internal::MAX_QUEUED_BYTES;
using internal::WsSession;

struct Gateway::Impl final : public RunRouter {
  // One WebSocket: the protocol state plus its transport buffers.
  struct Socket final : public Outbox {
    Socket(Impl& impl, lws* wsi, uint64_t serial, std::string remote)
        : wsi(wsi), connection(impl.context, *this, serial, std::move(remote)) {}

    void send(std::string frame) override {
      if (kill) return;
      std::string buffer(LWS_PRE, '\0');
      buffer += frame;
      queuedBytes += buffer.size();
      queue.push_back(std::move(buffer));
      if (queuedBytes > MAX_QUEUED_BYTES) {
        spdlog::warn("gateway: connection {} is not reading; dropping it", connection.connId());
        kill = true;
      }
      lws_callback_on_writable(wsi);
    }
    void close(uint16_t code, std::string reason) override {
      closeCode = code;
      closeReason = std::move(reason);
      lws_callback_on_writable(wsi);
    }

    lws* wsi;
    Connection connection;
    std::deque<std::string> queue;  // each with LWS_PRE bytes of headroom
    size_t queuedBytes = 0;
    std::optional<uint16_t> closeCode;
    std::string closeReason;
    bool kill = false;
    bool closeStarted = false;
    std::string rx;
    bool rxOversized = false;
    bool rxBinary = false;
  };

  Impl(uv_loop_t* loop, GatewayOptions options, AgentService& service)
      : loop(loop),
        options(std::move(options)),
        limiter(this->options.authFailuresBeforeLockout,
                std::chrono::seconds(this->options.lockoutSeconds),
                [] { return std::chrono::steady_clock::now(); }),
        context{this->options,
                service,
                limiter,
                [] { return std::chrono::steady_clock::now(); },
                [this] { return static_cast<uint32_t>(sockets.size()); },
                std::chrono::steady_clock::now(),
                {}} {}

  Connection* findConnection(uint64_t serial) override {
    auto it = sockets.find(serial);
    return it == sockets.end() ? nullptr : &it->second->connection;
  }

  // All queued frames are out; close with a proper close frame. lws 4.1 treats a nonzero
  // return from WRITEABLE as a dead socket and skips the close frame, so the close is started
  // from a uv callback instead, outside any lws callback for this wsi.
  void closeSoon(uint64_t serial) {
    closing.push_back(serial);
    if (closer == nullptr) return;
    auto run = [](uv_timer_t* timer) { static_cast<Impl*>(timer->data)->closePending(); };
    uv_timer_start(closer, run, 0, 0);
  }

  void closePending() {
    std::vector<uint64_t> serials = std::move(closing);
    closing.clear();
    for (uint64_t serial : serials) {
      auto it = sockets.find(serial);
      if (it == sockets.end() || it->second->closeStarted) continue;
      Socket& socket = *it->second;
      socket.closeStarted = true;
      lws_close_reason(socket.wsi, static_cast<lws_close_status>(*socket.closeCode),
                       reinterpret_cast<unsigned char*>(socket.closeReason.data()),
                       std::min<size_t>(socket.closeReason.size(), 120));
      // Sends the close frame and waits (5 s at most) for the client's; may also free the
      // wsi right away, which erases `socket` through the CLOSED callback.
      lws_set_timeout(socket.wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_SYNC);
    }
  }

  Socket* socketFor(void* user) {
    if (user == nullptr) return nullptr;
    auto it = sockets.find(static_cast<WsSession*>(user)->serial);
    return it == sockets.end() ? nullptr : it->second.get();
  }

  uv_loop_t* loop;
  GatewayOptions options;
  AuthLimiter limiter;
  ConnectionContext context;
  std::optional<WebFiles> web;
  std::optional<OriginCheck> origins;
  std::string contentSecurityPolicy;
  void* foreignLoops[1] = {nullptr};
  lws_context* lwsContext = nullptr;
  bool stopping = false;  // stop() has run the first half of the teardown
  lws_vhost* vhost = nullptr;
  uint16_t boundPort = 0;
  uv_timer_t* tick = nullptr;    // freed by its close callback
  uv_timer_t* closer = nullptr;  // runs closePending() outside lws callbacks
  std::vector<uint64_t> closing;
  uint64_t nextSerial = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Socket>> sockets;
  // Sinks hold the router weakly; this owner is what they lock. Points at *this.
  std::shared_ptr<RunRouter> routerOwner;
};

namespace internal {

inline Gateway::Impl& implOf(lws* wsi) {
  return *static_cast<Gateway::Impl*>(lws_context_user(lws_get_context(wsi)));
}

}  // namespace internal

}  // namespace chitin::gateway
