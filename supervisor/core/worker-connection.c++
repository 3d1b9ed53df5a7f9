// SPDX-License-Identifier: Apache-2.0
// A worker's Cap'n Proto connection with explicit read bounds (see worker-connection.h).
// Runs in: supervisor

#include "worker-connection.h"

#include <string.h>

namespace chitin {

// The worker's message stream, watched: a read that fails for any reason but the stream ending
// (DISCONNECTED: the worker exited or died mid-message) is the worker's message breaking the
// bounds or the framing.
class WorkerConnection::GuardedStream final : public capnp::MessageStream {
 public:
  explicit GuardedStream(kj::AsyncCapabilityStream& stream) : inner_(stream), violation(nullptr) {
    auto paf = kj::newPromiseAndFulfiller<std::string>();
    violated_ = kj::mv(paf.fulfiller);
    violation = paf.promise.fork();
  }

  kj::Promise<kj::Maybe<capnp::MessageReaderAndFds>> tryReadMessage(
      kj::ArrayPtr<kj::AutoCloseFd> fdSpace, capnp::ReaderOptions options,
      kj::ArrayPtr<capnp::word> scratchSpace) override {
    return inner_.tryReadMessage(fdSpace, options, scratchSpace)
        .catch_([this](kj::Exception&& e) -> kj::Maybe<capnp::MessageReaderAndFds> {
          if (e.getType() != kj::Exception::Type::DISCONNECTED && violated_->isWaiting())
            violated_->fulfill(std::string(e.getDescription().cStr()));
          kj::throwFatalException(kj::mv(e));
        });
  }
  kj::Promise<void> writeMessage(
      kj::ArrayPtr<const int> fds,
      kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>> segments) override {
    return inner_.writeMessage(fds, segments);
  }
  kj::Promise<void> writeMessages(
      kj::ArrayPtr<kj::ArrayPtr<const kj::ArrayPtr<const capnp::word>>> messages) override {
    return inner_.writeMessages(messages);
  }
  kj::Maybe<int> getSendBufferSize() override { return inner_.getSendBufferSize(); }
  kj::Promise<void> end() override { return inner_.end(); }

 private:
  capnp::AsyncCapabilityMessageStream inner_;
  kj::Own<kj::PromiseFulfiller<std::string>> violated_;

 public:
  kj::ForkedPromise<std::string> violation;
};

WorkerConnection::WorkerConnection(kj::AsyncCapabilityStream& stream, uint maxFdsPerMessage,
                                   capnp::ReaderOptions options)
    : stream_(kj::heap<GuardedStream>(stream)),
      network_(*stream_, maxFdsPerMessage, capnp::rpc::twoparty::Side::CLIENT, options),
      rpc_(capnp::makeRpcClient(network_)) {}

WorkerConnection::~WorkerConnection() noexcept(false) {}

capnp::Capability::Client WorkerConnection::bootstrap() {
  capnp::word scratch[4];
  memset(scratch, 0, sizeof(scratch));
  capnp::MallocMessageBuilder message(scratch);
  auto vatId = message.getRoot<capnp::rpc::twoparty::VatId>();
  vatId.setSide(capnp::rpc::twoparty::Side::SERVER);
  return rpc_.bootstrap(vatId);
}

kj::Promise<std::string> WorkerConnection::onViolation() {
  // The fulfiller goes with the connection; a branch still waiting then simply never resolves.
  return stream_->violation.addBranch().catch_(
      [](kj::Exception&&) -> kj::Promise<std::string> { return kj::NEVER_DONE; });
}

}  // namespace chitin
