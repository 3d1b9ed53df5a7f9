// SPDX-License-Identifier: Apache-2.0
// The spawner: the only code in chitin that builds sandboxes.
// Runs in: supervisor
//
// A worker is started as: argv compiled from a profile in sandbox-profiles/ (hidden directories
// checked on the host) -> cgroup created with its limits, where the host delegates cgroups
// (cgroup.h) -> clone(CLONE_VM|CLONE_VFORK) -> (in the child) SIGKILL on the supervisor's death
// armed, fds placed (stdout/stderr: a pipe of the worker's own, never the supervisor's stderr),
// everything else closed, signals reset,
// the child enters the worker's cgroup, environment cleared -> execve(bwrap) -> bwrap builds the
// namespaces and mounts (every tmpfs capped, /dev read-only), loads the profile's seccomp
// filter and execs the worker, which makes itself non-dumpable, checks its hidden directories,
// applies the rlimits inside its own user namespace and stacks its own stricter filter
// (common/sandbox-child.h). The worker's end of a socketpair is fd 3. If any step cannot be done
// the worker does not run and the caller gets the reason.

#pragma once

#include <errno.h>
#include <kj/io.h>
#include <signal.h>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

#include "cgroup.h"
#include "sandbox_profile.pb.h"

namespace chitin::spawn {

class ForkServer;

// Thrown when a sandbox cannot be built (no bwrap, no user namespaces, no seccomp, bad
// profile). The message is user-facing and says how to fix it.
struct SandboxUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct SpawnerSettings {
  std::string bwrapPath = "/usr/bin/bwrap";
  std::string profileDir;  // directory holding <name>.textproto
  std::string workerDir;   // directory holding chitin-worker-<kind> executables
  // Where the spawner says what it worked around (a zygote that could not start: its
  // profile's workers are then each spawned by bwrap). Default: stderr.
  std::function<void(const std::string&)> warn;
  // Each sandbox's outer bwrap is the init of a pid namespace of its own, so whatever ends it
  // (the supervisor's death through its parent-death signal, a kill by anyone) ends every process
  // of the sandbox with it, during bwrap's set-up too: the kernel kills a pid namespace whole when
  // its init dies, and its pidfd turns readable only once all of it has gone. Before, bwrap's
  // child, which ties itself to its parent's death only just before it execs the worker, was left
  // running under pid 1 by such an end during the set-up (bubblewrap #633). Tests only: false
  // starts bwrap in the supervisor's own pid namespace, the control of the tests that show why.
  bool pidNamespacePerSandbox = true;
};

struct SpawnRequest {
  std::string profile;                        // e.g. "exec"
  std::map<std::string, std::string> vars;    // {"WORKSPACE", "/home/u/.chitin/workspace/main"}
  std::vector<std::string> workerArgs;        // extra argv for the worker (never secrets)
  std::optional<std::string> workerOverride;  // tests only: another executable (probes)
  // Where the worker's stdout and stderr go (the spawner dups them; the caller keeps its fds).
  // -1: a pipe of this worker's own, whose read end is SpawnedWorker::output (the caller drains
  // it: WorkerHost logs it, capped). Never the supervisor's own stderr: whatever a worker's fds
  // are, the processes it runs may reopen them through /proc/1/fd.
  // stdin is always /dev/null: a worker must not read the owner's terminal.
  int stdoutFd = -1;
  int stderrFd = -1;
  // Directories to hide from the worker, as paths inside the sandbox beneath a BIND or RO_BIND
  // mount of the profile (e.g. "/workspace/downloads"). Each is covered by an empty read-only
  // tmpfs. Each must be a real directory on the host (no symlink anywhere below the mount's
  // source); anything else refuses the spawn, and nothing is ever created on the host. The
  // worker checks at start-up that each is the empty read-only tmpfs (sandbox-child.h).
  std::vector<std::string> hide;
  // Host path of this worker's own egress broker socket (egress::Endpoint::socketPath()),
  // bound read-only at EGRESS_SOCKET_INSIDE. Required exactly when the profile says
  // `egress: true`; must be an absolute clean path naming a unix socket (not a symlink).
  std::string egressSocket;
};

// How the end of a worker the supervisor did not start itself is learnt: one forked by a zygote
// (fork-server.h) is the zygote's child, so its wait status comes from the zygote.
class ExitReporter {
 public:
  virtual ~ExitReporter() noexcept(false) = default;
  // The raw wait status of the child `pid` (its pid in the zygote's namespace), once its pidfd
  // has reported its end; waits up to `waitMs` for the report. nullopt: there will be none (the
  // zygote has gone, and the worker with it).
  virtual std::optional<int> exitStatus(pid_t pid, int waitMs) = 0;
};

struct SpawnedWorker {
  pid_t pid = -1;                 // the outer bwrap process (a forked worker: the worker)
  kj::AutoCloseFd pidfd;          // pidfd_open(pid): readable when it exits
  kj::AutoCloseFd socket;         // the supervisor's end of the socketpair (worker has fd 3)
  kj::AutoCloseFd output;         // non-blocking read end of the worker's stdout+stderr pipe
                                  // (when the request gave no fds); the caller must drain it
  uint32_t wallClockSeconds = 0;  // from the profile; 0 = none. The caller arms the timer.
  std::string profile;
  // The worker's cgroup where cgroup limits are in force, else null. Keep it until the worker
  // has been reaped: destroying it removes the cgroup.
  std::unique_ptr<CgroupLease> cgroup;
  // Set for a worker forked by a zygote: not our child; its status comes from here.
  std::shared_ptr<ExitReporter> reporter;
  pid_t reporterPid = -1;  // its pid in the zygote's namespace
};

// How a worker ended. bwrap reports a worker killed by signal N as exit status 128+N;
// chitin workers never exit above 128 themselves, so both forms decode to `signal`.
struct WorkerExit {
  int exitCode = -1;             // when it exited normally, else -1
  int signal = 0;                // when a signal ended it, else 0
  std::string describe() const;  // "exited with status 0", "killed by signal 31 (SIGSYS)"
};

// Reaps the worker through its pidfd (waitid P_PIDFD). `waitForExit` blocks; `pollExit` returns
// nullopt while it still runs. Call once the pidfd is readable to avoid blocking the loop.
WorkerExit waitForExit(const SpawnedWorker& worker);
std::optional<WorkerExit> pollExit(const SpawnedWorker& worker);
// Waits for our child behind `pidfd` to exit and reaps it, into `info`: 0, or the errno of
// waitid. Whatever the pidfd's file status flags: an event loop that watches a pidfd makes it
// non-blocking (libuv's uv_poll_init does), and waitid(P_PIDFD) on a non-blocking pidfd returns
// EAGAIN at once instead of waiting. Every blocking wait on a pidfd goes through here.
int reapPidfd(int pidfd, siginfo_t& info);
// Kills a sandbox: its outer bwrap (`pid`, our child, not yet reaped) and every process bwrap has
// started. Once bwrap has finished its set-up, --die-with-parent and the pid namespace take every
// process with the outer bwrap; during the set-up they do not (bwrap's child arms its parent-death
// signal only just before it execs, and until then may wait for ever on a word from its dead
// parent: bubblewrap #633). So each child of the outer bwrap is killed through a pidfd of its own
// (the whole pid namespace when it is the namespace's init), then the outer bwrap. bwrap makes its
// one child at its start, before its set-up, and never another: when it has one, the list of its
// children is final; when it has none yet, it is stopped first (it then starts nothing, and cannot
// reap a child, so a child's pid stays that child's), and listed again.
// Blocks for as long as the outer bwrap takes to stop, if it must be (it is never in a state that
// ignores SIGSTOP for long), and until each killed child has exited (a pid namespace's init exits
// only once the namespace is empty, so nothing the sandbox left running outlives this call), at
// most `waitMs` in all. Returns 0; ETIMEDOUT when a killed child had still not exited by then (the
// caller must not take the sandbox for gone: what it left may still run); or the errno of the
// signal when the outer bwrap could not be killed (ESRCH, gone, is 0). The outer bwrap is then the
// caller's to reap.
constexpr int KILL_WAIT_MS = 2000;
int killSandbox(int pidfd, pid_t pid, int waitMs = KILL_WAIT_MS);
// killSandbox() without its wait, for a caller that must not block while the sandbox's processes
// exit (the teardown of a pid namespace takes a millisecond or more: WorkerHost::endAsync). Kills
// as killSandbox() does, and returns a pidfd of each child killed: readable once that process, and
// with a namespace's init its whole namespace, has gone. The caller waits for them and for the
// outer bwrap's own pidfd, then reaps the outer bwrap.
struct SandboxStop {
  std::vector<kj::AutoCloseFd> exiting;  // empty too when bwrap had gone already
  int error = 0;                         // the outer bwrap's SIGKILL failed (not ESRCH): errno
};
SandboxStop stopSandbox(int pidfd, pid_t pid);
// killSandbox() for a worker forked by a zygote: it is pid 1 of its own pid namespace, so its
// SIGKILL takes the namespace, and its pidfd turns readable only once all of it has gone.
// Returns 0 then, ETIMEDOUT when that took longer than `waitMs`, or the signal's errno.
int killForked(int pidfd, int waitMs = KILL_WAIT_MS);
// killForked()'s first half, for a caller that waits on the event loop (WorkerHost::endAsync):
// SIGKILLs the worker; the caller then waits for its pidfd to turn readable. Returns 0 (ESRCH,
// gone already, included) or the signal's errno.
int stopForked(int pidfd);
// The wait status as WorkerExit (bwrap's 128+N form included).
WorkerExit decodeWaitStatus(int status);
// killSandbox() for a spawned worker (the wall-clock limit, a test's clean-up); throws when it
// fails or the sandbox is not confirmed gone.
void killWorker(const SpawnedWorker& worker);

// The OS operations the spawner needs, so unit tests can compile profiles without running
// anything. `SystemOs` is the real implementation.
class SpawnOs {
 public:
  virtual ~SpawnOs() noexcept(false) = default;
  virtual bool fileExists(const std::string& path) = 0;
  virtual bool isExecutable(const std::string& path) = 0;
  virtual std::string readFile(const std::string& path) = 0;  // throws on error
  // Names of the directories directly inside `path` (worker lookup one level down, as in the
  // meson build tree). Fakes that do not model directories may keep the default (none).
  virtual std::vector<std::string> subdirectories(const std::string& path) { return {}; }
  // Whether `relative` (clean, relative) names a directory beneath `root` reached without any
  // symlink, mount crossing or `..`: 0, else the errno (ENOENT, ENOTDIR, ELOOP, EXDEV, ...).
  // Fakes that do not model directories may keep the default (nothing exists).
  virtual int checkPlainDirectory(const std::string& root, const std::string& relative) {
    return ENOENT;
  }
  // The device and inode of the plain directory checkPlainDirectory() accepts, as "dev:ino"; ""
  // when it is not one. Fakes that do not model directories may keep the default ("").
  virtual std::string directoryIdentity(const std::string& root, const std::string& relative) {
    return "";
  }
  // Whether `path` itself (not a symlink to one) is a unix socket. Fakes that do not model
  // sockets may keep the default (none is): an egress spawn is then refused.
  virtual bool isSocket(const std::string& path) { return false; }
};

class SystemSpawnOs final : public SpawnOs {
 public:
  bool fileExists(const std::string& path) override;
  bool isExecutable(const std::string& path) override;
  std::string readFile(const std::string& path) override;
  std::vector<std::string> subdirectories(const std::string& path) override;
  int checkPlainDirectory(const std::string& root, const std::string& relative) override;
  std::string directoryIdentity(const std::string& root, const std::string& relative) override;
  bool isSocket(const std::string& path) override;
};

// Loads and validates a profile file. Errors name file:line:column.
config::SandboxProfile loadProfile(SpawnOs& os, const std::string& profileDir,
                                   const std::string& name);

class Spawner {
 public:
  // The cgroup tree is the host's (/sys/fs/cgroup) unless a test passes its own.
  Spawner(SpawnerSettings settings, SpawnOs& os);
  Spawner(SpawnerSettings settings, SpawnOs& os, CgroupFs& cgroupFs);

