// SPDX-License-Identifier: Apache-2.0
// The gateway: libwebsockets on the supervisor's libuv loop, serving HTTP (health, web chat)
// and the WebSocket control protocol on one port.
// Runs in: supervisor
//
// This file is the WebSocket transport and the lifecycle: reassembling messages, queueing
// writes, the two-step teardown (HTTP and the upgrade checks are in gateway-http.c++). The
// protocol itself lives in connection.c++, one Connection per socket, found by serial number so
// that a late reply never touches a freed wsi.

#include "gateway.h"

#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <kj/debug.h>

#include "gateway-impl.h"
#include "lws-loader.h"

namespace chitin::gateway {

using namespace internal;

namespace {

// Frames written in one writeable callback at most, so one busy socket does not hold the loop.
constexpr int MAX_FRAMES_PER_WRITEABLE = 16;

// lws keeps pointers into this table for the context's lifetime (and copies it per vhost, so
// connections are found through our registry, never by protocol pointer).
const lws_protocols PROTOCOLS[] = {
    {"http", httpCallback, sizeof(HttpSession), 0, 0, nullptr, 0},
    {WS_PROTOCOL, wsCallback, sizeof(WsSession), 4096, 0, nullptr, 0},
    {nullptr, nullptr, 0, 0, 0, nullptr, 0},
};
// Upgrades that name no subprotocol (browsers, the CLI) land on the gateway protocol.
const lws_protocol_vhost_options PVO_DEFAULT = {nullptr, nullptr, "default", "1"};
const lws_protocol_vhost_options PVO = {nullptr, &PVO_DEFAULT, WS_PROTOCOL, ""};

void lwsLog(int level, const char* line) {
  std::string_view text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  if (level & LLL_ERR) {
    spdlog::error("lws: {}", text);
  } else {
    spdlog::warn("lws: {}", text);
  }
}

// Names the address in the error before lws tries (lws only logs why a bind failed).
void checkBindable(const std::string& address, uint16_t port) {
  bool v6 = address.find(':') != std::string::npos;
  sockaddr_storage storage{};
  socklen_t length;
  if (v6) {
    auto* sa = reinterpret_cast<sockaddr_in6*>(&storage);
    sa->sin6_family = AF_INET6;
    sa->sin6_port = htons(port);
    if (inet_pton(AF_INET6, address.c_str(), &sa->sin6_addr) != 1) {
      throw std::runtime_error("gateway bind address \"" + address + "\" is not an IP address");
    }
    length = sizeof(sockaddr_in6);
  } else {
    auto* sa = reinterpret_cast<sockaddr_in*>(&storage);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    if (inet_pton(AF_INET, address.c_str(), &sa->sin_addr) != 1) {
      throw std::runtime_error("gateway bind address \"" + address + "\" is not an IP address");
    }
    length = sizeof(sockaddr_in);
  }
  int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("gateway: socket(): ") + strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&storage), length);
  int error = errno;
  close(fd);
  if (rc != 0) {
    std::string where = v6 ? "[" + address + "]" : address;
    throw std::runtime_error("gateway cannot listen on " + where + ":" + std::to_string(port) +
                             ": " + strerror(error));
  }
}

}  // namespace

