// SPDX-License-Identifier: Apache-2.0
// The broker's internals shared by broker.c++ (endpoints, sockets, audit) and tunnel.c++ (one
// connection's state machine). Not for use outside supervisor/egress/.
// Runs in: supervisor
//
// Memory and libuv handles: an EndpointState lives while anyone refers to it (the Endpoint
// object, its listening handle until closed, each tunnel until freed); a Tunnel frees itself
// when its last handle has closed. Close callbacks only free memory: nothing in them touches
// the Broker, so the Broker may be gone by then.

#pragma once

#include <set>
#include <string>
#include <vector>

#include "audit.pb.h"
#include "broker.h"

namespace chitin::egress {

struct Tunnel;

struct EndpointState {
  Broker::Impl* broker = nullptr;  // null once closed
  std::string worker;
  std::vector<Rule> rules;
  Endpoint::Admission admission;  // may be empty
  std::string path;
  uv_pipe_t listener;
  std::set<Tunnel*> tunnels;
  int refs = 0;
  // Tunnels that never reached a host (refused, failed, timed out, hung up mid-handshake),
  // audited in the current minute, and those only counted.
  uint64_t windowStartMs = 0;
  uint32_t failuresInWindow = 0;
  uint64_t failuresUnrecorded = 0;

  void close();  // stops listening, removes the socket file, ends every tunnel
  void unref();
};

struct Broker::Impl {
  uv_loop_t* loop;
  BrokerSettings settings;
  Resolver& resolver;
  audit::AuditLog& audit;
  uint16_t gatewayPort = 0;
  int dirFd = -1;  // the socket directory, for binding through /proc/self/fd
  uint64_t nextSocket = 0;
  std::set<EndpointState*> endpoints;
  size_t tunnels = 0;

  // One EGRESS record for `endpoint`'s worker. Tunnels that never reached a host beyond the
  // per-minute budget are counted instead, and the count goes into the next such record (or a
  // record of its own when the endpoint closes), so a worker hammering the broker with
  // connections it knows will be refused (or drops) cannot flood the log. A tunnel that
  // reached its host is always recorded.
  void record(EndpointState& endpoint, audit::Record record, bool reachedHost);
};

// Takes the connection waiting on `endpoint`'s listener and runs its tunnel.
void acceptTunnel(EndpointState& endpoint);
// Ends a tunnel at once (no reply), audited with `outcome`.
void endTunnel(Tunnel* tunnel, const std::string& outcome);

// Host text safe for the audit log and messages: printable ASCII kept, the rest as \xNN.
std::string escapeHost(const std::string& host);

}  // namespace chitin::egress
