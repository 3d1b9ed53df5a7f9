// SPDX-License-Identifier: Apache-2.0
// Asking a zygote for workers (see fork-server.h; the zygote itself: common/zygote.h).
// Runs in: supervisor

#include "fork-server.h"

#include <errno.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <fstream>

#include "zygote.h"

namespace chitin::spawn {

namespace {

constexpr size_t SAID_KEPT = 2048;

// The host pid behind a pidfd (its fdinfo's "Pid:" line); -1 once it has been reaped.
pid_t pidOf(int pidfd) {
  std::ifstream in("/proc/self/fdinfo/" + std::to_string(pidfd));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Pid:", 0) == 0) return static_cast<pid_t>(std::stol(line.substr(4)));
  }
  return -1;
}

void copyPath(char (&out)[256], const std::string& path) {
  if (path.size() >= sizeof(out)) {
    throw SandboxUnavailable("mount path too long for a zygote: " + path);
  }
  memcpy(out, path.c_str(), path.size() + 1);
}

}  // namespace

struct ForkServer::Answer {
  zygote::Forked forked{};
  kj::AutoCloseFd pidfd;
  bool got = false;
};

std::string zygoteSetup(const config::SandboxProfile& profile, const std::string& bpf) {
  zygote::Setup setup{};
  setup.type = zygote::Type::SETUP;
  auto renew = [&](zygote::RenewKind kind, const std::string& path, uint64_t size) {
    if (setup.renewalCount == zygote::MAX_RENEWALS) {
      throw SandboxUnavailable("sandbox profile \"" + profile.name() +
                               "\" has more mounts than a zygote renews (" +
                               std::to_string(zygote::MAX_RENEWALS) + ")");
    }
    auto& r = setup.renewals[setup.renewalCount++];
    r.kind = kind;
    r.sizeBytes = size;
    copyPath(r.path, path);
  };
  for (auto& mount : profile.mount()) {
    switch (mount.kind()) {
      case config::Mount::PROC:
        renew(zygote::RenewKind::PROC, mount.dst(), 0);
        break;
      case config::Mount::TMPFS:
        renew(zygote::RenewKind::TMPFS, mount.dst(), profile.limits().tmpfs_bytes());
        break;
      case config::Mount::DEV:
        // bwrap's /dev is read-only (compileArgv); what is writable in it is its own mounts.
        renew(zygote::RenewKind::TMPFS, mount.dst() + "/shm", profile.limits().tmpfs_bytes());
        renew(zygote::RenewKind::DEVPTS, mount.dst() + "/pts", 0);
        break;
      case config::Mount::RO_BIND:
      case config::Mount::RO_BIND_TRY:
      case config::Mount::SYMLINK:
        break;  // nothing a worker can change
      default:
        throw SandboxUnavailable("sandbox profile \"" + profile.name() +
                                 "\" has a mount a zygote cannot renew for each worker");
    }
  }
  std::string limits = limitsFlag(profile.limits());
  if (limits.size() >= sizeof(setup.limits)) {
    throw SandboxUnavailable("limits too long for a zygote: " + limits);
  }
  memcpy(setup.limits, limits.c_str(), limits.size() + 1);
  if (bpf.empty() || bpf.size() > zygote::MAX_FILTER_BYTES) {
    throw SandboxUnavailable("sandbox profile \"" + profile.name() +
                             "\" compiles to a filter a zygote cannot take (" +
                             std::to_string(bpf.size()) + " bytes)");
  }
  setup.filterBytes = static_cast<uint32_t>(bpf.size());
  std::string message(reinterpret_cast<const char*>(&setup), sizeof(setup));
  return message + bpf;
}