int internal::wsCallback(lws* wsi, lws_callback_reasons reason, void* user, void* in, size_t len) {
  switch (reason) {
    // Being the vhost's default protocol, this one (not "http") is bound while lws decides
    // on an upgrade, so the Origin/path check must be here.
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
      return confirmUpgrade(wsi, implOf(wsi), static_cast<const char*>(in));

    case LWS_CALLBACK_ESTABLISHED: {
      Gateway::Impl& impl = implOf(wsi);
      char peer[INET6_ADDRSTRLEN + 8] = "";
      lws_get_peer_simple(wsi, peer, sizeof peer);
      uint64_t serial = impl.nextSerial++;
      static_cast<WsSession*>(user)->serial = serial;
      auto socket = std::make_unique<Gateway::Impl::Socket>(impl, wsi, serial, peer);
      Connection& connection = socket->connection;
      impl.sockets.emplace(serial, std::move(socket));
      connection.open();
      return 0;
    }

    case LWS_CALLBACK_RECEIVE: {
      Gateway::Impl::Socket* socket = implOf(wsi).socketFor(user);
      if (socket == nullptr) return -1;
      if (lws_is_first_fragment(wsi)) {
        socket->rx.clear();
        socket->rxOversized = false;
        socket->rxBinary = lws_frame_is_binary(wsi) != 0;
      }
      // Reassemble up to the limit; past it, drop what came and ignore the rest of the message.
      if (!socket->rxOversized) {
        if (socket->rx.size() + len > socket->connection.maxMessageBytes()) {
          socket->rxOversized = true;
          std::string().swap(socket->rx);
        } else {
          socket->rx.append(static_cast<const char*>(in), len);
        }
      }
      if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) != 0) return 0;
      if (socket->rxBinary) {
        socket->connection.onBinary();
      } else if (socket->rxOversized) {
        socket->connection.onOversized();
      } else {
        socket->connection.onMessage(socket->rx);
      }
      socket->rx.clear();
      if (socket->rx.capacity() > 64 * 1024) std::string().swap(socket->rx);
      return 0;
    }

    case LWS_CALLBACK_SERVER_WRITEABLE: {
      Gateway::Impl::Socket* socket = implOf(wsi).socketFor(user);
      if (socket == nullptr || socket->kill) return -1;
      if (!socket->queue.empty()) {
        // Several frames per callback while the socket takes them (a turn's last events and
        // its result are queued together): one wait for writability, not one per frame. The
        // first write is the one lws guarantees; each further one only when
        // lws_send_pipe_choked() says nothing is left over and the socket is writable.
        for (int written = 0; !socket->queue.empty() && written < MAX_FRAMES_PER_WRITEABLE;
             ++written) {
          if (written > 0 && lws_send_pipe_choked(wsi)) break;
          std::string& frame = socket->queue.front();
          size_t length = frame.size() - LWS_PRE;
          int n = lws_write(wsi, reinterpret_cast<unsigned char*>(frame.data()) + LWS_PRE, length,
                            LWS_WRITE_TEXT);
          if (n < 0 || static_cast<size_t>(n) < length) return -1;
          socket->queuedBytes -= frame.size();
          socket->queue.pop_front();
        }
        if (!socket->queue.empty() || socket->closeCode) lws_callback_on_writable(wsi);
        return 0;
      }
      if (socket->closeCode) implOf(wsi).closeSoon(socket->connection.serial());
      return 0;
    }

    case LWS_CALLBACK_CLOSED: {
      Gateway::Impl& impl = implOf(wsi);
      if (user != nullptr) impl.sockets.erase(static_cast<WsSession*>(user)->serial);
      return 0;
    }

    default:
      break;
  }
  return 0;
}

Gateway::Gateway(uv_loop_t* loop, GatewayOptions options, AgentService& service)
    : impl_(std::make_unique<Impl>(loop, std::move(options), service)) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  // Non-owning: the Impl outlives every use through the router; reset in finishStop().
  impl_->routerOwner = std::shared_ptr<RunRouter>(impl_.get(), [](RunRouter*) {});
  impl_->context.router = impl_->routerOwner;
}

Gateway::~Gateway() {
  if (impl_->lwsContext != nullptr) {
    spdlog::error("gateway destroyed without stop()/finishStop(); leaking its lws context");
  }
}

