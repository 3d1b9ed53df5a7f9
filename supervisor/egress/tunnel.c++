// SPDX-License-Identifier: Apache-2.0
// One tunnel through the egress broker: handshake, allowlist, resolution, address check,
// connect, relay, end (the steps in broker.h).
// Runs in: supervisor

#include <kj/debug.h>

#include <memory>

#include "address.h"
#include "broker-impl.h"
#include "socks5.h"

namespace chitin::egress {

namespace {

constexpr size_t READ_BYTES = 64 * 1024;
// After a refusal the reply gets this long to reach a worker that does not read, then the
// connection is cut anyway.
constexpr uint64_t LINGER_MS = 2000;

using socks5::Reply;

}  // namespace

struct Tunnel {
  enum class State { HANDSHAKE, RESOLVING, CONNECTING, RELAY, LINGER, CLOSED };

  struct Upstream {
    uv_tcp_t tcp;
    uv_connect_t connect;
    Tunnel* tunnel;
  };

  Broker::Impl* broker;
  EndpointState* endpoint;
  uv_pipe_t client;
  uv_timer_t timer;
  Upstream* upstream = nullptr;
  int handles = 0;
  State state = State::HANDSHAKE;
  socks5::Handshake handshake;
  std::string early;  // what the worker sent after its request: the first payload
  std::string host;
  uint16_t port = 0;
  std::string address;  // the address connected to (or refused)
  bool privateOk = false;
  std::vector<sockaddr_storage> candidates;
  size_t next = 0;
  int lastError = 0;
  uint64_t up = 0, down = 0, startMs = 0;
  bool clientEof = false, upstreamEof = false;
  bool clientShutDown = false, upstreamShutDown = false;  // our write side, flushed and shut
  bool clientPaused = false, upstreamPaused = false;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  bool audited = false;
  bool reachedHost = false;  // the connect succeeded (such a tunnel is always audited)

  uv_stream_t* clientStream() { return reinterpret_cast<uv_stream_t*>(&client); }
  uv_stream_t* upstreamStream() { return reinterpret_cast<uv_stream_t*>(&upstream->tcp); }

  void start();
  void onClientBytes(char* data, ssize_t n);
  void onUpstreamBytes(char* data, ssize_t n);
  void onRequest(const socks5::Request& request);
  void onResolved(Resolved resolved);
  void connectNext();
  void onConnected(int status);
  void onTimeout();
  void onWritten(bool toUpstream, int status);
  void onShutDown(bool upstreamSide, int status);

