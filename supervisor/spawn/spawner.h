// SPDX-License-Identifier: Apache-2.0
// The spawner: the only code in chitin that builds sandboxes.
// Runs in: supervisor
//
// A worker is started as: clone(CLONE_VM|CLONE_VFORK) -> (in the child) fds placed, everything
// else closed, environment cleared -> execve(bwrap) with the arguments compiled from a profile
// in sandbox-profiles/ -> bwrap builds the namespaces and mounts, loads the profile's seccomp
// filter and execs the worker, which applies the rlimits inside its own user namespace and
// stacks its own stricter filter (common/sandbox-child.h). The worker's end of a socketpair is
// fd 3. If any step cannot be done the worker does not run and the caller gets the reason.

#pragma once

#include <kj/io.h>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "sandbox_profile.pb.h"

namespace chitin::spawn {

// Thrown when a sandbox cannot be built (no bwrap, no user namespaces, no seccomp, bad
// profile). The message is user-facing and says how to fix it.
struct SandboxUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SpawnerSettings {
  std::string bwrapPath = "/usr/bin/bwrap";
  std::string profileDir;   // directory holding <name>.textproto
  std::string workerDir;    // directory holding chitin-worker-<kind> executables
};

struct SpawnRequest {
  std::string profile;                         // e.g. "exec"
  std::map<std::string, std::string> vars;     // e.g. {"WORKSPACE", "/home/u/.chitin/workspace/main"}
  std::vector<std::string> workerArgs;         // extra argv for the worker (never secrets)
  std::optional<std::string> workerOverride;   // tests only: another executable (probes)
};

struct SpawnedWorker {
  pid_t pid = -1;            // the outer bwrap process
  kj::AutoCloseFd pidfd;     // pidfd_open(pid): readable when it exits
  kj::AutoCloseFd socket;    // the supervisor's end of the socketpair (worker has fd 3)
  uint32_t wallClockSeconds = 0;  // from the profile; 0 = none. The caller arms the timer.
  std::string profile;
};

// The OS operations the spawner needs, so unit tests can compile profiles without running
// anything. `SystemOs` is the real implementation.
class SpawnOs {
 public:
  virtual ~SpawnOs() noexcept(false) = default;
  virtual bool fileExists(const std::string& path) = 0;
  virtual bool isExecutable(const std::string& path) = 0;
  virtual std::string readFile(const std::string& path) = 0;  // throws on error
};

class SystemSpawnOs final : public SpawnOs {
 public:
  bool fileExists(const std::string& path) override;
  bool isExecutable(const std::string& path) override;
  std::string readFile(const std::string& path) override;
};

// Loads and validates a profile file. Errors name file:line:column.
config::SandboxProfile loadProfile(SpawnOs& os, const std::string& profileDir,
                                   const std::string& name);

class Spawner {
 public:
  Spawner(SpawnerSettings settings, SpawnOs& os);

  // Starts one sandboxed worker. Throws SandboxUnavailable (fail closed) if the sandbox cannot
  // be built; never starts a worker without its sandbox. Refuses to run as uid 0.
  SpawnedWorker spawn(const SpawnRequest& request);

  // What the profile compiles to, for a reviewer: the exact bwrap argv and the seccomp
  // allowlist (syscall names per group, the default action, errno exceptions).
  std::string explain(const std::string& profile,
                      const std::map<std::string, std::string>& vars = {});

  // nullopt when bwrap, user namespaces and seccomp all work; else a user-facing reason.
  // Runs a real, trivial sandbox once (cached after success).
  std::optional<std::string> checkAvailable();

  // The argv that `spawn` would pass to execve (argv[0] = bwrap path). Exposed for tests and
  // `explain`. `seccompFd` is the fd number bwrap will read the filter from.
  std::vector<std::string> compileArgv(const config::SandboxProfile& profile,
                                       const SpawnRequest& request, int seccompFd);

  const SpawnerSettings& settings() const { return settings_; }

 private:
  SpawnerSettings settings_;
  SpawnOs& os_;
  bool available_ = false;
};

}  // namespace chitin::spawn
