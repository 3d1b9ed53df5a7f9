// SPDX-License-Identifier: Apache-2.0
// The ByteSink a tool worker streams its live output to, with the per-call cap the supervisor
// enforces itself: past it, the call's owner is told to stop the worker.
// Runs in: supervisor
//
// The worker is not trusted to respect its own cap (the exec worker streams at most
// --max-output-bytes). Every write is counted here; a write that would pass the cap, an empty
// write (nothing to count, still work for us), or anything after end() fulfils `overflow`
// (once) and fails, and the caller kills the worker (tool-runner.c++). So however fast a worker
// writes, one call costs the supervisor at most `cap` bytes of work.

#pragma once

#include <kj/async.h>

#include <cstdint>

#include "common.capnp.h"

namespace chitin {

// Cap'n Proto 0.9.2's generated Server bases have no virtual destructor; kj::heap's disposer
// destroys the concrete type.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class CappedSink final : public rpc::ByteSink::Server {
 public:
  CappedSink(uint64_t cap, kj::Own<kj::PromiseFulfiller<void>> overflow)
      : cap_(cap), overflow_(kj::mv(overflow)) {}

 protected:
  kj::Promise<void> write(WriteContext context) override;
  kj::Promise<void> end(EndContext context) override;

 private:
  kj::Promise<void> refuse(const char* why);
  uint64_t cap_;
  uint64_t received_ = 0;
  bool ended_ = false;
  kj::Own<kj::PromiseFulfiller<void>> overflow_;
};
#pragma GCC diagnostic pop

}  // namespace chitin
