// SPDX-License-Identifier: Apache-2.0
// The egress broker: the only way a worker reaches the network. One SOCKS5 socket per worker,
// admitting that worker's host:port allowlist and nothing else.
// Runs in: supervisor
//
// (Interface agreed for issue 9; the implementation lands with supervisor/egress/broker.c++.)
//
// A worker that needs the internet (a channel, the model client) gets an Endpoint: a listening
// unix socket the spawner binds into its sandbox at /run/chitin/egress.sock. Each connection on
// it is a SOCKS5 CONNECT (RFC 1928, no authentication). The broker resolves the name itself,
// checks every resolved address (egress-address.h), connects to the address it checked (no
// DNS rebinding between check and use), relays bytes both ways, and writes one EGRESS audit
// record per connection. Who is asking is the socket the connection arrived on, never
// something the worker says.

#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace chitin::egress {

struct Rule {
  std::string host;  // lower-case, no trailing dot; "*.example.com" matches subdomains only
  uint16_t port = 0;
  // The owner named this destination explicitly as a private one (egress.allow_private, or an
  // IP literal / "localhost" they wrote in a setting): loopback/private addresses are allowed
  // for it. The gateway's own port never is.
  bool privateOk = false;
  std::string origin;  // where the rule came from, for `chitin sandbox explain`: "model.base_url"
};

// Parses "host:port" / "[v6]:port"; throws kj::Exception naming `what` and the text on error.
Rule parseRule(const std::string& text, const std::string& what, bool privateOk);

class Endpoint {
 public:
  virtual ~Endpoint() = default;  // closes the socket and every tunnel of this worker
  // Host path of the listening socket (SpawnRequest::egressSocket).
  virtual const std::string& socketPath() const = 0;
  virtual const std::vector<Rule>& rules() const = 0;
};

}  // namespace chitin::egress
