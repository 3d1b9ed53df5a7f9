// SPDX-License-Identifier: Apache-2.0
// Test support for the sandbox suite: run chitin-worker-probe through the real spawner with a
// shipped profile, or unsandboxed as a control, and collect its one result line and its end.
// Runs in: tests

#pragma once

#include <kj/io.h>
#include <sys/types.h>

#include <cstdint>

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "spawner.h"

namespace chitin::testing {

struct ProbeSpec {
  std::string profile;  // a shipped profile in sandbox-profiles/
  std::string kind;     // the lockdown kind the probe applies (usually == profile)
  std::string probe;
  std::vector<std::string> args;
  std::map<std::string, std::string> vars;
  std::vector<std::string> hide;  // SpawnRequest::hide
  int stderrFd = -1;              // SpawnRequest::stderrFd (-1: the worker's own pipe)
  std::string egressSocket;       // SpawnRequest::egressSocket (UnixListener::path())
};

struct ProbeRun {
  std::string result;  // the text after "result: ", or "" if the probe printed nothing
  spawn::WorkerExit exit;
};

// A probe still running (fork bomb, endless loop): read its first line, then finish it.
class RunningProbe {
 public:
  RunningProbe(spawn::SpawnedWorker worker, kj::AutoCloseFd output);
  RunningProbe(RunningProbe&&) = default;
  ~RunningProbe();  // a probe still running when a test fails is killed, never left behind
  std::string firstResult(int timeoutSeconds);     // fails the test on timeout
  spawn::WorkerExit waitExit(int timeoutSeconds);  // kills and fails the test on timeout
  spawn::WorkerExit kill();
  const spawn::SpawnedWorker& worker() const { return worker_; }

 private:
  std::string readLineWithin(int timeoutMs);
  spawn::SpawnedWorker worker_;
  kj::AutoCloseFd output_;
  std::string buffer_;
  bool reaped_ = false;
};

spawn::Spawner& testSpawner();
RunningProbe startProbe(const ProbeSpec& spec);
ProbeRun runProbe(const ProbeSpec& spec, int timeoutSeconds = 30);
// The control: the same probe binary, no sandbox, no lockdown (--probe-kind=none).
ProbeRun runUnsandboxed(const std::string& probe, const std::vector<std::string>& args = {});
// The probe binary with exactly `args` (after argv[0]), no sandbox, and one end of a
// socketpair on fd 3 as a spawned worker would have: for start-up checks.
ProbeRun runDirect(const std::vector<std::string>& args);

// A worker's --chitin-limits flag as the spawner passes it, for start-up checks that exec the
// probe directly.
inline constexpr char GOOD_LIMITS[] =
    "--chitin-limits=as=1073741824,nproc=4096,nofile=256,cpu=60,fsize=1048576";

// Seconds on the monotonic clock.
double monotonicSeconds();
// A TCP port on 127.0.0.1 that was free a moment ago (bound, read, closed).
uint16_t freePort();
// One field of /proc/PID/smaps_rollup, in kB; 0 when the process or the field is gone.
long rollupKb(pid_t pid, const std::string& field);
// A whole file; "" when it cannot be read.
std::string readAll(const std::string& path);
// The value of `field` ("NSpid", "CapEff", ...) in /proc/PID/status, as it stands there (tabs
// between the values); fails the test when the field is missing.
std::string statusField(pid_t pid, const std::string& field);

// A private directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& relative, const std::string& content) const;

 private:
  std::string path_;
};

// {"WORKSPACE": dir}: the variables of a profile that mounts the workspace.
std::map<std::string, std::string> workspaceVars(const TempDir& dir);

// A TCP listener on 127.0.0.1 (an ephemeral port), for connect probes.
struct TcpListener {
  int fd = -1;
  int port = 0;
  TcpListener();
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;
};

// A unix socket in a private directory standing in for the egress broker: each connection's
// first read is answered with "pong". For profiles with `egress: true`.
class UnixListener {
 public:
  UnixListener();
  ~UnixListener();
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;
  const std::string& path() const { return path_; }
  int answered() const { return answered_; }

 private:
  TempDir dir_;
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
  std::atomic<int> answered_{0};
};

}  // namespace chitin::testing
