// SPDX-License-Identifier: Apache-2.0
// The supervisor's side of a zygote (common/zygote.h): one running zygote sandbox of a
// `fork_server` profile, asked to fork that profile's workers.
// Runs in: supervisor
//
// Spawner::spawn() owns one per profile and uses it for every spawn of that profile it can
// (spawner.h says when); a worker it forks is a SpawnedWorker like any other, except that the
// supervisor is not its parent: its end shows on its pidfd (readable once it, and so its whole
// pid namespace, has gone) and its wait status comes from the zygote (ExitReporter).

#pragma once

#include <kj/io.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "sandbox_profile.pb.h"
#include "spawner.h"

namespace chitin::spawn {

class ForkServer final : public ExitReporter, public std::enable_shared_from_this<ForkServer> {
 public:
  // Takes the zygote's sandbox (started by the spawner, its socket a SOCK_SEQPACKET) and sends
  // it what each worker does before it serves: the profile's fresh mounts, limits and filter.
  ForkServer(SpawnedWorker zygote, const config::SandboxProfile& profile, const std::string& bpf);
  ~ForkServer() noexcept(false) override;
  KJ_DISALLOW_COPY(ForkServer);

  // One worker of the profile, its stdout and stderr on these fds (-1: a pipe of its own,
  // SpawnedWorker::output, as the spawner's). Throws SandboxUnavailable when the zygote does not
  // answer (it is then taken for broken: `usable()` turns false).
  SpawnedWorker fork(int stdoutFd = -1, int stderrFd = -1);

  // Whether the zygote still runs and has answered every request so far.
  bool usable();

  std::optional<int> exitStatus(pid_t pid, int waitMs) override;

  pid_t zygotePid() const { return zygote_.pid; }

  // How long the zygote may take to answer a fork; past it, the zygote is broken.
  static constexpr int ANSWER_MS = 5000;

 private:
  SpawnedWorker zygote_;
  std::string profileName_;
  uint32_t wallClockSeconds_;
  bool broken_ = false;
  bool reaped_ = false;  // the zygote's sandbox has ended and been waited for
  uint64_t nextId_ = 1;
  std::map<pid_t, int> exited_;  // reported ends not yet asked for
  std::string said_;             // the zygote's last output, for error messages

  // Reads one message (waiting at most `waitMs`); EXITED reports go to exited_. Returns false on
  // timeout; throws SandboxUnavailable when the zygote has gone. A FORKED answer is returned
  // through `answer` and `pidfd`.
  struct Answer;
  bool readOne(int waitMs, Answer* answer);
  void drainOutput();
  [[noreturn]] void fail(const std::string& why);
};

// The message a zygote of `profile` is set up with (exposed for tests): each PROC, TMPFS and DEV
// mount renewed, the profile's limits, and `bpf`. Throws SandboxUnavailable for a profile the
// zygote cannot serve.
std::string zygoteSetup(const config::SandboxProfile& profile, const std::string& bpf);

}  // namespace chitin::spawn
