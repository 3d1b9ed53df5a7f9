// SPDX-License-Identifier: Apache-2.0
// Ending sandboxes: killSandbox()'s kills of the outer bwrap and its child, the zygote workers'
// kills, and the reaping through pidfds that every blocking wait goes through.
// Runs in: supervisor

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <string>
#include <vector>

#include "proc-stat.h"
#include "spawner.h"

namespace chitin::spawn {

namespace {

// Waits until `fd` is readable (a pidfd: its process has gone) or `deadline` has passed.
bool readableBy(int fd, std::chrono::steady_clock::time_point deadline) {
  struct pollfd p = {fd, POLLIN, 0};
  int ready;
  do {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    ready = poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
  } while (ready < 0 && errno == EINTR);
  return ready > 0;
}

int pidfdSignal(int pidfd, int sig) {
  return static_cast<int>(syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// The pids /proc lists as children of `pid`'s threads.
std::vector<pid_t> childrenOf(pid_t pid) {
  std::vector<pid_t> out;
  std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  DIR* dir = opendir(tasks.c_str());
  if (dir == nullptr) return out;
  while (struct dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream list(tasks + "/" + e->d_name + "/children");
    long child;
    while (list >> child) out.push_back(static_cast<pid_t>(child));
  }
  closedir(dir);
  return out;
}

// Whether /proc/CHILD/stat names `parent` as its parent.
bool parentIs(pid_t child, pid_t parent) {
  std::string path = "/proc/" + std::to_string(child) + "/stat";
  return parentInProcStat(path.c_str()) == parent;
}

}  // namespace

int reapPidfd(int pidfd, siginfo_t& info) {
  while (true) {
    memset(&info, 0, sizeof(info));
    if (waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(pidfd), &info, WEXITED) == 0)
      return 0;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return errno;
    // A non-blocking pidfd: it polls readable once the process has exited.
    struct pollfd p = {pidfd, POLLIN, 0};
    if (poll(&p, 1, -1) < 0 && errno != EINTR) return errno;
  }
}

namespace {

// SIGKILLs each child of `pid` (an outer bwrap) through a pidfd of its own, kept in `stop`. Whether
// one was found: then bwrap had made it (each is checked through its own pidfd, so the pid cannot
// have been given to another process since).
bool killChildren(pid_t pid, SandboxStop& stop) {
  bool found = false;
  for (pid_t child : childrenOf(pid)) {
    int childFd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
    if (childFd < 0) continue;  // gone already
    kj::AutoCloseFd fd(childFd);
    if (!parentIs(child, pid)) continue;
    found = true;
    if (pidfdSignal(childFd, SIGKILL) == 0) stop.exiting.push_back(kj::mv(fd));
  }
  return found;
}

}  // namespace

SandboxStop stopSandbox(int pidfd, pid_t pid) {
  // When the outer bwrap is its pid namespace's init (SpawnerSettings::pidNamespacePerSandbox),
  // its SIGKILL alone would end the whole sandbox. Its child is still killed first: the kernel
  // kills the namespace only once the outer bwrap's own exit has come that far, so the inner
  // namespace's teardown (the bulk of the wait) began later, and an exec call took 0.2-0.3 ms
  // longer (measured: four paired runs).
  SandboxStop stop;
  // bwrap makes one child, at its start, before any set-up (the raw_clone into the new
  // namespaces), and never another. Found, it was made: killed, nothing is left to start.
  if (!killChildren(pid, stop)) {
    // Not made yet (or made, ended and reaped already): bwrap may still make it. Stopped, it
    // cannot. It is our child: waitid sees the stop (or its end), and WNOWAIT leaves either to be
    // reported again. By pid, not through the pidfd: a pidfd tells no stop, and one made
    // non-blocking would not wait at all (reapPidfd()); the pid is still this process's, as it is
    // our child and not reaped.
    if (pidfdSignal(pidfd, SIGSTOP) != 0) return stop;  // gone already: nothing left to stop
    siginfo_t info;
    memset(&info, 0, sizeof(info));
    while (waitid(P_PID, static_cast<id_t>(pid), &info, WSTOPPED | WEXITED | WNOWAIT) < 0 &&
           errno == EINTR) {
    }
    killChildren(pid, stop);
  }
  // Its children have their SIGKILL: bwrap goes now, not once they have gone. They exit all the
  // same (reparented if bwrap goes first), and the caller waits for both.
  if (pidfdSignal(pidfd, SIGKILL) < 0 && errno != ESRCH) stop.error = errno;
  return stop;
}

int killSandbox(int pidfd, pid_t pid, int waitMs) {
  SandboxStop stop = stopSandbox(pidfd, pid);
  // A pid namespace's init that dies takes the namespace with it, but only as it exits: until its
  // pidfd reports the exit, what the sandbox left running (a process in a session of its own,
  // still writing to a bind mount) may run on. Waited for here, so that when this returns nothing
  // of the sandbox runs any more. The wait is a moment; its bound (shared by all of them) only
  // keeps a kernel that never reports an exit from holding the caller, and running out of it is
  // said, not passed over.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(waitMs);
  bool outlived = false;
  for (auto& fd : stop.exiting) {
    if (!readableBy(fd.get(), deadline)) outlived = true;
  }
  if (stop.error != 0) return stop.error;
  return outlived ? ETIMEDOUT : 0;
}

int stopForked(int pidfd) { return pidfdSignal(pidfd, SIGKILL) < 0 && errno != ESRCH ? errno : 0; }

int killForked(int pidfd, int waitMs) {
  if (int error = stopForked(pidfd); error != 0) return error;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(waitMs);
  return readableBy(pidfd, deadline) ? 0 : ETIMEDOUT;
}

void killWorker(const SpawnedWorker& worker) {
  int error = worker.reporter ? killForked(worker.pidfd.get())
                              : killSandbox(worker.pidfd.get(), worker.pid);
  if (error == ETIMEDOUT)
    KJ_FAIL_REQUIRE("a process of the sandbox had not exited after SIGKILL", worker.pid,
                    KILL_WAIT_MS);
  if (error != 0) KJ_FAIL_SYSCALL("pidfd_send_signal", error, worker.pid);
}

}  // namespace chitin::spawn
