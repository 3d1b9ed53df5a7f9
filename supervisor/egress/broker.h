// SPDX-License-Identifier: Apache-2.0
// The egress broker: the only way a worker reaches the network. One SOCKS5 socket per worker,
// admitting that worker's host:port allowlist and nothing else.
// Runs in: supervisor
//
// A worker that needs the internet (a channel, the model client) gets an Endpoint: a listening
// unix socket the spawner binds into its sandbox at /run/chitin/egress.sock. Each connection on
// it is a tunnel, set up in this order; any step that fails ends it with the RFC 1928 reply
// code and one EGRESS audit record, and nothing is connected:
//   1. the SOCKS5 handshake (socks5.h): no authentication, CONNECT, ATYP domain/IPv4/IPv6;
//      bounded in bytes and in time; at most max_connections_per_worker tunnels at once;
//   2. the host normalized (rules.h) and matched against the worker's allowlist; the gateway's
//      own port is refused on every host;
//   3. the name resolved by the broker (resolver.h), once per tunnel; EVERY address checked
//      (address.h): a non-public one is refused unless the rule is privateOk, and unspecified,
//      multicast and broadcast never pass;
//   4. a TCP connection to a checked address (the next one if it fails), within the connect
//      timeout: the address used is one that was checked (no DNS rebinding between check and
//      use);
//   5. bytes relayed both ways, a side paused while the other's write queue is full, half-close
//      passed on, closed after max_connection_seconds; one EGRESS record when it ends.
// Who is asking is the socket the connection arrived on, never something the worker says. TLS
// stays end to end in the worker: the broker sees host, port and byte counts.

#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config.pb.h"
#include "resolver.h"
#include "rules.h"

namespace chitin::audit {
class AuditLog;
}

namespace chitin::egress {

class Endpoint {
 public:
  virtual ~Endpoint() = default;  // closes the socket and every tunnel of this worker
  // Host path of the listening socket (SpawnRequest::egressSocket).
  virtual const std::string& socketPath() const = 0;
  virtual const std::vector<Rule>& rules() const = 0;
  // Replaces this worker's rules: tunnels requested from now on are matched against `rules`
  // (an empty list admits nothing). Tunnels already set up stay open: each was admitted when
  // it was asked for. web_fetch grants one host:port per redirect hop this way, after the
  // policy decided that hop.
  virtual void replaceRules(std::vector<Rule> rules) = 0;
  // A second check after the rules, for workers whose every destination is someone's decision
  // (the browser: each host its pages connect to is decided by the policy). Called on the loop
  // with the canonical host and port of a tunnel the rules admit, before any name is resolved
  // (so a refused name is never even looked up); returns "" to go on, or why the tunnel is
  // refused (audited with the refusal). Not called for the gateway's port (always refused).
  using Admission = std::function<std::string(const std::string& host, uint16_t port)>;
  virtual void setAdmission(Admission admission) = 0;
};

struct BrokerSettings {
  // A directory only this user may enter (created 0700 if missing; anything else refused).
  // Sockets are bound through /proc/self/fd when the path would not fit sun_path (108 bytes).
  std::string socketDir;
  uint32_t connectTimeoutMs = 15000;
  uint32_t maxConnectionSeconds = 86400;
  uint32_t maxConnectionsPerWorker = 16;
  uint32_t handshakeTimeoutMs = 10000;  // greeting, request and name resolution
  size_t highWaterBytes = 1 << 20;      // a side stops being read past this much queued
  // Per worker: records of tunnels that reached no host; the rest are counted in one record.
  uint32_t failureAuditsPerMinute = 60;
};

// The settings from chitin.conf's egress {} (defaults for unset fields).
BrokerSettings brokerSettings(const config::EgressConfig& egress, std::string socketDir);

class Broker {
 public:
  // Throws kj::Exception if the socket directory cannot be made private, or if the process
  // does not ignore SIGPIPE (libuv's writes to a worker that hung up would kill it).
  Broker(uv_loop_t* loop, BrokerSettings settings, Resolver& resolver, audit::AuditLog& audit);
  // Closes every endpoint and tunnel (audited); the handles are freed as the loop turns.
  // Endpoints still held elsewhere stay valid objects that admit nothing.
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Refused on every host (the gateway is reachable by its token, never from a worker).
  void setGatewayPort(uint16_t port);

  // A new socket for one worker. `worker` names it in the audit ("model",
  // "channel:telegram:default"). Throws kj::Exception if the socket cannot be made.
  std::unique_ptr<Endpoint> open(const std::string& worker, std::vector<Rule> rules);

  // Closes every endpoint and tunnel now (shutdown: the loop can then run dry). Endpoints held
  // elsewhere stay valid objects that admit nothing; open() still works afterwards.
  void closeAll();

  // Tunnels open now, over all workers (tests, status).
  size_t tunnels() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace chitin::egress
