// SPDX-License-Identifier: Apache-2.0
// Test support: running probes in real sandboxes (see probe-runner.h).
// Runs in: tests

#include "probe-runner.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <ftw.h>
#include <kj/debug.h>
#include <poll.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <map>
#include <memory>

namespace chitin::testing {

namespace {

std::string requiredEnv(const char* name) {
  const char* value = getenv(name);
  KJ_REQUIRE(value != nullptr && *value != '\0', "the sandbox suite runs under meson test", name);
  return value;
}

int64_t nowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

std::string stripResult(const std::string& line) {
  const std::string prefix = "result: ";
  return line.rfind(prefix, 0) == 0 ? line.substr(prefix.size()) : line;
}

}  // namespace

spawn::Spawner& testSpawner() {
  static spawn::SystemSpawnOs os;
  static spawn::Spawner spawner(
      spawn::SpawnerSettings{"/usr/bin/bwrap", requiredEnv("CHITIN_PROFILE_DIR"),
                             requiredEnv("CHITIN_WORKER_DIR")},
      os);
  return spawner;
}

RunningProbe::RunningProbe(spawn::SpawnedWorker worker, kj::AutoCloseFd output)
    : worker_(kj::mv(worker)), output_(kj::mv(output)) {}

RunningProbe::~RunningProbe() {
  if (!reaped_ && worker_.pidfd.get() >= 0) {
    spawn::killWorker(worker_);
    spawn::waitForExit(worker_);
  }
}

std::string RunningProbe::readLineWithin(int timeoutMs) {
  int64_t deadline = nowMs() + timeoutMs;
  for (;;) {
    size_t newline = buffer_.find('\n');
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    if (output_.get() < 0) return "";
    int left = static_cast<int>(deadline - nowMs());
    if (left <= 0) return "<timeout>";
    pollfd pfd{output_.get(), POLLIN, 0};
    if (poll(&pfd, 1, left) <= 0) continue;
    char chunk[4096];
    ssize_t n = read(output_.get(), chunk, sizeof(chunk));
    if (n <= 0) {
      output_ = nullptr;  // EOF: every process of the sandbox has gone
      std::string rest = kj::mv(buffer_);
      buffer_.clear();
      return rest;
    }
    buffer_.append(chunk, n);
  }
}

std::string RunningProbe::firstResult(int timeoutSeconds) {
  for (;;) {
    std::string line = readLineWithin(timeoutSeconds * 1000);
    if (line == "<timeout>") FAIL("probe printed no result within ", timeoutSeconds, " s");
    if (line.rfind("result: ", 0) == 0 || output_.get() < 0) return stripResult(line);
  }
}

spawn::WorkerExit RunningProbe::waitExit(int timeoutSeconds) {
  pollfd pfd{worker_.pidfd.get(), POLLIN, 0};
  if (poll(&pfd, 1, timeoutSeconds * 1000) == 0) {
    FAIL("sandbox did not exit within ", timeoutSeconds, " s");  // the destructor kills it
  }
  reaped_ = true;
  return spawn::waitForExit(worker_);
}

spawn::WorkerExit RunningProbe::kill() {
  spawn::killWorker(worker_);
  reaped_ = true;
  return spawn::waitForExit(worker_);
}

RunningProbe startProbe(const ProbeSpec& spec) {
  int fds[2];
  KJ_SYSCALL(pipe2(fds, O_CLOEXEC));
  kj::AutoCloseFd readEnd(fds[0]), writeEnd(fds[1]);
  spawn::SpawnRequest request;
  request.profile = spec.profile;
  request.vars = spec.vars;
  request.workerOverride = requiredEnv("CHITIN_PROBE");
  request.workerArgs = {"--probe-kind=" + spec.kind, "--probe=" + spec.probe};
  for (auto& a : spec.args) request.workerArgs.push_back("--probe-arg=" + a);
  request.stdoutFd = writeEnd.get();
  request.stderrFd = spec.stderrFd;
  request.hide = spec.hide;
  request.egressSocket = spec.egressSocket;
  auto worker = testSpawner().spawn(request);
  return RunningProbe(kj::mv(worker), kj::mv(readEnd));
}

ProbeRun runProbe(const ProbeSpec& spec, int timeoutSeconds) {
  auto running = startProbe(spec);
  ProbeRun run;
  run.result = running.firstResult(timeoutSeconds);
  run.exit = running.waitExit(timeoutSeconds);
  MESSAGE(spec.profile, "/", spec.kind, " ", spec.probe, ": ", run.result, " [",
          run.exit.describe(), "]");
  return run;
}

ProbeRun runDirect(const std::vector<std::string>& args) {
  int fds[2];
  KJ_SYSCALL(pipe2(fds, O_CLOEXEC));
  kj::AutoCloseFd readEnd(fds[0]), writeEnd(fds[1]);
  int pair[2];
  KJ_SYSCALL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair));
  kj::AutoCloseFd ours(pair[0]), theirs(pair[1]);
  std::string path = requiredEnv("CHITIN_PROBE");
  std::vector<std::string> argvStrings = {path};
  argvStrings.insert(argvStrings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argvStrings) argv.push_back(s.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, writeEnd.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, theirs.get(), 3);
  char* envp[] = {nullptr};
  pid_t pid;
  int rc = posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  KJ_REQUIRE(rc == 0, "posix_spawn of the probe failed", strerror(rc));
  writeEnd = nullptr;
  theirs = nullptr;
  std::string output;
  char chunk[4096];
  ssize_t n;
  while ((n = read(readEnd.get(), chunk, sizeof(chunk))) > 0) output.append(chunk, n);
  int status = 0;
  waitpid(pid, &status, 0);
  ProbeRun run;
  run.result = stripResult(output.substr(0, output.find('\n')));
  if (WIFSIGNALED(status)) {
    run.exit.signal = WTERMSIG(status);
  } else {
    run.exit.exitCode = WEXITSTATUS(status);
  }
  MESSAGE("direct probe: ", run.result, " [", run.exit.describe(), "]");
  return run;
}