ForkServer::ForkServer(SpawnedWorker zygote, const config::SandboxProfile& profile,
                       const std::string& bpf)
    : zygote_(kj::mv(zygote)),
      profileName_(profile.name()),
      wallClockSeconds_(profile.limits().wall_clock_seconds()) {
  std::string setup = zygoteSetup(profile, bpf);
  ssize_t n;
  do {
    n = send(zygote_.socket.get(), setup.data(), setup.size(), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(setup.size())) {
    fail(std::string("cannot send it its set-up: ") + strerror(errno));
  }
}

ForkServer::~ForkServer() noexcept(false) {
  if (reaped_) return;
  // Its end takes every worker it forked (it is pid 1 of their sandbox); their own hosts learn
  // of it through their pidfds.
  killSandbox(zygote_.pidfd.get(), zygote_.pid);
  waitForExit(zygote_);
}

bool ForkServer::usable() {
  if (broken_) return false;
  if (pollExit(zygote_)) {
    reaped_ = true;
    broken_ = true;
    return false;
  }
  return true;
}

void ForkServer::drainOutput() {
  if (zygote_.output.get() < 0) return;
  char buffer[1024];
  ssize_t n;
  while ((n = read(zygote_.output.get(), buffer, sizeof(buffer))) > 0) {
    said_.append(buffer, static_cast<size_t>(n));
    if (said_.size() > SAID_KEPT) said_.erase(0, said_.size() - SAID_KEPT);
  }
}

void ForkServer::fail(const std::string& why) {
  broken_ = true;
  drainOutput();
  std::string said = said_;
  while (!said.empty() && said.back() == '\n') said.pop_back();
  throw SandboxUnavailable("the " + profileName_ + " zygote (pid " + std::to_string(zygote_.pid) +
                           ") " + why + (said.empty() ? "" : "; it said: " + said));
}

bool ForkServer::readOne(int waitMs, Answer* answer) {
  struct pollfd p = {zygote_.socket.get(), POLLIN, 0};
  int ready;
  do {
    ready = poll(&p, 1, waitMs);
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) return false;
  if (ready < 0) fail(std::string("cannot be polled: ") + strerror(errno));

  alignas(8) char buffer[sizeof(zygote::Forked) > sizeof(zygote::Exited) ? sizeof(zygote::Forked)
                                                                         : sizeof(zygote::Exited)];
  iovec iov{buffer, sizeof(buffer)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    n = recvmsg(zygote_.socket.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return false;
  if (n < 0) fail(std::string("cannot be read: ") + strerror(errno));
  if (n == 0) fail("has ended");
  kj::AutoCloseFd passed;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int fd;
      memcpy(&fd, CMSG_DATA(c), sizeof(int));
      passed = kj::AutoCloseFd(fd);
    }
  }
  zygote::Type type;
  memcpy(&type, buffer, sizeof(type));
  if (type == zygote::Type::EXITED && n == sizeof(zygote::Exited) && passed.get() < 0) {
    zygote::Exited e;
    memcpy(&e, buffer, sizeof(e));
    exited_[e.pid] = e.status;
    return true;
  }
  if (type == zygote::Type::FORKED && n == sizeof(zygote::Forked) && answer != nullptr) {
    memcpy(&answer->forked, buffer, sizeof(answer->forked));
    answer->pidfd = kj::mv(passed);
    answer->got = true;
    return true;
  }
  fail("sent a message that is not in its protocol");
}

SpawnedWorker ForkServer::fork(int stdoutFd, int stderrFd) {
  if (broken_) fail("is not usable");
  // The worker's socket (the same kind bwrap's workers get) and, unless given, its own output
  // pipe (non-blocking on our end: the supervisor never waits on a worker's output).
  int pair[2];
  KJ_SYSCALL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
  kj::AutoCloseFd ours(pair[0]), theirs(pair[1]);
  kj::AutoCloseFd outputRead, outputWrite;
  if (stdoutFd < 0 || stderrFd < 0) {
    int pipeFds[2];
    KJ_SYSCALL(pipe2(pipeFds, O_CLOEXEC));
    outputRead = kj::AutoCloseFd(pipeFds[0]);
    outputWrite = kj::AutoCloseFd(pipeFds[1]);
    KJ_SYSCALL(fcntl(outputRead, F_SETFL, O_NONBLOCK));
  }

  zygote::Fork request{zygote::Type::FORK, 0, nextId_++};
  iovec iov{&request, sizeof(request)};
  alignas(cmsghdr) char control[CMSG_SPACE(3 * sizeof(int))];
  memset(control, 0, sizeof(control));
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(3 * sizeof(int));
  int fds[3] = {theirs.get(), stdoutFd >= 0 ? stdoutFd : outputWrite.get(),
                stderrFd >= 0 ? stderrFd : outputWrite.get()};
  memcpy(CMSG_DATA(c), fds, sizeof(fds));
  ssize_t n;
  do {
    n = sendmsg(zygote_.socket.get(), &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof(request))) {
    fail(std::string("cannot be asked for a worker: ") + strerror(errno));
  }
  theirs = nullptr;
  outputWrite = nullptr;

  Answer answer;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ANSWER_MS);
  while (!answer.got) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0)
      fail("did not answer a fork within " + std::to_string(ANSWER_MS) + " ms");
    readOne(static_cast<int>(left.count()), &answer);
  }
  if (answer.forked.id != request.id) fail("answered another request than the one asked");
  if (answer.forked.pid <= 0 || answer.pidfd.get() < 0) {
    // The zygote itself is fine (it answered); the kernel refused the namespaces.
    throw SandboxUnavailable("the " + profileName_ +
                             " zygote cannot fork a worker: " + strerror(answer.forked.error));
  }
  SpawnedWorker worker;
  worker.pid = pidOf(answer.pidfd.get());
  worker.pidfd = kj::mv(answer.pidfd);
  worker.socket = kj::mv(ours);
  worker.output = kj::mv(outputRead);
  worker.wallClockSeconds = wallClockSeconds_;
  worker.profile = profileName_;
  worker.reporter = shared_from_this();
  worker.reporterPid = answer.forked.pid;
  return worker;
}

std::optional<int> ForkServer::exitStatus(pid_t pid, int waitMs) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(waitMs);
  for (;;) {
    auto it = exited_.find(pid);
    if (it != exited_.end()) {
      int status = it->second;
      exited_.erase(it);
      return status;
    }
    if (broken_) return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    try {
      readOne(static_cast<int>(left.count()), nullptr);
    } catch (const SandboxUnavailable&) {
      return std::nullopt;  // the zygote has gone, and its workers with it
    }
  }
}

}  // namespace chitin::spawn
