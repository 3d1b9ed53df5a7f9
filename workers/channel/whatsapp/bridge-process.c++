// SPDX-License-Identifier: Apache-2.0
// The WhatsApp bridge as a child process (see bridge-process.h).
// Runs in: worker (sandboxed)

#include "bridge-process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform.h"
#include "stream.h"

namespace chitin::channel {

namespace {

void closeFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

std::string describe(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "ended (status " + std::to_string(status) + ")";
}

}  // namespace

BridgeProcess::BridgeProcess(const std::vector<std::string>& argv) {
  if (argv.empty() || argv[0].empty() || argv[0][0] != '/')
    throw ChannelError("whatsapp: the bridge command must start with an absolute path");
  // stdin is a socket, not a pipe: writes use MSG_NOSIGNAL, so a bridge that died never
  // raises SIGPIPE in the worker.
  int in[2], out[2], wake[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0)
    throw ChannelError(std::string("socketpair: ") + strerror(errno));
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    throw ChannelError(std::string("pipe: ") + strerror(errno));
  }
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    for (int fd : {in[0], in[1], out[0], out[1]}) close(fd);
    throw ChannelError(std::string("pipe: ") + strerror(errno));
  }
  // Everything the child needs is built before fork(): after it, in a threaded process, only
  // async-signal-safe calls.
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  char* noEnvironment[] = {nullptr};
  pid_t parent = getpid();

  pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {in[0], in[1], out[0], out[1], wake[0], wake[1]}) close(fd);
    throw ChannelError(std::string("whatsapp: cannot start the bridge: ") + strerror(errno));
  }
  if (pid == 0) {
    // In the child: stdin/stdout are the pipes, stderr stays the worker's; no other
    // descriptor survives (the worker's fd 3 is its capability to the supervisor).
    if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0) _exit(126);
    syscall(SYS_close_range, 3, ~0U, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);  // the worker died before the line above
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(args[0], args.data(), noEnvironment);
    _exit(127);
  }
  pid_ = pid;
  close(in[0]);
  close(out[1]);
  toChild_ = in[1];  // the child has in[0]
  fromChild_ = out[0];
  wakeRead_ = wake[0];
  wakeWrite_ = wake[1];
}

BridgeProcess::~BridgeProcess() {
  finish();
  closeFd(toChild_);
  closeFd(fromChild_);
  closeFd(wakeRead_);
  closeFd(wakeWrite_);
}

void BridgeProcess::writeLine(const std::string& line) {
  std::lock_guard lock(writeMutex_);
  std::string data = line + "\n";
  size_t at = 0;
  while (at < data.size()) {
    pollfd p{toChild_, POLLOUT, 0};
    if (poll(&p, 1, 10000) <= 0 || (p.revents & (POLLERR | POLLHUP)))
      throw ChannelError("whatsapp: the bridge does not read its input");
    ssize_t n = send(toChild_, data.data() + at, data.size() - at, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw ChannelError(std::string("whatsapp: writing to the bridge: ") + strerror(errno));
    }
    at += static_cast<size_t>(n);
  }
}

std::optional<std::string> BridgeProcess::readLine(size_t maxLine) {
  for (;;) {
    size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    if (buffer_.size() > maxLine)
      throw ChannelError("whatsapp: the bridge wrote a line longer than " +
                         std::to_string(maxLine) + " bytes");
    pollfd fds[2] = {{fromChild_, POLLIN, 0}, {wakeRead_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      throw ChannelError(std::string("whatsapp: poll: ") + strerror(errno));
    }
    if (fds[1].revents) throw StreamInterrupted{};
    char chunk[65536];
    ssize_t n = read(fromChild_, chunk, sizeof chunk);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      throw ChannelError(std::string("whatsapp: reading from the bridge: ") + strerror(errno));
    }
    if (n == 0) return std::nullopt;
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

void BridgeProcess::interrupt() {
  char byte = 1;
  [[maybe_unused]] ssize_t ignored = write(wakeWrite_, &byte, 1);
}

std::string BridgeProcess::finish() {
  if (reaped_) return ending_;
  kill(pid_, SIGKILL);  // a no-op when it already exited (a zombie until reaped)
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  ending_ = describe(status);
  return ending_;
}

}  // namespace chitin::channel
