// SPDX-License-Identifier: Apache-2.0
// Lifetime of one sandboxed worker (see worker-host.h).
// Runs in: supervisor

#include "worker-host.h"

#include <sys/socket.h>

#include <kj/debug.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

namespace chitin {

namespace {

constexpr unsigned MAX_FDS_PER_MESSAGE = 4;

}  // namespace

std::string WorkerExit::describe() const {
  std::string s;
  if (signal != 0) {
    s = "killed by signal " + std::to_string(signal) + " (" +
        (sigabbrev_np(signal) ? std::string("SIG") + sigabbrev_np(signal) : "?") + ")";
  } else {
    s = "exited with status " + std::to_string(exitStatus);
  }
  if (!reason.empty()) s += ": " + reason;
  return s;
}

// The uv handles outlive the WorkerHost when it is destroyed first: uv_close is asynchronous.
struct WorkerHost::Watch {
  uv_poll_t poll;
  uv_timer_t timer;
  WorkerHost* owner;
  int open = 2;

  static void onClosed(uv_handle_t* h) {
    auto* w = static_cast<Watch*>(h->data);
    if (--w->open == 0) delete w;
  }
};

capnp::ReaderOptions readerOptionsFor(uint64_t maxMessageBytes) {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = maxMessageBytes / sizeof(capnp::word) + (64 << 10) / sizeof(capnp::word);
  options.nestingLimit = 16;
  return options;
}

WorkerHost::WorkerHost(uv_loop_t* loop, kj::AsyncIoContext& io, spawn::SpawnedWorker worker,
                       std::string label, capnp::ReaderOptions readerOptions, WallClock wallClock)
    : loop_(loop),
      io_(&io),
      label_(std::move(label)),
      pid_(worker.pid),
      pidfd_(kj::mv(worker.pidfd)),
      exitPromise_(nullptr) {
  auto paf = kj::newPromiseAndFulfiller<WorkerExit>();
  exitPromise_ = paf.promise.fork();
  exitFulfiller_ = kj::mv(paf.fulfiller);

  if (worker.output.get() >= 0) {
    log_ = std::make_unique<WorkerLog>(loop, kj::mv(worker.output), label_);
  }
  cgroup_ = kj::mv(worker.cgroup);
  reporter_ = kj::mv(worker.reporter);
  reporterPid_ = worker.reporterPid;
  socketFd_ = worker.socket.get();
  stream_ = io.lowLevelProvider->wrapUnixSocketFd(worker.socket.release(),
                                                  kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
  rpc_ = kj::heap<WorkerConnection>(*stream_, MAX_FDS_PER_MESSAGE, readerOptions);
  killOnViolation_ = rpc_->onViolation()
                         .then([this](std::string what) { kill("protocol violation: " + what); })
                         .eagerlyEvaluate(nullptr);

  watch_ = new Watch;
  watch_->owner = this;
  KJ_ASSERT(uv_poll_init(loop, &watch_->poll, pidfd_.get()) == 0);
  watch_->poll.data = watch_;
  KJ_ASSERT(uv_poll_start(&watch_->poll, UV_READABLE, [](uv_poll_t* h, int, int) {
              auto* w = static_cast<Watch*>(h->data);
              if (w->owner != nullptr) w->owner->reap();
            }) == 0);
  KJ_ASSERT(uv_timer_init(loop, &watch_->timer) == 0);
  watch_->timer.data = watch_;
  wallClockSeconds_ = worker.wallClockSeconds;
  if (wallClock == WallClock::NOW) armWallClock();
}

void WorkerHost::armWallClock() {
  if (wallClockSeconds_ == 0 || exited_) return;
  uv_timer_start(
      &watch_->timer,
      [](uv_timer_t* h) {
        auto* w = static_cast<Watch*>(h->data);
        if (w->owner != nullptr) w->owner->kill("wall-clock limit reached");
      },
      uint64_t{wallClockSeconds_} * 1000, 0);
  wallClockSeconds_ = 0;
}

namespace {

std::string whyNotKilled(int error) {
  if (error == ETIMEDOUT)
    return "a process of its sandbox had not exited " + std::to_string(spawn::KILL_WAIT_MS) +
           " ms after SIGKILL";
  return std::string("it could not be signalled: ") + strerror(error);
}

}  // namespace

void WorkerHost::dropConnection() {
  // First, so no RPC touches a dying stream. The pidfd stays valid until we close it, so no signal
  // can hit a recycled pid.
  killOnViolation_ = nullptr;
  rpc_ = nullptr;
  stream_ = nullptr;
  socketFd_ = -1;  // closed with the stream
}

std::string WorkerHost::ended(int error) {
  exited_ = true;
  if (error == 0) return "";
  std::string why = whyNotKilled(error);
  spdlog::error("{} (pid {}): ending it: {}", label_, pid_, why);
  return why;
}

std::string WorkerHost::end() {
  dropConnection();
  if (exited_) return "";
  int error = killNow();
  // Reap synchronously: SIGKILL is not ignorable, and what bwrap started was killed with it. A
  // zygote reaps its own workers: only its report is taken.
  if (reporter_) {
    if (error == 0) reporter_->exitStatus(reporterPid_, spawn::KILL_WAIT_MS);
  } else if (error == 0 || error == ETIMEDOUT) {
    // Its monitor had SIGKILL (ETIMEDOUT is about what it had started). The loop's watch made the
    // pidfd non-blocking: reapPidfd() waits all the same.
    siginfo_t info;
    spawn::reapPidfd(pidfd_.get(), info);
  }
  return ended(error);
}

namespace {

// Resolves true once every one of `fds` is readable (pidfds: their processes have gone), false
// when `waitMs` runs out first.
kj::Promise<bool> readableWithin(kj::AsyncIoContext& io, kj::ArrayPtr<const int> fds, int waitMs) {
  auto observers = kj::heapArrayBuilder<kj::Own<kj::UnixEventPort::FdObserver>>(fds.size());
  auto readable = kj::heapArrayBuilder<kj::Promise<void>>(fds.size());
  for (int fd : fds) {
    observers.add(kj::heap<kj::UnixEventPort::FdObserver>(
        io.unixEventPort, fd, kj::UnixEventPort::FdObserver::OBSERVE_READ));
    readable.add(observers.back()->whenBecomesReadable());
  }
  return kj::joinPromises(readable.finish())
      .then([]() { return true; })
      .exclusiveJoin(io.provider->getTimer().afterDelay(waitMs * kj::MILLISECONDS).then([]() {
        return false;
      }))
      .attach(observers.finish());
}

// Whether `fd` is readable at once (a pidfd: its process has exited).
bool readableNow(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) > 0;
}

}  // namespace

kj::Promise<std::string> WorkerHost::endAsync() {
  dropConnection();
  if (exited_) return std::string();
  // This host reaps the worker itself from here: the loop's watch would race it.
  uv_poll_stop(&watch_->poll);
  uv_timer_stop(&watch_->timer);
  if (reporter_) {
    // Pid 1 of its own namespace: its pidfd turns readable once all of the namespace has gone.
    if (int error = spawn::stopForked(pidfd_.get()); error != 0) return ended(error);
    int fd = pidfd_.get();
    return readableWithin(*io_, kj::arrayPtr(&fd, 1), spawn::KILL_WAIT_MS).then([this](bool gone) {
      if (!gone) return ended(ETIMEDOUT);
      reporter_->exitStatus(reporterPid_, spawn::KILL_WAIT_MS);
      return ended(0);
    });
  }
  // killSandbox(), with the wait for what bwrap had started (the pid namespace's teardown) and for
  // bwrap's own exit on the event loop instead of blocking it.
  auto stop = kj::heap(spawn::stopSandbox(pidfd_.get(), pid_));
  if (stop->error != 0) return ended(stop->error);
  auto fds = kj::heapArray<int>(stop->exiting.size() + 1);
  for (size_t i = 0; i < stop->exiting.size(); ++i) fds[i] = stop->exiting[i].get();
  fds[stop->exiting.size()] = pidfd_.get();  // bwrap itself, reaped once it has exited
  auto waited = readableWithin(*io_, fds, spawn::KILL_WAIT_MS);
  return waited.attach(kj::mv(stop), kj::mv(fds)).then([this](bool allGone) {
    // A monitor not gone 2 s after SIGKILL is said, and not waited for on the loop.
    if (!allGone && !readableNow(pidfd_.get())) return ended(ETIMEDOUT);
    siginfo_t info;
    spawn::reapPidfd(pidfd_.get(), info);
    return ended(allGone ? 0 : ETIMEDOUT);  // or a killed child had still not exited
  });
}

void WorkerEndings::add(kj::Own<WorkerHost> host) {
  if (host.get() == nullptr) return;
  WorkerHost& ending = *host;
  // What went wrong is logged by the host (WorkerHost::ended).
  tasks_->add(ending.endAsync().ignoreResult().attach(kj::mv(host)));
}

void WorkerEndings::LogErrors::taskFailed(kj::Exception&& exception) {
  spdlog::error("ending a worker: {}", exception.getDescription().cStr());
}

WorkerHost::~WorkerHost() noexcept(false) {
  end();
  cgroup_ = nullptr;  // reaped: the cgroup can go
  watch_->owner = nullptr;
  uv_poll_stop(&watch_->poll);
  uv_timer_stop(&watch_->timer);
  uv_close(reinterpret_cast<uv_handle_t*>(&watch_->poll), &Watch::onClosed);
  uv_close(reinterpret_cast<uv_handle_t*>(&watch_->timer), &Watch::onClosed);
  if (exitFulfiller_->isWaiting()) {
    WorkerExit e;
    e.signal = SIGKILL;
    e.reason = killReason_.empty() ? "stopped by the supervisor" : killReason_;
    exitFulfiller_->fulfill(kj::mv(e));
  }
}

kj::Promise<WorkerExit> WorkerHost::onExit() { return exitPromise_.addBranch(); }

void WorkerHost::kill(const std::string& reason) {
  if (exited_) return;
  if (killReason_.empty()) killReason_ = reason;
  spdlog::warn("{} (pid {}): killing: {}", label_, pid_, reason);
  if (int error = killNow(); error != 0) {
    spdlog::error("{} (pid {}): killing it: {}", label_, pid_, whyNotKilled(error));
  }
}

int WorkerHost::killNow() {
  return reporter_ ? spawn::killForked(pidfd_.get()) : spawn::killSandbox(pidfd_.get(), pid_);
}

void WorkerHost::reap() {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  if (reporter_) {
    // Readable: it has gone, with its whole pid namespace. Its status is the zygote's to tell.
    struct pollfd ended = {pidfd_.get(), POLLIN, 0};
    if (poll(&ended, 1, 0) != 1) return;  // spurious wake-up
    auto status = reporter_->exitStatus(reporterPid_, spawn::KILL_WAIT_MS);
    info.si_pid = pid_;
    if (!status) {
      info.si_code = CLD_KILLED;  // the zygote went first and took it along
      info.si_status = SIGKILL;
    } else if (WIFEXITED(*status)) {
      info.si_code = CLD_EXITED;
      info.si_status = WEXITSTATUS(*status);
    } else {
      info.si_code = CLD_KILLED;
      info.si_status = WTERMSIG(*status);
    }
  } else if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd_.get()), &info,
                    WEXITED | WNOHANG) != 0) {
    return;
  }
  if (info.si_pid == 0) return;  // spurious wake-up
  exited_ = true;
  uv_poll_stop(&watch_->poll);
  uv_timer_stop(&watch_->timer);
  // The sandbox's monitor is gone. Whatever may still hold the other end of the socket (a child
  // bwrap had not yet tied to its parent's death, for one) is not our worker any more: end the
  // connection so calls in flight fail now instead of waiting on it.
  if (socketFd_ >= 0) ::shutdown(socketFd_, SHUT_RDWR);
  WorkerExit e;
  if (info.si_code == CLD_EXITED) {
    e.exitStatus = info.si_status;
    // bwrap reports a child killed by signal N as exit status 128+N.
    if (e.exitStatus > 128 && e.exitStatus < 128 + 65) e.signal = e.exitStatus - 128;
  } else {
    e.signal = info.si_status;
  }
  cgroup_ = nullptr;  // reaped: the cgroup can go
  e.reason = killReason_;
  if (e.signal == SIGSYS) e.reason = e.reason.empty() ? "blocked system call (seccomp)" : e.reason;
  if (e.exitStatus != 0 || e.signal != 0) {
    spdlog::info("{} (pid {}) {}", label_, pid_, e.describe());
  }
  exitFulfiller_->fulfill(kj::mv(e));
}

}  // namespace chitin