void Gateway::start() {
  Impl& impl = *impl_;
  KJ_REQUIRE(impl.lwsContext == nullptr && !impl.stopping, "a Gateway starts only once");
  const GatewayOptions& options = impl.options;
  if (options.token.empty()) throw std::runtime_error("gateway token is empty");
  if (options.maxFrameBytes == 0) throw std::runtime_error("gateway maxFrameBytes is 0");
  impl.web.emplace(options.webRoot);
  if (options.port != 0) checkBindable(options.bind, options.port);
  // libwebsockets is opened here, not linked (lws-loader.h).
  if (std::string problem = loadLibwebsockets(); !problem.empty())
    throw std::runtime_error("gateway: " + problem + " (apt-get install libwebsockets17)");

  lws_set_log_level(LLL_ERR | LLL_WARN, lwsLog);
  bool v6 = options.bind.find(':') != std::string::npos;
  impl.foreignLoops[0] = impl.loop;

  lws_context_creation_info info{};
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                 (v6 ? 0 : LWS_SERVER_OPTION_DISABLE_IPV6);
  info.foreign_loops = impl.foreignLoops;
  info.user = &impl;
  info.gid = -1;
  info.uid = -1;
  info.protocols = PROTOCOLS;
  impl.lwsContext = lws_create_context(&info);
  if (impl.lwsContext == nullptr) {
    throw std::runtime_error(
        "gateway: libwebsockets failed to start on the libuv loop "
        "(is libwebsockets-evlib-uv installed?)");
  }

  info.vhost_name = "chitin";
  info.port = options.port;
  info.iface = options.bind.c_str();
  info.pvo = &PVO;
  info.server_string = "chitin";
  impl.vhost = lws_create_vhost(impl.lwsContext, &info);
  std::string where =
      (v6 ? "[" + options.bind + "]" : options.bind) + ":" + std::to_string(options.port);
  if (impl.vhost == nullptr) {
    throw std::runtime_error("gateway cannot listen on " + where + " (see the lws log above)");
  }
  int port = lws_get_vhost_listen_port(impl.vhost);
  if (port <= 0 || port > 65535) throw std::runtime_error("gateway: no listen port on " + where);
  impl.boundPort = static_cast<uint16_t>(port);

  impl.origins.emplace(impl.boundPort, options.allowedOrigins);
  impl.contentSecurityPolicy = "default-src 'self'; connect-src 'self'";
  for (const std::string& source : impl.origins->webSocketSources()) {
    impl.contentSecurityPolicy += " " + source;
  }
  impl.contentSecurityPolicy += "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

  impl.tick = new uv_timer_t;
  uv_timer_init(impl.loop, impl.tick);
  impl.tick->data = &impl;
  uv_timer_start(
      impl.tick,
      [](uv_timer_t* timer) {
        auto& self = *static_cast<Impl*>(timer->data);
        // Collect first: a tick may close connections, and closing never erases synchronously,
        // but the copy keeps this loop independent of that detail.
        std::vector<uint64_t> serials;
        for (auto& [serial, socket] : self.sockets) serials.push_back(serial);
        for (uint64_t serial : serials) {
          if (Connection* connection = self.findConnection(serial)) connection->onTick();
        }
      },
      1000, 1000);
  uv_unref(reinterpret_cast<uv_handle_t*>(impl.tick));
  impl.closer = new uv_timer_t;
  uv_timer_init(impl.loop, impl.closer);
  impl.closer->data = &impl;
  uv_unref(reinterpret_cast<uv_handle_t*>(impl.closer));
  spdlog::info("gateway listening on {}", (v6 ? "[" + options.bind + "]" : options.bind) + ":" +
                                              std::to_string(impl.boundPort));
}

void Gateway::stop() {
  Impl& impl = *impl_;
  for (uv_timer_t** timer : {&impl.tick, &impl.closer}) {
    if (*timer == nullptr) continue;
    uv_close(reinterpret_cast<uv_handle_t*>(*timer),
             [](uv_handle_t* handle) { delete reinterpret_cast<uv_timer_t*>(handle); });
    *timer = nullptr;
  }
  // First half of lws 4.1's foreign-loop teardown: closes every connection (their CLOSED
  // callbacks empty the registry) and starts closing lws' uv handles.
  // A second call here would be the second half, before the loop has run: only once.
  if (impl.lwsContext != nullptr && !impl.stopping) lws_context_destroy(impl.lwsContext);
  impl.stopping = true;
}

void Gateway::finishStop() {
  Impl& impl = *impl_;
  // Second half, after the loop has run the handle closes: frees the context.
  KJ_REQUIRE(impl.stopping || impl.lwsContext == nullptr, "finishStop() before stop()");
  if (impl.lwsContext != nullptr) {
    lws_context_destroy(impl.lwsContext);
    impl.lwsContext = nullptr;
    impl.vhost = nullptr;
  }
  impl.sockets.clear();
  impl.routerOwner.reset();
}

uint16_t Gateway::port() const { return impl_->boundPort; }

uint32_t Gateway::connectionCount() const { return static_cast<uint32_t>(impl_->sockets.size()); }

void Gateway::broadcast(const std::string& event, const google::protobuf::Message& payload) {
  for (auto& [serial, socket] : impl_->sockets) socket->connection.broadcastEvent(event, payload);
}

}  // namespace chitin::gateway
