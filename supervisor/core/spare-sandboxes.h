// SPDX-License-Identifier: Apache-2.0
// Warm spares: after a session's tool call, the sandbox for that session's next call of the same
// kind is built ahead of need, so the next call pays only its RPC and its work, not a bwrap
// start-up (and, for exec, not bash's either: the worker starts its bash as it starts, and
// the call hands it the command; workers/exec/exec-runner.h WarmShell).
// Runs in: supervisor
//
// A spare is a worker spawned by the same Spawner from exactly the request the call would make
// (profile, variables, hidden directories, worker arguments): the same profile checks, its own
// fresh namespaces, /tmp and cgroup. While it waits it has been given nothing: no invocation, no
// capability, and the tool profiles it is used for have no network. What keeps one sandbox per
// call true:
//  - used once: take() hands a spare over and forgets it; the worker serves one call and exits;
//  - never shared: a spare is keyed by the session key and the whole request, so another
//    session or agent, or the same session asking for something else (another hidden directory
//    after its taint changed), never gets it;
//  - its covers still cover: a hidden directory's tmpfs was mounted on the directory that path
//    named when the spare was built. If that directory has since been renamed away and another
//    put in its place, the spare's mount no longer covers the path, so take() compares
//    Spawner::hiddenIdentity() then and now and kills a spare whose directories changed;
//  - its wall clock runs from take(), not from its start (WorkerHost::WallClock::ON_USE);
//  - bounded: at most `maxSpares` wait at once (a new one replaces the oldest), one per session
//    and request; each dies `idleSeconds` after it was built unless taken, all of a session's
//    die with its context (dropSession), and one that dies while waiting is forgotten.
// Failing to build a spare changes nothing: the next call spawns its own sandbox and fails
// closed there if it must.

#pragma once

#include <capnp/message.h>
#include <kj/async-io.h>
#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "spawner.h"
#include "worker-host.h"

namespace chitin {

struct SpareSettings {
  uint32_t maxSpares = 8;      // 0: no spares, every call spawns its sandbox when it runs
  uint32_t idleSeconds = 600;  // a spare not taken within this is killed
};

struct SpareStats {
  uint64_t built = 0;    // spares started
  uint64_t taken = 0;    // calls that got one
  uint64_t changed = 0;  // killed at take(): a hidden directory was replaced meanwhile
  uint64_t expired = 0;  // killed unused after idleSeconds, or with their session
  uint64_t evicted = 0;  // killed to make room under maxSpares
  uint64_t died = 0;     // ended on their own while waiting
  uint64_t failed = 0;   // could not be built (the call that follows spawns its own)
  uint64_t waiting = 0;  // spares waiting now
};

class SpareSandboxes {
 public:
  SpareSandboxes(uv_loop_t* loop, kj::AsyncIoContext& io, spawn::Spawner& spawner,
                 SpareSettings settings);
  ~SpareSandboxes() noexcept(false);
  KJ_DISALLOW_COPY(SpareSandboxes);

  // The spare built for exactly this session and request, with its wall clock now running; null
  // when there is none or it may not be used (above).
  kj::Own<WorkerHost> take(const std::string& session, const spawn::SpawnRequest& request);

  // Builds a spare for this session and request once the current event is handled (so a call's
  // result is not held up by it), unless one is waiting already. Requests with an egress socket
  // are never prepared: that socket is the call's own.
  void prepare(const std::string& session, const spawn::SpawnRequest& request,
               const std::string& label, capnp::ReaderOptions readerOptions);

  // Kills every spare of this session (its context was reset, or it is gone).
  void dropSession(const std::string& session);

  // The gateway is stopping: kills every spare, forgets what was queued, stops the timers and
  // builds none from now on, so nothing of the pool keeps the loop running.
  void shutdown();

  SpareStats stats() const;

 private:
  struct Spare;
  struct Pending;
  struct Timers;  // uv handles; freed asynchronously after uv_close

  void buildPending();
  void sweep();
  void add(std::unique_ptr<Spare> spare);
  void armSweep();
  void retire(std::unique_ptr<Spare> spare);  // ended off the loop's back (WorkerEndings)

  uv_loop_t* loop_;
  kj::AsyncIoContext& io_;
  spawn::Spawner& spawner_;
  SpareSettings settings_;
  std::vector<std::unique_ptr<Spare>> spares_;  // oldest first
  std::vector<Pending> pending_;
  Timers* timers_;
  SpareStats stats_;
  bool shutDown_ = false;
  WorkerEndings endings_;
};

// What a spare is keyed by besides its session: the whole spawn request, as one string.
std::string spareRequestKey(const spawn::SpawnRequest& request);

}  // namespace chitin