  // Starts one sandboxed worker. Throws SandboxUnavailable (fail closed) if the sandbox cannot
  // be built; never starts a worker without its sandbox. Refuses to run as uid 0.
  // A `fork_server` profile's worker is forked by the profile's zygote (common/zygote.h; started
  // at the first such spawn, and again after it has ended; one per variables, worker and worker
  // arguments, which its workers inherit) when the request names no hidden directory, and
  // cgroup limits are not in force; otherwise, or when the zygote cannot be started or does not
  // answer (said through `warn`), bwrap spawns it.
  SpawnedWorker spawn(const SpawnRequest& request);
  ~Spawner() noexcept(false);

  // The zygote that would serve `request` now, if one runs (tests).
  std::shared_ptr<ForkServer> forkServerOf(const SpawnRequest& request);

  // What the profile compiles to, for a reviewer: the exact bwrap argv and the seccomp
  // allowlist (syscall names per group, the default action, errno exceptions).
  // `hide` as in SpawnRequest (checked on the host only when the variables are given).
  std::string explain(const std::string& profile,
                      const std::map<std::string, std::string>& vars = {},
                      const std::vector<std::string>& hide = {});

  // Which host directories `request.hide` covers right now (device and inode of each, checked
  // as spawn() checks them), or nullopt when a spawn of `request` would be refused now. A warm
  // spare's covers were mounted on the directories named when it was built; it is used only
  // while this is unchanged (supervisor/core/spare-sandboxes.h).
  std::optional<std::string> hiddenIdentity(const SpawnRequest& request);