ProbeRun runUnsandboxed(const std::string& probe, const std::vector<std::string>& args) {
  std::vector<std::string> all = {"--probe-kind=none", "--probe=" + probe};
  for (auto& a : args) all.push_back("--probe-arg=" + a);
  return runDirect(all);
}

double monotonicSeconds() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

uint16_t freePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t length = sizeof address;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
  close(fd);
  return ntohs(address.sin_port);
}

long rollupKb(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps_rollup");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(field + ":", 0) == 0) return std::stol(line.substr(field.size() + 1));
  }
  return 0;
}

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::map<std::string, std::string> workspaceVars(const TempDir& dir) {
  return {{"WORKSPACE", dir.path()}};
}

TempDir::TempDir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "-XXXXXX";
  KJ_REQUIRE(mkdtemp(pattern.data()) != nullptr, "mkdtemp failed", pattern, strerror(errno));
  path_ = pattern;
}

TempDir::~TempDir() {
  nftw(
      path_.c_str(), [](const char* p, const struct stat*, int, FTW*) { return remove(p); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

std::string TempDir::file(const std::string& relative, const std::string& content) const {
  std::string full = path_ + "/" + relative;
  std::ofstream out(full, std::ios::binary);
  out << content;
  KJ_REQUIRE(out.good(), "cannot write test file", full);
  return full;
}

UnixListener::UnixListener() : dir_("chitin-egress") {
  path_ = dir_.path() + "/w.sock";
  KJ_SYSCALL(chmod(dir_.path().c_str(), 0700));
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  KJ_ASSERT(fd_ >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  KJ_ASSERT(path_.size() < sizeof(addr.sun_path));
  memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
  KJ_SYSCALL(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
  KJ_SYSCALL(listen(fd_, 4));
  thread_ = std::thread([this] {
    for (;;) {
      int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) return;  // shutdown() in the destructor
      char buffer[16];
      if (read(conn, buffer, sizeof(buffer)) > 0 && write(conn, "pong", 4) == 4) answered_++;
      close(conn);
    }
  });
}

UnixListener::~UnixListener() {
  shutdown(fd_, SHUT_RDWR);
  thread_.join();
  close(fd_);
}

TcpListener::TcpListener() {
  fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(listen(fd, 8) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  port = ntohs(addr.sin_port);
}

TcpListener::~TcpListener() { close(fd); }

std::string statusField(pid_t pid, const std::string& field) {
  std::string status = readAll("/proc/" + std::to_string(pid) + "/status");
  size_t at = status.find(field + ":\t");
  REQUIRE_MESSAGE(at != std::string::npos, field);
  size_t start = at + field.size() + 2;
  return status.substr(start, status.find('\n', start) - start);
}

}  // namespace chitin::testing
