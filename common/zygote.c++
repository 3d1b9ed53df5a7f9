// SPDX-License-Identifier: Apache-2.0
// The zygote's request loop and a forked worker's own sandbox steps (see zygote.h).
// Runs in: worker (sandboxed)

#include "zygote.h"

#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox-child.h"
#include "seccomp-groups.h"

namespace chitin::zygote {

namespace {

constexpr int CONTROL_FD = 3;
constexpr int EXIT_BROKEN = 70;  // sysexits.h EX_SOFTWARE, as runWorker's set-up failures

[[noreturn]] void give_up(const char* what, int error) {
  fprintf(stderr, "chitin zygote: %s: %s\n", what, error != 0 ? strerror(error) : "refused");
  _exit(EXIT_BROKEN);
}

bool terminated(const char* text, size_t size) { return memchr(text, '\0', size) != nullptr; }

// The SETUP message, checked whole before anything is forked. Static, not on the heap: the
// zygote leaves its heap as its start-up left it, so that what a forked worker allocates lands in
// fresh pages rather than spread over pages it would first copy.
struct Plan {
  Setup setup;
  sock_filter filter[MAX_FILTER_BYTES / sizeof(sock_filter) + 1];
  size_t filterLength;
};
Plan thePlan;

const Plan& receiveSetup() {
  Plan& plan = thePlan;
  iovec parts[2] = {{&plan.setup, sizeof(plan.setup)}, {plan.filter, sizeof(plan.filter)}};
  msghdr msg{};
  msg.msg_iov = parts;
  msg.msg_iovlen = 2;
  ssize_t n;
  do {
    n = recvmsg(CONTROL_FD, &msg, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) give_up("reading its set-up", errno);
  if (n == 0) _exit(0);  // the supervisor went before asking for anything
  if (static_cast<size_t>(n) < sizeof(Setup)) give_up("set-up message too short", 0);
  const Setup& s = plan.setup;
  size_t filterBytes = static_cast<size_t>(n) - sizeof(Setup);
  if ((msg.msg_flags & MSG_TRUNC) != 0 || s.type != Type::SETUP || s.renewalCount > MAX_RENEWALS ||
      s.filterBytes != filterBytes || filterBytes == 0 || filterBytes > MAX_FILTER_BYTES ||
      filterBytes % sizeof(sock_filter) != 0 || !terminated(s.limits, sizeof(s.limits))) {
    give_up("malformed set-up message", 0);
  }
  for (uint32_t i = 0; i < s.renewalCount; i++) {
    const Renewal& r = s.renewals[i];
    if (!terminated(r.path, sizeof(r.path)) || r.path[0] != '/' ||
        (r.kind != RenewKind::PROC && r.kind != RenewKind::TMPFS && r.kind != RenewKind::DEVPTS) ||
        (r.kind == RenewKind::TMPFS && r.sizeBytes == 0)) {
      give_up("malformed mount in the set-up message", 0);
    }
  }
  plan.filterLength = filterBytes / sizeof(sock_filter);
  return plan;
}

void sendMessage(const void* data, size_t size, int fd) {
  iovec iov{const_cast<void*>(data), size};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  if (fd >= 0) {
    memset(control, 0, sizeof(control));
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(int));
  }
  ssize_t n;
  do {
    n = sendmsg(CONTROL_FD, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EPIPE || errno == ECONNRESET) _exit(0);  // the supervisor has gone
    give_up("answering the supervisor", errno);
  }
}

void reportExits() {
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    Exited e{Type::EXITED, pid, status, 0};
    sendMessage(&e, sizeof(e), -1);
  }
}

// Steps 1-5 of zygote.h, in the new child. Any failure ends it with EXIT_BROKEN.
void becomeWorker(const Plan& plan, const int (&fds)[3], int signalFd, const sigset_t& savedMask) {
  // 1. Tied to the zygote, and alone in a pid namespace of its own. (A raw clone does not
  // update the thread id glibc keeps for this thread; it was the zygote's, 1, and is ours, 1.)
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) give_up("PR_SET_PDEATHSIG", errno);
  if (getpid() != 1) give_up("the forked worker is not pid 1 of its own pid namespace", 0);
  close(signalFd);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &dfl, nullptr);
  sigprocmask(SIG_SETMASK, &savedMask, nullptr);

  // 2. Its own mounts: nothing propagates back to the zygote, and every place one worker could
  // write (or see other processes) is a fresh instance of its own.
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0)
    give_up("making its mounts private", errno);
  for (uint32_t i = 0; i < plan.setup.renewalCount; i++) {
    const Renewal& r = plan.setup.renewals[i];
    int rc = 0;
    switch (r.kind) {
      case RenewKind::PROC:
        rc = mount("proc", r.path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
        break;
      case RenewKind::TMPFS: {
        char options[64];
        snprintf(options, sizeof(options), "mode=0755,size=%llu",
                 static_cast<unsigned long long>(r.sizeBytes));
        rc = mount("tmpfs", r.path, "tmpfs", MS_NOSUID | MS_NODEV, options);
        break;
      }
      case RenewKind::DEVPTS:
        rc = mount("devpts", r.path, "devpts", MS_NOSUID | MS_NOEXEC,
                   "newinstance,ptmxmode=0666,mode=620");
        break;
    }
    if (rc < 0) {
      char what[320];
      snprintf(what, sizeof(what), "mounting its own %s on %s",
               r.kind == RenewKind::PROC    ? "proc"
               : r.kind == RenewKind::TMPFS ? "tmpfs"
                                            : "devpts",
               r.path);
      give_up(what, errno);
    }
  }
  // The root (bwrap's tmpfs, shared with the zygote and every other worker) read-only, keeping
  // the flags it has.
  struct statvfs root;
  if (statvfs("/", &root) < 0) give_up("reading the root's mount flags", errno);
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
  if (root.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (root.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (root.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (root.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (root.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (root.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  if (mount(nullptr, "/", nullptr, flags, nullptr) < 0) give_up("making the root read-only", errno);

  // 3. Its fds: the socket on 3 (over the zygote's control socket), its own output on 1 and 2.
  // (All three arrived above fd 3: 0-3 were taken in the zygote.)
  if (dup2(fds[0], CONTROL_FD) < 0 || dup2(fds[1], STDOUT_FILENO) < 0 ||
      dup2(fds[2], STDERR_FILENO) < 0) {
    give_up("placing its fds", errno);
  }
  if (syscall(SYS_close_range, CONTROL_FD + 1, ~0U, 0) < 0) give_up("closing other fds", errno);

  // 4. No capability left: CAP_SYS_ADMIN and CAP_SETPCAP were the zygote's, for the steps above
  // and this one. Out of the bounding set first (that needs CAP_SETPCAP), then every set.
  for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
    if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1 && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
      give_up("emptying its bounding set", errno);
  }
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct none[2] = {};
  if (syscall(SYS_capset, &header, none) < 0) give_up("dropping its capabilities", errno);

  // 5. The profile's filter, stacked on the zygote's (no_new_privs is bwrap's, inherited).
  if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) give_up("no_new_privs is not set", 0);
  auto program = kj::arrayPtr(reinterpret_cast<const kj::byte*>(plan.filter),
                              plan.filterLength * sizeof(sock_filter));
  if (int error = loadSeccompProgram(program); error != 0)
    give_up("loading the profile's filter", error);
}

// malloc, with the pointer escaping: a chunk sealHeap() takes is held, never used, and the
// compiler may otherwise remove the call (GCC drops an allocation whose result is only compared).
void* take(size_t bytes) {
  void* chunk = malloc(bytes);
  asm volatile("" : : "g"(chunk) : "memory");
  return chunk;
}

}  // namespace

void sealHeap() {
  constexpr size_t MIN_CHUNK = 32;     // glibc's MINSIZE on x86-64
  constexpr size_t CACHED_MAX = 1040;  // its largest chunk its per-thread cache keeps
  constexpr int MAX_STEPS = 100'000;   // a bound, whatever malloc does
  // In mallinfo2's terms: uordblks counts the chunks in use and those in the cache; fordblks the
  // free ones in the bins and the top chunk, keepcost the top chunk alone.
  auto freeBelowTop = [](const struct mallinfo2& mi) { return mi.fordblks - mi.keepcost; };
  int steps = 0;
  // 0. What can go back to the system goes (and the fast bins are merged into the others).
  malloc_trim(0);
  // 1. The per-thread cache, when it is on (a chunk freed into it stays counted in use): a chunk
  //    taken from it changes no total. The first that does (from the bins or the top) is kept
  //    too and ends that size.
  void* probe = take(MIN_CHUNK - sizeof(size_t));
  size_t inUse = mallinfo2().uordblks;
  free(probe);
  if (mallinfo2().uordblks == inUse) {
    for (size_t chunk = MIN_CHUNK; chunk <= CACHED_MAX; chunk += 16) {
      while (steps++ < MAX_STEPS) {
        size_t before = mallinfo2().uordblks;
        if (take(chunk - sizeof(size_t)) == nullptr || mallinfo2().uordblks != before) break;
      }
    }
  }
  // 2. The bins, largest requests first (the smallest fits any free chunk). A chunk carved from
  //    the top changes the top's size: that ends its request size, and a large one goes back
  //    (merging into the top again; a small one would be cached, so it is kept).
  for (size_t request = 64 * 1024; request >= 16; request /= 4) {
    while (steps++ < MAX_STEPS) {
      struct mallinfo2 before = mallinfo2();
      if (freeBelowTop(before) < MIN_CHUNK) return;
      void* chunk = take(request);
      if (chunk == nullptr) return;
      if (mallinfo2().keepcost != before.keepcost) {
        if (request + sizeof(size_t) > CACHED_MAX) free(chunk);
        break;
      }
    }
  }
}

bool requested(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], ZYGOTE_FLAG) == 0) return true;
  }
  return false;
}

