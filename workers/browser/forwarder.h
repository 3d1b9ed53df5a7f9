// SPDX-License-Identifier: Apache-2.0
// The loopback forwarder: Chromium's --proxy-server points here, and every connection accepted
// on 127.0.0.1 inside the sandbox's own network namespace is spliced, byte for byte, to the
// egress broker's unix socket. Chromium speaks SOCKS5 end to end with the broker (host names
// included, so Chromium resolves nothing); the forwarder parses none of it.
// Runs in: worker (sandboxed)

#pragma once

#include <kj/async-io.h>

#include <string>

namespace chitin::browser {

class Forwarder {
 public:
  // Listens at once on 127.0.0.1 (an ephemeral port); `egressSocket` is the broker's socket.
  Forwarder(kj::AsyncIoContext& io, std::string egressSocket);

  uint16_t port() const { return port_; }

 private:
  kj::Promise<void> acceptLoop();
  kj::Promise<void> splice(kj::Own<kj::AsyncIoStream> client);

  kj::AsyncIoContext& io_;
  std::string egressSocket_;
  kj::Own<kj::ConnectionReceiver> listener_;
  uint16_t port_ = 0;
  kj::TaskSet::ErrorHandler& errors_;
  kj::TaskSet tasks_;
};

}  // namespace chitin::browser
