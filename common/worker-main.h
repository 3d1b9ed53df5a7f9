// SPDX-License-Identifier: Apache-2.0
// The one start-up sequence every chitin worker executable runs.
// Runs in: worker (sandboxed)
//
// Order, and why:
//   0. makeUndumpableInChild(): before anything of the worker exists, no other process of the
//      sandbox may open /proc/1/fd/*, mem or environ (the exec worker's commands would).
//   1. applyLimitsInChild(): rlimits from argv. They must be set here, inside the sandbox's own
//      user namespace, because since Linux 5.14 RLIMIT_NPROC is counted per (user namespace,
//      uid): set here it caps this sandbox alone instead of every worker of the service user.
//      Then checkHiddenInChild(): each directory the spawner hid is the empty read-only cover.
//   1b. Started as a zygote (zygote.h, a `fork_server` profile): build the kind's lockdown filter
//      once, then serve fork requests; each forked worker returns here, its own sandbox steps
//      done, applies its profile's limits and goes on (a zygote never gets past this step).
//   2. KJ async I/O, fd 3 wrapped as a capability stream, the RPC system started with this
//      worker's bootstrap capability (fds, epoll and eventfd exist from here on).
//   3. lockDownInWorker(): the kind's stricter seccomp filter, stacked on the profile's.
//   4. Serve until the supervisor disconnects; then exit. Each time the worker says it is idle
//      (WorkerContext::idle), the heap's free pages and the stack below runWorker's own frame go
//      back (malloc_trim, releaseDeadStack).
// A failure in 0-3 exits with status 70 before any request is read (fail closed).

#pragma once

#include <capnp/capability.h>
#include <kj/async-io.h>
#include <kj/function.h>

namespace chitin {

struct WorkerContext {
  kj::AsyncIoContext& io;
  // Resolves when the supervisor has gone (EOF on fd 3). A worker may also finish earlier by
  // fulfilling `done` itself (tool workers exit after their one call).
  kj::Own<kj::PromiseFulfiller<void>> done;
  // Fulfilled by a worker that has gone idle (the session worker, some seconds after a turn):
  // the event loop then returns to runWorker's own frame, which gives back the heap's free pages
  // and every stack page below it, the frames of the loop and of the call that said so included,
  // and serves on with a new fulfiller here. (From the idle call's own frame, the pages between
  // it and the loop's resting depth stayed: two per idle session worker.)
  kj::Own<kj::PromiseFulfiller<void>> idle;
};

// Gives back the stack's pages below the caller's frame: the calls that used them are over.
// Ready to be touched again (zero-filled) by a later call that goes that deep.
void releaseDeadStack();

// What an idle worker keeps and need not: the heap's free pages (malloc_trim) and the stack
// below the caller's frame (releaseDeadStack).
void giveBackIdleMemory();

using BootstrapFactory = kj::Function<capnp::Capability::Client(WorkerContext&)>;

// `kind` names the worker ("session", "model", "exec", ...) for logs and for choosing the
// stacked seccomp filter. Returns the process exit status.
int runWorker(int argc, char** argv, const char* kind, BootstrapFactory makeBootstrap);

}  // namespace chitin
