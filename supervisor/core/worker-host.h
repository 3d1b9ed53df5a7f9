// SPDX-License-Identifier: Apache-2.0
// One live sandboxed worker as the supervisor sees it: its Cap'n Proto connection, its exit
// (pidfd watched on the libuv loop), its wall-clock limit, its output (logged, capped:
// worker-log.h), its cgroup (removed once it is reaped), and killing it.
// Runs in: supervisor
//
// Every message the worker sends is read with the ReaderOptions its owner gives (Cap'n Proto's
// defaults, 64 MiB and 64 levels, unless the owner sized them: channel workers do); a message past
// them fails the connection and the worker is killed as a protocol breaker (worker-connection.h).
//
// Destroying a WorkerHost ends the worker, blocking until every process of its sandbox has gone
// (spawn::killSandbox: what bwrap started killed, bwrap itself killed, both waited for and bwrap
// reaped; a worker forked by a zygote, pid 1 of its own namespace, is killed itself and its
// status is the zygote's report), and stops watching it. endAsync() ends it the same way with
// the waits on the event loop (tool calls; WorkerEndings for hosts nobody waits on). Exit is
// reported once, through onExit().

#pragma once

#include <capnp/rpc-twoparty.h>
#include <kj/async-io.h>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>

#include "spawner.h"
#include "worker-connection.h"
#include "worker-log.h"

namespace chitin {

struct WorkerExit {
  int exitStatus = -1;  // when it exited normally
  int signal = 0;       // when it was killed by a signal
  std::string reason;   // e.g. "wall-clock limit of 30 s reached", "killed: protocol violation"

  std::string describe() const;
};

// ReaderOptions for a worker whose largest legitimate message is `maxMessageBytes` (a bound its
// contract states): that much traversal, plus 64 KiB for framing, and 16 levels of nesting.
capnp::ReaderOptions readerOptionsFor(uint64_t maxMessageBytes);

class WorkerHost {
 public:
  // How the worker's wall-clock limit (SpawnedWorker::wallClockSeconds) is armed: now, or when
  // the worker is given its work (a warm spare waits for a call it has not got yet:
  // spare-sandboxes.h; its limit runs from armWallClock()).
  enum class WallClock { NOW, ON_USE };

  WorkerHost(uv_loop_t* loop, kj::AsyncIoContext& io, spawn::SpawnedWorker worker,
             std::string label, capnp::ReaderOptions readerOptions = capnp::ReaderOptions(),
             WallClock wallClock = WallClock::NOW);
  ~WorkerHost() noexcept(false);
  KJ_DISALLOW_COPY(WorkerHost);

  // The worker's bootstrap capability.
  template <typename T>
  typename T::Client bootstrap() {
    return rpc_->bootstrap().castAs<T>();
  }

  // Resolves (once) when the worker process has exited. Never rejects.
  kj::Promise<WorkerExit> onExit();

  // Resolves with what the worker broke when it sent a message past the reader options (it is
  // being killed by then: "protocol violation: ..."). Never resolves otherwise.
  kj::Promise<std::string> onViolation() { return rpc_->onViolation(); }

  // Starts the wall-clock limit of a host built with WallClock::ON_USE (once; later calls and
  // hosts armed at construction do nothing).
  void armWallClock();

  // SIGKILL the sandbox; `reason` ends up in WorkerExit::reason and the log.
  void kill(const std::string& reason);

  // Ends the worker now, as destroying the host does (connection dropped, sandbox killed, its
  // outer bwrap reaped): "" once every process of the sandbox is confirmed gone, else why not
  // (logged too). Destroying the host afterwards only releases what is left.
  std::string end();
  // end() without blocking the loop while the sandbox's processes exit (a pid namespace takes a
  // millisecond or more to tear down): resolves with what end() would return, once it would have
  // returned. The host must outlive the promise; destroyed before it resolves, it ends the worker
  // as its destructor always does.
  kj::Promise<std::string> endAsync();

  bool exited() const { return exited_; }
  pid_t pid() const { return pid_; }
  const std::string& label() const { return label_; }

 private:
  struct Watch;  // uv handles; freed asynchronously after uv_close
  uv_loop_t* loop_;
  kj::AsyncIoContext* io_;
  std::string label_;
  pid_t pid_;
  kj::AutoCloseFd pidfd_;
  kj::Own<kj::AsyncCapabilityStream> stream_;
  int socketFd_ = -1;  // owned by stream_; kept to shut the connection down when the worker dies
  kj::Own<WorkerConnection> rpc_;
  kj::Promise<void> killOnViolation_ = nullptr;
  Watch* watch_;
  std::unique_ptr<WorkerLog> log_;  // null when the spawn request gave its own fds
  std::unique_ptr<spawn::CgroupLease> cgroup_;
  std::shared_ptr<spawn::ExitReporter> reporter_;  // a zygote's worker: not our child
  pid_t reporterPid_ = -1;
  bool exited_ = false;
  uint32_t wallClockSeconds_ = 0;  // 0: none, or already armed
  std::string killReason_;
  kj::ForkedPromise<WorkerExit> exitPromise_;
  kj::Own<kj::PromiseFulfiller<WorkerExit>> exitFulfiller_;

  void reap();
  void dropConnection();
  std::string ended(int error);  // marks it ended; "" for 0, else why not (logged)
  int killNow();  // spawn::killSandbox, or killForked for a zygote's worker
};

// Workers being ended without holding the loop (WorkerHost::endAsync): for hosts whose owner is
// done with them and waits for nothing (an idle session's worker, a spare no longer wanted). Each
// host is kept until its sandbox is confirmed gone; destroying this ends the rest at once, as
// their hosts' destructors do.
class WorkerEndings {
 public:
  void add(kj::Own<WorkerHost> host);
  // Ends the rest at once, as destroying this does (a shutdown leaves none behind). Not from
  // inside a KJ callback.
  void endNow() { tasks_ = kj::heap<kj::TaskSet>(errors_); }
  bool empty() { return tasks_->isEmpty(); }

 private:
  class LogErrors final : public kj::TaskSet::ErrorHandler {
   public:
    void taskFailed(kj::Exception&& exception) override;
  };
  LogErrors errors_;
  kj::Own<kj::TaskSet> tasks_ = kj::heap<kj::TaskSet>(errors_);
};

}  // namespace chitin