  // Whether a worker of `profile` can write to the host: a read-write bind (BIND) of a host
  // path. One that cannot may be torn down after its result has gone on (nothing it could still
  // do changes what the supervisor reads of the host). Throws SandboxUnavailable as spawn() does
  // for a profile that does not load.
  bool writesHost(const std::string& profile);

  // nullopt when bwrap, user namespaces and seccomp all work; else a user-facing reason.
  // Runs a real, trivial sandbox once (cached after success).
  std::optional<std::string> checkAvailable();

  // Whether cgroup limits are in force (detected, and the tree prepared, once). Throws
  // SandboxUnavailable when the host delegates cgroups but preparing them failed.
  const CgroupStatus& cgroupStatus();
  // Whether they would be, for a supervisor started like this process; changes nothing.
  CgroupStatus detectCgroups() { return cgroups_.detect(); }

  // The argv that `spawn` would pass to execve (argv[0] = bwrap path). Exposed for tests and
  // `explain`. `seccompFd` is the fd number bwrap will read the filter from.
  std::vector<std::string> compileArgv(const config::SandboxProfile& profile,
                                       const SpawnRequest& request, int seccompFd);

  const SpawnerSettings& settings() const { return settings_; }

  // Where the worker binary is mounted inside every sandbox.
  static constexpr const char* WORKER_PATH_INSIDE = "/run/chitin/worker";
  // Where an egress profile's worker finds its broker socket (SpawnRequest::egressSocket).
  static constexpr const char* EGRESS_SOCKET_INSIDE = "/run/chitin/egress.sock";
  // The fd bwrap reads the seccomp program from (fd 3 is the worker's socket).
  static constexpr int SECCOMP_FD = 4;

