// SPDX-License-Identifier: Apache-2.0
// Tests for a worker's connection with explicit read bounds: within them calls work; a message
// past them fails the connection and is reported; a worker that just goes away is not.
// Runs in: test

#include "worker-connection.h"

#include <doctest/doctest.h>
#include <sys/socket.h>

#include "channel.capnp.h"

namespace chitin {
namespace {

// A worker whose status detail is as long as the test asks.
class Talker final : public rpc::ChannelWorker::Server {
 public:
  explicit Talker(size_t& bytes) : bytes_(bytes) {}
  kj::Promise<void> status(StatusContext context) override {
    context.getResults().initStatus().setDetail(std::string(bytes_, 'x'));
    return kj::READY_NOW;
  }

 private:
  size_t& bytes_;
};

struct Rig {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  size_t bytes = 10;
  kj::Own<kj::AsyncIoStream> workerEnd;
  capnp::TwoPartyServer server{kj::heap<Talker>(bytes)};
  kj::Promise<void> serving = nullptr;
  kj::Own<kj::AsyncCapabilityStream> supervisorEnd;
  kj::Own<WorkerConnection> connection;
  rpc::ChannelWorker::Client worker = nullptr;

  Rig() {
    int sv[2];
    KJ_SYSCALL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    workerEnd =
        io.lowLevelProvider->wrapSocketFd(sv[1], kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
    serving = server.accept(*workerEnd).eagerlyEvaluate(nullptr);
    supervisorEnd =
        io.lowLevelProvider->wrapUnixSocketFd(sv[0], kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
    capnp::ReaderOptions options;
    options.traversalLimitInWords = 1024;  // 8 KiB
    connection = kj::heap<WorkerConnection>(*supervisorEnd, 0, options);
    worker = connection->bootstrap().castAs<rpc::ChannelWorker>();
  }
  size_t detail() {
    return worker.statusRequest().send().wait(io.waitScope).getStatus().getDetail().size();
  }
  bool violated(kj::Promise<std::string>& p) { return p.poll(io.waitScope); }
};

TEST_CASE("worker connection: messages within the reader options are read") {
  Rig rig;
  auto violation = rig.connection->onViolation();
  rig.bytes = 7000;
  CHECK(rig.detail() == 7000);
  CHECK_FALSE(rig.violated(violation));
}

TEST_CASE("worker connection: a message past them fails the connection and says why") {
  Rig rig;
  auto violation = rig.connection->onViolation();
  rig.bytes = 9000;
  CHECK_THROWS_WITH(rig.detail(), doctest::Contains("Message is too large"));
  REQUIRE(rig.violated(violation));
  CHECK(violation.wait(rig.io.waitScope).find("Message is too large") != std::string::npos);
  // The connection is gone for good: later calls fail too.
  rig.bytes = 10;
  CHECK_THROWS(rig.detail());
}

TEST_CASE("worker connection: a worker that goes away is no violation") {
  Rig rig;
  auto violation = rig.connection->onViolation();
  CHECK(rig.detail() == 10);
  rig.serving = nullptr;
  rig.workerEnd = nullptr;
  CHECK_THROWS(rig.detail());
  CHECK_FALSE(rig.violated(violation));
  // Nor is the connection's own end: a waiting branch never resolves, it does not throw.
  rig.worker = nullptr;
  rig.connection = nullptr;
  CHECK_FALSE(rig.violated(violation));
}

}  // namespace
}  // namespace chitin