Child serve() {
  // Pid 1 of the sandbox (bwrap --as-pid-1): each child's glibc thread id stays right (above),
  // and the zygote's end takes every worker it forked with it.
  if (getpid() != 1) give_up("the zygote is not pid 1 of its sandbox", 0);
  const Plan& plan = receiveSetup();
  // What each worker would otherwise do for itself after the fork, done once here so that its
  // pages are shared: glibc's backtrace() loads libgcc_s on first use (lockDownInWorker()).
  void* frames[4];
  backtrace(frames, 4);
  // What start-up freed (the lockdown filter's building, runWorker's) goes back now, and what
  // stays free between live chunks is taken: the pages a worker allocates into are then fresh
  // ones, not copies of the zygote's.
  sealHeap();

  sigset_t chld, saved;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  if (sigprocmask(SIG_BLOCK, &chld, &saved) < 0) give_up("blocking SIGCHLD", errno);
  int signalFd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (signalFd < 0) give_up("signalfd", errno);

  for (;;) {
    pollfd fds[2] = {{CONTROL_FD, POLLIN, 0}, {signalFd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      give_up("poll", errno);
    }
    if (fds[1].revents != 0) {
      signalfd_siginfo info[8];
      while (read(signalFd, info, sizeof(info)) > 0) {
      }
      reportExits();
    }
    if (fds[0].revents == 0) continue;

    Fork request{};
    iovec iov{&request, sizeof(request)};
    alignas(cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(CONTROL_FD, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      give_up("reading a request", errno);
    }
    if (n == 0) _exit(0);  // the supervisor hung up: this zygote's work is done
    int passed[3] = {-1, -1, -1};
    size_t received = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t k = 0; k < count; k++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
        if (received < 3) {
          passed[received] = fd;
        } else {
          close(fd);
        }
        received++;
      }
    }
    if (static_cast<size_t>(n) != sizeof(request) || request.type != Type::FORK || received != 3 ||
        (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
      give_up("malformed fork request", 0);
    }

    int pidfd = -1;
    long pid = syscall(SYS_clone, seccomp::ZYGOTE_CLONE_FLAGS, nullptr, &pidfd, nullptr, nullptr);
    if (pid == 0) {
      becomeWorker(plan, passed, signalFd, saved);
      return Child{{std::string(plan.setup.limits)}};
    }
    int error = pid < 0 ? errno : 0;
    for (int fd : passed) close(fd);
    Forked answer{Type::FORKED, pid > 0 ? static_cast<int32_t>(pid) : 0, request.id, error, 0};
    sendMessage(&answer, sizeof(answer), pid > 0 ? pidfd : -1);
    if (pidfd >= 0) close(pidfd);
  }
}

}  // namespace chitin::zygote