  void write(bool toUpstream, char* data, size_t size);  // takes `data` (new[])
  void writeText(bool toUpstream, const std::string& text);
  void refuse(Reply code, const std::string& outcome);
  void end(const std::string& outcome);
  void recordEnd(const std::string& outcome);
  void closeHandles();
  void closeUpstream();
};

namespace {

void allocate(uv_handle_t*, size_t, uv_buf_t* buf) {
  buf->base = new char[READ_BYTES];
  buf->len = READ_BYTES;
}

void onClientRead(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
  static_cast<Tunnel*>(stream->data)->onClientBytes(buf->base, n);
}

void onUpstreamRead(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
  static_cast<Tunnel::Upstream*>(stream->data)->tunnel->onUpstreamBytes(buf->base, n);
}

void onHandleClosed(uv_handle_t* handle) {
  auto* tunnel = static_cast<Tunnel*>(handle->data);
  if (--tunnel->handles == 0) {
    tunnel->endpoint->unref();
    delete tunnel;
  }
}

struct WriteRequest {
  uv_write_t request;
  std::unique_ptr<char[]> data;
  Tunnel* tunnel;
  bool toUpstream;
};

struct ShutdownRequest {
  uv_shutdown_t request;
  Tunnel* tunnel;
  bool upstreamSide;
};

std::string uvError(int status) { return uv_strerror(status); }

// The reply for a failed connect, and the audit's words for it.
std::pair<Reply, std::string> connectFailure(int status) {
  switch (status) {
    case UV_ECONNREFUSED:
      return {Reply::CONNECTION_REFUSED, "error: connection refused"};
    case UV_ENETUNREACH:
      return {Reply::NETWORK_UNREACHABLE, "error: network unreachable"};
    case UV_EHOSTUNREACH:
      return {Reply::HOST_UNREACHABLE, "error: host unreachable"};
    case UV_ETIMEDOUT:
      return {Reply::HOST_UNREACHABLE, "timeout: connecting"};
    default:
      return {Reply::GENERAL_FAILURE, "error: connect: " + uvError(status)};
  }
}

}  // namespace

void acceptTunnel(EndpointState& endpoint) {
  auto* tunnel = new Tunnel;
  tunnel->broker = endpoint.broker;
  tunnel->endpoint = &endpoint;
  endpoint.refs++;
  tunnel->start();
}

void endTunnel(Tunnel* tunnel, const std::string& outcome) { tunnel->end(outcome); }

void Tunnel::start() {
  startMs = uv_now(broker->loop);
  uv_pipe_init(broker->loop, &client, 0);
  client.data = this;
  handles++;
  uv_timer_init(broker->loop, &timer);
  timer.data = this;
  handles++;
  endpoint->tunnels.insert(this);
  broker->tunnels++;
  int rc = uv_accept(reinterpret_cast<uv_stream_t*>(&endpoint->listener), clientStream());
  if (rc != 0) return end("error: accept: " + uvError(rc));
  uint32_t cap = broker->settings.maxConnectionsPerWorker;
  if (endpoint->tunnels.size() > cap) {
    return end("refused: more than " + std::to_string(cap) + " connections at once");
  }
  uv_timer_start(
      &timer, [](uv_timer_t* t) { static_cast<Tunnel*>(t->data)->onTimeout(); },
      broker->settings.handshakeTimeoutMs, 0);
  uv_read_start(clientStream(), allocate, onClientRead);
}

void Tunnel::onClientBytes(char* raw, ssize_t n) {
  std::unique_ptr<char[]> data(raw);
  if (n == 0 || state == State::CLOSED || state == State::LINGER) return;
  if (n < 0) {
    if (state != State::RELAY) {
      return end(n == UV_EOF ? "closed: the worker hung up before the tunnel was set up"
                             : "error: worker side: " + uvError(static_cast<int>(n)));
    }
    if (n != UV_EOF) return end("error: worker side: " + uvError(static_cast<int>(n)));
    // Half-close: pass it on once what the worker sent has been written.
    clientEof = true;
    uv_read_stop(clientStream());
    auto* request = new ShutdownRequest{{}, this, true};
    request->request.data = request;
    int rc = uv_shutdown(&request->request, upstreamStream(), [](uv_shutdown_t* r, int status) {
      std::unique_ptr<ShutdownRequest> done(static_cast<ShutdownRequest*>(r->data));
      done->tunnel->onShutDown(true, status);
    });
    if (rc != 0) {
      delete request;
      onShutDown(true, rc);
    }
    return;
  }
  if (state == State::HANDSHAKE) {
    std::string_view input(data.get(), static_cast<size_t>(n));
    auto step = handshake.feed(input);
    if (!step.send.empty()) writeText(false, step.send);
    if (step.close) {
      state = State::LINGER;
      return end("refused: " + step.error);  // after the reply (if any) went out, see end()
    }
    if (step.request) {
      // Nothing more is read until the tunnel stands: what already came stays for later.
      uv_read_stop(clientStream());
      early.assign(input.data(), input.size());
      onRequest(*step.request);
    }
    return;
  }
  if (state == State::RELAY) {
    up += static_cast<uint64_t>(n);
    write(true, data.release(), static_cast<size_t>(n));
  }
  // RESOLVING / CONNECTING: reading is stopped; a late read callback has nothing to add.
}

void Tunnel::onUpstreamBytes(char* raw, ssize_t n) {
  std::unique_ptr<char[]> data(raw);
  if (n == 0 || state != State::RELAY) return;
  if (n < 0) {
    if (n != UV_EOF) return end("error: host side: " + uvError(static_cast<int>(n)));
    upstreamEof = true;
    uv_read_stop(upstreamStream());
    auto* request = new ShutdownRequest{{}, this, false};
    request->request.data = request;
    int rc = uv_shutdown(&request->request, clientStream(), [](uv_shutdown_t* r, int status) {
      std::unique_ptr<ShutdownRequest> done(static_cast<ShutdownRequest*>(r->data));
      done->tunnel->onShutDown(false, status);
    });
    if (rc != 0) {
      delete request;
      onShutDown(false, rc);
    }
    return;
  }
  down += static_cast<uint64_t>(n);
  write(false, data.release(), static_cast<size_t>(n));
}

void Tunnel::onRequest(const socks5::Request& request) {
  port = request.port;
  std::string why;
  auto normal = normalizeHost(request.host, &why);
  host = normal ? *normal : escapeHost(request.host);
  if (!normal) return refuse(Reply::NOT_ALLOWED, "refused: " + why);
  if (broker->gatewayPort != 0 && port == broker->gatewayPort) {
    return refuse(Reply::NOT_ALLOWED, "refused: the gateway's own port");
  }
  const Rule* rule = findRule(endpoint->rules, host, port);
  if (rule == nullptr) return refuse(Reply::NOT_ALLOWED, "refused: not in the allowlist");
  privateOk = rule->privateOk;
  if (endpoint->admission) {
    // The decider may run the policy and write the audit log; copied, so nothing it does to
    // the endpoint can pull the function out from under the call.
    Endpoint::Admission admission = endpoint->admission;
    std::string refusal;
    try {
      refusal = admission(host, port);
    } catch (const std::exception& e) {
      refusal = std::string("the decision failed: ") + e.what();  // fails closed
    }
    if (!refusal.empty()) return refuse(Reply::NOT_ALLOWED, "refused: " + refusal);
  }
  state = State::RESOLVING;
  sockaddr_storage literal;
  if (isIpLiteral(host) && literalAddress(host, port, literal)) {
    // An address needs no lookup (and must not get one: the resolver seam is for names).
    Resolved resolved;
    resolved.addresses.push_back(literal);
    return onResolved(std::move(resolved));
  }
  std::weak_ptr<bool> alive = this->alive;
  broker->resolver.resolve(host, port, [this, alive](Resolved resolved) {
    if (alive.expired()) return;  // the tunnel ended meanwhile
    onResolved(std::move(resolved));
  });
}

void Tunnel::onResolved(Resolved resolved) {
  if (state != State::RESOLVING) return;
  if (resolved.addresses.empty()) {
    return refuse(Reply::HOST_UNREACHABLE, "error: cannot resolve: " + resolved.error);
  }
  // Every address, not just the first: an answer mixing public and private addresses is how
  // a rebinding attack would look, and the connect may fall through to any of them.
  for (auto& candidate : resolved.addresses) {
    auto* sa = reinterpret_cast<const sockaddr*>(&candidate);
    Classification kind = classify(sa);
    if (kind.isPublic() || (privateOk && kind.allowable)) continue;
    address = describeAddress(sa);
    return refuse(Reply::NOT_ALLOWED, std::string("refused: resolves to ") + address + ", " +
                                          kind.name + (kind.allowable ? "" : " (never allowed)"));
  }
  candidates = std::move(resolved.addresses);
  state = State::CONNECTING;
  uv_timer_start(
      &timer, [](uv_timer_t* t) { static_cast<Tunnel*>(t->data)->onTimeout(); },
      broker->settings.connectTimeoutMs, 0);
  connectNext();
}

void Tunnel::connectNext() {
  if (next >= candidates.size()) {
    auto [code, outcome] = connectFailure(lastError);
    return refuse(code, outcome);
  }
  const auto* sa = reinterpret_cast<const sockaddr*>(&candidates[next++]);
  address = describeAddress(sa);
  upstream = new Upstream;
  upstream->tunnel = this;
  uv_tcp_init(broker->loop, &upstream->tcp);
  upstream->tcp.data = upstream;
  upstream->connect.data = upstream;
  handles++;
  int rc = uv_tcp_connect(&upstream->connect, &upstream->tcp, sa, [](uv_connect_t* c, int status) {
    auto* up = static_cast<Upstream*>(c->data);
    if (status == UV_ECANCELED) return;  // closed meanwhile; the close callback frees it
    up->tunnel->onConnected(status);
  });
  if (rc != 0) {
    lastError = rc;
    closeUpstream();
    connectNext();
  }
}

void Tunnel::onConnected(int status) {
  if (state != State::CONNECTING) return;
  if (status != 0) {
    lastError = status;
    closeUpstream();
    return connectNext();
  }
  uv_tcp_nodelay(&upstream->tcp, 1);
  reachedHost = true;
  writeText(false, socks5::reply(Reply::SUCCEEDED));
  state = State::RELAY;
  uv_timer_start(
      &timer, [](uv_timer_t* t) { static_cast<Tunnel*>(t->data)->onTimeout(); },
      uint64_t(broker->settings.maxConnectionSeconds) * 1000, 0);
  if (!early.empty()) {
    up += early.size();
    writeText(true, early);
    early.clear();
  }
  uv_read_start(upstreamStream(), allocate, onUpstreamRead);
  if (!clientPaused) uv_read_start(clientStream(), allocate, onClientRead);
}

void Tunnel::onTimeout() {
  switch (state) {
    case State::HANDSHAKE:
      return end("timeout: no complete SOCKS5 request within " +
                 std::to_string(broker->settings.handshakeTimeoutMs) + " ms");
    case State::RESOLVING:
      return refuse(Reply::HOST_UNREACHABLE, "timeout: resolving the name");
    case State::CONNECTING:
      return refuse(Reply::HOST_UNREACHABLE, "timeout: connecting (over " +
                                                 std::to_string(broker->settings.connectTimeoutMs) +
                                                 " ms)");
    case State::RELAY:
      return end("closed: open longer than " +
                 std::to_string(broker->settings.maxConnectionSeconds) + " s");
    case State::LINGER:
      return closeHandles();
    case State::CLOSED:
      return;
  }
}

void Tunnel::write(bool toUpstream, char* raw, size_t size) {
  auto* request = new WriteRequest{{}, std::unique_ptr<char[]>(raw), this, toUpstream};
  request->request.data = request;
  uv_buf_t buf = uv_buf_init(request->data.get(), static_cast<unsigned>(size));
  uv_stream_t* target = toUpstream ? upstreamStream() : clientStream();
  int rc = uv_write(&request->request, target, &buf, 1, [](uv_write_t* w, int status) {
    std::unique_ptr<WriteRequest> done(static_cast<WriteRequest*>(w->data));
    done->tunnel->onWritten(done->toUpstream, status);
  });
  if (rc != 0) {
    delete request;
    return end(std::string("error: ") + (toUpstream ? "host" : "worker") + " side: " + uvError(rc));
  }
  // Backpressure: a peer that does not read stops us reading the other side, so the queue of
  // one tunnel stays near highWaterBytes whatever the two ends do.
  if (state != State::RELAY) return;
  if (target->write_queue_size > broker->settings.highWaterBytes) {
    if (toUpstream && !clientPaused) {
      clientPaused = true;
      uv_read_stop(clientStream());
    } else if (!toUpstream && !upstreamPaused) {
      upstreamPaused = true;
      uv_read_stop(upstreamStream());
    }
  }
}

void Tunnel::writeText(bool toUpstream, const std::string& text) {
  char* copy = new char[text.size()];
  memcpy(copy, text.data(), text.size());
  write(toUpstream, copy, text.size());
}

void Tunnel::onWritten(bool toUpstream, int status) {
  if (status == UV_ECANCELED || state == State::CLOSED) return;
  if (status != 0) {
    return end(std::string("error: ") + (toUpstream ? "host" : "worker") +
               " side: " + uvError(status));
  }
  if (state != State::RELAY) return;
  size_t low = broker->settings.highWaterBytes / 2;
  if (toUpstream && clientPaused && !clientEof && upstreamStream()->write_queue_size <= low) {
    clientPaused = false;
    uv_read_start(clientStream(), allocate, onClientRead);
  }
  if (!toUpstream && upstreamPaused && !upstreamEof && clientStream()->write_queue_size <= low) {
    upstreamPaused = false;
    uv_read_start(upstreamStream(), allocate, onUpstreamRead);
  }
}

void Tunnel::onShutDown(bool upstreamSide, int status) {
  if (status == UV_ECANCELED || state != State::RELAY) return;
  (upstreamSide ? upstreamShutDown : clientShutDown) = true;
  // Both directions finished and flushed: the tunnel did its job.
  if (clientEof && upstreamEof && clientShutDown && upstreamShutDown) end("ok");
}

void Tunnel::refuse(Reply code, const std::string& outcome) {
  writeText(false, socks5::reply(code));
  if (state == State::CLOSED) return;  // the write itself failed
  state = State::LINGER;
  end(outcome);
}

void Tunnel::recordEnd(const std::string& outcome) {
  if (audited) return;
  audited = true;
  audit::Record r;
  r.set_host(host);
  r.set_port(port);
  r.set_address(address);
  r.set_bytes_up(up);
  r.set_bytes_down(down);
  r.set_duration_ms(uv_now(broker->loop) - startMs);
  r.set_outcome(outcome);
  broker->record(*endpoint, std::move(r), reachedHost);
}

void Tunnel::end(const std::string& outcome) {
  if (state == State::CLOSED || audited) {
    if (state != State::LINGER) closeHandles();
    return;
  }
  recordEnd(outcome);
  *alive = false;
  endpoint->tunnels.erase(this);
  broker->tunnels--;
  closeUpstream();
  if (state == State::LINGER) {
    // A reply is on its way to the worker: let it go out, then close (or after LINGER_MS).
    uv_read_stop(clientStream());
    auto* request = new ShutdownRequest{{}, this, false};
    request->request.data = request;
    int rc = uv_shutdown(&request->request, clientStream(), [](uv_shutdown_t* r, int) {
      std::unique_ptr<ShutdownRequest> done(static_cast<ShutdownRequest*>(r->data));
      done->tunnel->closeHandles();
    });
    if (rc == 0) {
      uv_timer_start(
          &timer, [](uv_timer_t* t) { static_cast<Tunnel*>(t->data)->closeHandles(); }, LINGER_MS,
          0);
      return;
    }
    delete request;
  }
  closeHandles();
}

void Tunnel::closeUpstream() {
  if (upstream == nullptr) return;
  uv_close(reinterpret_cast<uv_handle_t*>(&upstream->tcp), [](uv_handle_t* h) {
    auto* up = static_cast<Upstream*>(h->data);
    Tunnel* tunnel = up->tunnel;
    delete up;
    if (--tunnel->handles == 0) {
      tunnel->endpoint->unref();
      delete tunnel;
    }
  });
  upstream = nullptr;
}

void Tunnel::closeHandles() {
  if (state == State::CLOSED) return;
  if (!audited) recordEnd("closed");
  if (*alive) {
    *alive = false;
    endpoint->tunnels.erase(this);
    broker->tunnels--;
  }
  state = State::CLOSED;
  closeUpstream();
  uv_close(reinterpret_cast<uv_handle_t*>(&client), onHandleClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer), onHandleClosed);
}

}  // namespace chitin::egress
