// SPDX-License-Identifier: Apache-2.0
// The supervisor's end of a worker's Cap'n Proto connection: two-party RPC on the worker's
// socket, every message read with the ReaderOptions its owner sized for that worker, and word of
// it when the worker sends a message past them.
// Runs in: supervisor
//
// Cap'n Proto already refuses such a message (over the traversal limit: "Message is too large",
// before anything is allocated for it; a malformed segment table) by failing the connection. On
// its own that only looks like a worker that went away; this class tells the owner it was the
// worker's doing, so it can be killed and recorded as a protocol breaker (WorkerHost does).

#pragma once

#include <capnp/rpc-twoparty.h>
#include <capnp/serialize-async.h>
#include <kj/async-io.h>

#include <string>

namespace chitin {

class WorkerConnection {
 public:
  // `stream` must outlive this. `options` apply to every message the worker sends.
  WorkerConnection(kj::AsyncCapabilityStream& stream, uint maxFdsPerMessage,
                   capnp::ReaderOptions options);
  ~WorkerConnection() noexcept(false);
  KJ_DISALLOW_COPY(WorkerConnection);

  // The worker's bootstrap capability.
  capnp::Capability::Client bootstrap();

  // Resolves (once) with what the worker broke when a message it sent could not be read within
  // the options or its framing. Never resolves for a connection that ends otherwise (the
  // worker exited, or died mid-message).
  kj::Promise<std::string> onViolation();

 private:
  class GuardedStream;
  kj::Own<GuardedStream> stream_;
  capnp::TwoPartyVatNetwork network_;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc_;
};

}  // namespace chitin