 private:
  struct Compiled;
  const Compiled& compiled(const std::string& profile);
  std::vector<std::string> compileArgvImpl(const config::SandboxProfile& profile,
                                           const SpawnRequest& request, int seccompFd,
                                           bool forExplain, bool zygote = false);
  std::string findWorker(const config::SandboxProfile& profile, const SpawnRequest& request,
                         bool forExplain);
  SpawnedWorker start(const config::SandboxProfile& profile, const std::string& bpf,
                      const SpawnRequest& request, const std::vector<std::string>& args,
                      std::unique_ptr<CgroupLease> cgroup, int socketType);
  // The zygote for this request's profile and worker, started if none runs; null when it
  // cannot be (said through warn()).
  std::shared_ptr<ForkServer> forkServerFor(const Compiled& entry, const SpawnRequest& request);
  void warn(const std::string& message);
  // The user namespace the sandboxes' pid namespaces belong to, made at the first spawn. Throws
  // SandboxUnavailable.
  int sandboxUserNamespace();

  // The host directories behind request.hide, checked; "--perms 0555 --size N --tmpfs P
  // --remount-ro P" for each.
  // "--ro-bind <socket> /run/chitin/egress.sock" for an egress profile, checked; none otherwise.
  std::vector<std::string> compileEgress(const config::SandboxProfile& profile,
                                         const SpawnRequest& request, bool forExplain);

  // `identities`, when given, gets directoryIdentity() of each hidden directory.
  std::vector<std::string> compileHides(const config::SandboxProfile& profile,
                                        const SpawnRequest& request, bool forExplain,
                                        std::vector<std::string>* identities = nullptr);

  SpawnerSettings settings_;
  SpawnOs& os_;
  Cgroups cgroups_;
  bool available_ = false;
  kj::AutoCloseFd userNamespace_;
  std::map<std::string, std::shared_ptr<const Compiled>> cache_;
  std::map<std::string, std::shared_ptr<ForkServer>> forkServers_;  // by profile and worker
  std::map<std::string, std::chrono::steady_clock::time_point> forkServerFailures_;
  // Where findWorker() found each worker inside a folder of the worker dir (the build tree's
  // layout), so a spawn checks that one file instead of listing the folders again.
  std::map<std::string, std::string> nestedWorkers_;
  static constexpr std::chrono::seconds FORK_SERVER_RETRY{60};
};

// The argv flag carrying a profile's rlimits to the worker (common/sandbox-child.h).
std::string limitsFlag(const config::Limits& limits);

// The filter a zygote of `profile` runs under: the profile's, plus seccomp::zygoteRules().
std::string compileZygoteSeccomp(const config::SandboxProfile& profile);
// How many workers one zygote may have at once (its RLIMIT_NPROC, less itself).
constexpr uint32_t ZYGOTE_MAX_WORKERS = 4096;

// The seccomp program bwrap loads for a profile: its groups, the bootstrap set, its errno
// exceptions; default kill.
std::string compileSeccomp(const config::SandboxProfile& profile);

}  // namespace chitin::spawn
