// SPDX-License-Identifier: Apache-2.0
// The shared worker start-up sequence (see worker-main.h for the order and why).
// Runs in: worker (sandboxed)

#include "worker-main.h"

#include <capnp/rpc-twoparty.h>
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <kj/exception.h>
#include <malloc.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "sandbox-child.h"
#include "zygote.h"

namespace chitin {

namespace {

// The socket the spawner placed for us (see supervisor/spawn/spawner.h).
constexpr int SUPERVISOR_FD = 3;
// At most this many fds ride on one RPC message (fd passing for later capabilities).
constexpr unsigned MAX_FDS_PER_MESSAGE = 4;
// sysexits.h EX_SOFTWARE: set-up failed, nothing was served.
constexpr int EXIT_SETUP_FAILED = 70;

}  // namespace

int runWorker(int argc, char** argv, const char* kind, BootstrapFactory makeBootstrap) {
  // Step 0: not dumpable, before anything else could be reached through /proc/1.
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { makeUndumpableInChild(); })) {
    fprintf(stderr, "chitin-worker-%s: cannot make itself non-dumpable: %s\n", kind,
            e->getDescription().cStr());
    return EXIT_SETUP_FAILED;
  }
  // Step 1: limits, before anything else allocates or forks; and the hidden directories are
  // really covered.
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { applyLimitsInChild(argc, argv); })) {
    fprintf(stderr, "chitin-worker-%s: cannot apply limits: %s\n", kind,
            e->getDescription().cStr());
    return EXIT_SETUP_FAILED;
  }
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { checkHiddenInChild(argc, argv); })) {
    fprintf(stderr, "chitin-worker-%s: a hidden directory is not hidden: %s\n", kind,
            e->getDescription().cStr());
    return EXIT_SETUP_FAILED;
  }

  // A zygote (zygote.h) forks the workers instead: this returns only in a forked worker, whose
  // own sandbox steps are done, and which then applies its profile's limits as bwrap's would.
  kj::Array<kj::byte> lockdown;  // built ahead by a zygote, for all the workers it forks
  if (zygote::requested(argc, argv)) {
    KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { lockdown = lockdownProgramFor(kind); })) {
      fprintf(stderr, "chitin-worker-%s: cannot build its lockdown filter: %s\n", kind,
              e->getDescription().cStr());
      return EXIT_SETUP_FAILED;
    }
    zygote::Child child = zygote::serve();
    std::vector<char*> childArgv{argv[0]};
    for (auto& arg : child.args) childArgv.push_back(arg.data());
    childArgv.push_back(nullptr);
    KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                   applyLimitsInChild(static_cast<int>(childArgv.size() - 1), childArgv.data());
                 })) {
      fprintf(stderr, "chitin-worker-%s: cannot apply limits: %s\n", kind,
              e->getDescription().cStr());
      return EXIT_SETUP_FAILED;
    }
  }

  int status = 0;
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() {
                 // Step 2: the RPC system, serving our bootstrap capability on fd 3.
                 auto io = kj::setupAsyncIo();
                 auto stream = io.lowLevelProvider->wrapUnixSocketFd(
                     SUPERVISOR_FD, kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
                 auto paf = kj::newPromiseAndFulfiller<void>();
                 WorkerContext context{io, kj::mv(paf.fulfiller)};
                 capnp::Capability::Client bootstrap = makeBootstrap(context);
                 capnp::TwoPartyClient rpc(*stream, MAX_FDS_PER_MESSAGE, kj::mv(bootstrap),
                                           capnp::rpc::twoparty::Side::SERVER);

                 // Step 3: from here on the worker runs under its kind's stricter filter.
                 if (lockdown.size() > 0) {
                   lockDownWithProgram(lockdown);
                 } else {
                   lockDownInWorker(kind);
                 }

                 // Step 4: serve until the supervisor goes away or the worker says it is done;
                 // back here whenever it says it is idle, to give back the heap's free pages
                 // and the stack below this frame (after the next wait's one allocation: made
                 // after the trim, it could take a fresh page).
                 bool over = false;
                 kj::Maybe<kj::Exception> failure;
                 auto watch = rpc.onDisconnect()
                                  .exclusiveJoin(kj::mv(paf.promise))
                                  .then([&over]() { over = true; },
                                        [&over, &failure](kj::Exception&& e) {
                                          over = true;
                                          failure = kj::mv(e);
                                        })
                                  .then([&context]() { context.idle->fulfill(); })
                                  .eagerlyEvaluate(nullptr);
                 for (bool idled = false; !over; idled = true) {
                   auto wake = kj::newPromiseAndFulfiller<void>();  // by idle, or by the end
                   context.idle = kj::mv(wake.fulfiller);
                   if (idled) giveBackIdleMemory();
                   wake.promise.wait(io.waitScope);
                 }
                 KJ_IF_MAYBE (e, failure) {
                   kj::throwFatalException(kj::mv(*e));
                 }
               })) {
    if (e->getType() == kj::Exception::Type::DISCONNECTED) {
      status = 0;  // the supervisor hung up: a normal end
    } else {
      fprintf(stderr, "chitin-worker-%s: %s\n", kind, e->getDescription().cStr());
      status = EXIT_SETUP_FAILED;
    }
  }
  return status;
}

void releaseDeadStack() {
  // Below this frame the stack is dead, but for what this call itself goes on to use: madvise's
  // frame (a few dozen bytes) and the x86-64 ABI's 128-byte red zone below a leaf. 512 bytes
  // below this frame are kept for them, and the page they fall in. The kernel keeps at least
  // 1 MiB unmapped below a stack, so the span below never reaches another mapping; its
  // unmapped part only makes madvise report ENOMEM.
  constexpr uintptr_t PAGE = 4096;
  constexpr uintptr_t KEPT = 512;
  constexpr uintptr_t SPAN = 512 * 1024;
  uintptr_t frame = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  uintptr_t top = (frame - KEPT) & ~(PAGE - 1);
  if (top <= SPAN) return;
  madvise(reinterpret_cast<void*>(top - SPAN), SPAN, MADV_DONTNEED);
}

void giveBackIdleMemory() {
  malloc_trim(0);
  releaseDeadStack();
}

}  // namespace chitin
