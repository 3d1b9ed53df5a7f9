// SPDX-License-Identifier: Apache-2.0
// The loopback forwarder to the egress broker (see forwarder.h).
// Runs in: worker (sandboxed)

#include "forwarder.h"

#include <arpa/inet.h>
#include <kj/debug.h>
#include <kj/io.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace chitin::browser {

namespace {
// A connection that fails (the broker refused it, Chromium went away) concerns that connection
// only: Chromium sees it closed, and the broker has audited why.
struct QuietErrors final : kj::TaskSet::ErrorHandler {
  void taskFailed(kj::Exception&& e) override {
    KJ_LOG(INFO, "forwarded connection ended", e.getDescription());
  }
};
QuietErrors quietErrors;
}  // namespace

Forwarder::Forwarder(kj::AsyncIoContext& io, std::string egressSocket)
    : io_(io), egressSocket_(kj::mv(egressSocket)), errors_(quietErrors), tasks_(quietErrors) {
  // Made by hand rather than through kj::Network, so that nothing is looked up and the port is
  // known before Chromium is started with it.
  int fd;
  KJ_SYSCALL(fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  kj::AutoCloseFd owned(fd);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  KJ_SYSCALL(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)));
  KJ_SYSCALL(listen(fd, 64));
  socklen_t length = sizeof(address);
  KJ_SYSCALL(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length));
  port_ = ntohs(address.sin_port);
  listener_ = io_.lowLevelProvider->wrapListenSocketFd(
      owned.release(), kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                           kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK |
                           kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC);
  tasks_.add(acceptLoop());
}

kj::Promise<void> Forwarder::acceptLoop() {
  return listener_->accept().then([this](kj::Own<kj::AsyncIoStream> client) {
    tasks_.add(splice(kj::mv(client)));
    return acceptLoop();
  });
}

kj::Promise<void> Forwarder::splice(kj::Own<kj::AsyncIoStream> client) {
  return io_.provider->getNetwork()
      .parseAddress(kj::str("unix:", egressSocket_.c_str()))
      .then([](kj::Own<kj::NetworkAddress> address) { return address->connect(); })
      .then([client = kj::mv(client)](kj::Own<kj::AsyncIoStream> broker) mutable {
        auto up =
            client->pumpTo(*broker).then([&broker = *broker](uint64_t) { broker.shutdownWrite(); });
        auto down =
            broker->pumpTo(*client).then([&client = *client](uint64_t) { client.shutdownWrite(); });
        return kj::joinPromises(kj::arr(kj::mv(up), kj::mv(down)))
            .attach(kj::mv(client), kj::mv(broker));
      });
}

}  // namespace chitin::browser
