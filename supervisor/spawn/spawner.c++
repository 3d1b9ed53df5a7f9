// SPDX-License-Identifier: Apache-2.0
// Starting sandboxed workers: the clone/exec recipe, the sandboxes' user namespace, the
// availability check, waiting for a worker's end (sandbox-kill.c++ ends them).
// Runs in: supervisor

#include "spawner.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <linux/openat2.h>
#include <poll.h>
#include <stdio.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

#include "fork-server.h"
#include "proc-stat.h"
#include "sandbox-child.h"

namespace chitin::spawn {

namespace {

const char ROOT_REFUSAL[] =
    "chitin never runs workers as uid 0; start as a normal user or use --user";

// The recipe's inputs, prepared by the parent: the vfork children may not allocate.
struct ChildPlan {
  int sources[5];          // become fds 0..4: /dev/null, stdout, stderr, worker socket, seccomp
  int cgroupProcs;         // the worker's cgroup.procs, or -1 when cgroup limits are not in force
  int userNamespace;       // the sandboxes' user namespace; -1: bwrap in our own pid namespace
  pid_t supervisor;        // getpid() before clone: the parent the children must still have
  pid_t supervisorInProc;  // the same, as /proc numbers it (parentSeenByProc())
  char* monitorStack;      // the top of the stack the outer bwrap's own clone runs on
  const char* path;
  char* const* argv;
  char* const* envp;
  pid_t monitor;   // the outer bwrap, when it is cloned into a pid namespace of its own
  int failedStep;  // written by a child that cannot go on
  int savedErrno;
};

// For a clone child about to exec: default signal dispositions and an empty mask (the parent
// blocked everything around clone; ignored signals would otherwise stay ignored across exec).
// Async-signal-safe.
void resetSignals() {
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++) sigaction(sig, &dfl, nullptr);  // EINVAL for KILL/STOP
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// The parent of the calling process as /proc/self/stat gives it: in /proc's pid namespace, where
// getppid() says 0 to the init of a new one. -1 when it cannot be read. Async-signal-safe.
pid_t parentSeenByProc() { return parentInProcStat("/proc/self/stat"); }

// The outer bwrap, cloned by execBwrapInChild() with CLONE_PARENT into a new pid namespace whose
// init it is: our child, on the child's stack. Like that child, it ties itself to our death
// before anything else (the signal is tied to our cloning thread, its parent), and goes if we
// are gone already.
int execMonitorInChild(void* arg) {
  auto* plan = static_cast<ChildPlan*>(arg);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
    plan->failedStep = 6;
    plan->savedErrno = errno;
    _exit(127);
  }
  pid_t parent = parentSeenByProc();
  if (parent < 0) {
    plan->failedStep = 9;
    plan->savedErrno = errno;
    _exit(127);
  }
  if (parent != plan->supervisorInProc) _exit(127);
  execve(plan->path, plan->argv, plan->envp);
  plan->failedStep = 4;
  plan->savedErrno = errno;
  _exit(127);
}

// Runs in the clone(CLONE_VM|CLONE_VFORK) child, on its own stack, until execve. Only
// async-signal-safe calls; the parent is suspended and reads `failedStep` when we are gone.
int execBwrapInChild(void* arg) {
  auto* plan = static_cast<ChildPlan*>(arg);
  // Step 0: die with the supervisor, from this instruction on. bwrap's own --die-with-parent is
  // armed only after its set-up (after it has cloned the sandbox), and ties to whoever is its
  // parent by then: pid 1 if the supervisor died in between, so the outer bwrap and its worker
  // would outlive it. The signal survives execve (only a set-uid bwrap loses it there, and
  // re-arms it late, as above) and is tied to the cloning thread, hence spawns happen on the
  // main thread only (start()). If the supervisor died before the prctl, we have been
  // reparented already and nobody would ever send it: getppid() tells, and we go instead.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
    plan->failedStep = 6;
    plan->savedErrno = errno;
    _exit(127);
  }
  if (getppid() != plan->supervisor) _exit(127);
  // Step 0b: into the sandboxes' user namespace, where we may make a pid namespace. Full
  // capabilities there (and nowhere else) until the outer bwrap's exec drops them: its uid is
  // ours, not the namespace's root.
  if (plan->userNamespace >= 0 && setns(plan->userNamespace, CLONE_NEWUSER) < 0) {
    plan->failedStep = 7;
    plan->savedErrno = errno;
    _exit(127);
  }
  // Step 1: the five fds in place. Every source is >= 10 (see start()), so dup2 never sees its
  // own target and always clears close-on-exec.
  for (int target = 0; target < 5; target++) {
    if (dup2(plan->sources[target], target) < 0) {
      plan->failedStep = 1;
      plan->savedErrno = errno;
      _exit(127);
    }
  }
  // Step 1b: into the worker's cgroup ("0" moves the writer), so that bwrap and everything it
  // starts are counted there from the first page on.
  if (plan->cgroupProcs >= 0 && write(plan->cgroupProcs, "0", 1) != 1) {
    plan->failedStep = 5;
    plan->savedErrno = errno;
    _exit(127);
  }
  // Step 2: nothing else crosses into the sandbox.
  if (close_range(5, ~0U, 0) < 0) {
    plan->failedStep = 2;
    plan->savedErrno = errno;
    _exit(127);
  }
  // Step 3: default signal dispositions and an empty mask.
  resetSignals();
  if (plan->userNamespace >= 0) {
    // Step 8: the outer bwrap, as the init of a new pid namespace (execMonitorInChild()), made
    // our parent's child (CLONE_PARENT), with these fds, this cgroup and these signals. We go
    // once it has exec'd, and our parent resumes.
    pid_t monitor = clone(execMonitorInChild, plan->monitorStack,
                          CLONE_VM | CLONE_VFORK | CLONE_PARENT | CLONE_NEWPID, plan);
    if (monitor < 0) {
      plan->failedStep = 8;
      plan->savedErrno = errno;
      _exit(127);
    }
    plan->monitor = monitor;
    _exit(0);
  }
  // Step 4: bwrap, with an empty environment.
  execve(plan->path, plan->argv, plan->envp);
  plan->failedStep = 4;
  plan->savedErrno = errno;
  _exit(127);
}

kj::AutoCloseFd dupHigh(int fd) {
  int high;
  KJ_SYSCALL(high = fcntl(fd, F_DUPFD_CLOEXEC, 10));
  return kj::AutoCloseFd(high);
}

// Stacks for our clone(CLONE_VM) children, 64 KiB each in one mapping, unmapped with this.
class ChildStacks {
 public:
  explicit ChildStacks(size_t count) : bytes_(count * SIZE) {
    base_ = static_cast<char*>(mmap(nullptr, bytes_, PROT_READ | PROT_WRITE,
                                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0));
    if (base_ == MAP_FAILED) KJ_FAIL_SYSCALL("mmap(child stack)", errno);
  }
  ~ChildStacks() { munmap(base_, bytes_); }
  KJ_DISALLOW_COPY(ChildStacks);
  // The top of stack `i` (stacks grow down): 0 is the lowest.
  char* top(size_t i) { return base_ + (i + 1) * SIZE; }

 private:
  static constexpr size_t SIZE = 64 * 1024;
  size_t bytes_;
  char* base_;
};

struct VforkedChild {
  pid_t pid;  // -1: clone failed, with `error`
  int pidfd;  // ours to close
  int error;
};

// fn(arg) in a clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD | `flags`) child on
// `stackTop`: no copy of our address space (fork() of a big supervisor costs tens of ms), and we
// resume only once the child has exec'd or gone. CLONE_PIDFD gives the pidfd atomically, so the
// pid can never be recycled under us. Every signal is blocked around the clone, so that no
// handler of ours runs in the child, on its stack and our memory.
VforkedChild vforkOnStack(int (*fn)(void*), char* stackTop, int flags, void* arg) {
  sigset_t all, saved;
  sigfillset(&all);
  int maskRc = pthread_sigmask(SIG_SETMASK, &all, &saved);
  KJ_REQUIRE(maskRc == 0, "pthread_sigmask", strerror(maskRc));
  VforkedChild child{-1, -1, 0};
  child.pid = clone(fn, stackTop, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD | flags, arg,
                    &child.pidfd);
  child.error = errno;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  return child;
}

// A pidfd of the outer bwrap cloned into a pid namespace of its own: our child, not reaped yet,
// so the pid is still its own. Without one it is killed and reaped, and the spawn fails.
kj::AutoCloseFd adoptMonitor(pid_t monitor) {
  int fd = static_cast<int>(syscall(SYS_pidfd_open, monitor, 0));
  if (fd >= 0) return kj::AutoCloseFd(fd);
  int error = errno;
  kill(monitor, SIGKILL);
  siginfo_t info;
  while (waitid(P_PID, static_cast<id_t>(monitor), &info, WEXITED) < 0 && errno == EINTR) {
  }
  KJ_FAIL_SYSCALL("pidfd_open(the outer bwrap)", error, monitor);
}

// What holds the sandboxes' user namespace while its maps are written: any program that echoes
// what it reads and waits for more. cat is in every Debian (coreutils is Essential).
const char USERNS_HOLDER[] = "/usr/bin/cat";

// Why the supervisor may not make or use a user namespace of its own, where bwrap may.
const char USERNS_HINT[] =
    " (unprivileged user namespaces must be enabled for the supervisor as for bwrap; Ubuntu >= "
    "23.10: kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile that allows "
    "userns for chitin-supervisor as for bwrap)";

struct HolderPlan {
  int sources[3];  // become fds 0..2: the pipe we write to, the pipe we read, /dev/null
  int failedStep;
  int savedErrno;
};

// The holder, in a new user namespace: cloned like execBwrapInChild(), on its own stack.
int execHolderInChild(void* arg) {
  auto* plan = static_cast<HolderPlan*>(arg);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
    plan->failedStep = 1;
    plan->savedErrno = errno;
    _exit(127);
  }
  for (int target = 0; target < 3; target++) {
    if (dup2(plan->sources[target], target) < 0) {
      plan->failedStep = 2;
      plan->savedErrno = errno;
      _exit(127);
    }
  }
  if (close_range(3, ~0U, 0) < 0) {
    plan->failedStep = 3;
    plan->savedErrno = errno;
    _exit(127);
  }
  resetSignals();
  char name[] = "cat";
  char* argv[] = {name, nullptr};
  char* envp[] = {nullptr};
  execve(USERNS_HOLDER, argv, envp);
  plan->failedStep = 4;
  plan->savedErrno = errno;
  _exit(127);
}

// Writes `text` to /proc/PID/FILE; the errno, or 0.
int writeProcFile(pid_t pid, const char* file, const std::string& text) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  ssize_t n = write(fd, text.data(), text.size());
  int error = n == static_cast<ssize_t>(text.size()) ? 0 : n < 0 ? errno : EIO;
  close(fd);
  return error;
}

// The user namespace every sandbox's pid namespace belongs to (SpawnerSettings::
// pidNamespacePerSandbox): a pid namespace needs CAP_SYS_ADMIN in its user namespace, and we have
// it only in one we own. Ours alone: our uid and gid mapped to themselves, setgroups denied, all
// an unprivileged owner may write, so it gives nothing outside itself. Its maps cannot be written
// while a clone child of ours is its only member: that child shares our memory, which is not
// dumpable, so its /proc files stay root's until it execs. So the child execs USERNS_HOLDER on two
// pipes, the byte it echoes says it runs, we write its maps and open its /proc/PID/ns/user (which
// keeps the namespace), and it is killed. Throws SandboxUnavailable.
kj::AutoCloseFd makeSandboxUserNamespace() {
  auto fail = [](const std::string& what, int error) {
    throw SandboxUnavailable(
        "cannot make the user namespace the sandboxes' pid namespaces belong to: " + what + ": " +
        strerror(error) + USERNS_HINT);
  };
  int toHolder[2], fromHolder[2];
  KJ_SYSCALL(pipe2(toHolder, O_CLOEXEC));
  kj::AutoCloseFd toRead(toHolder[0]), toWrite(toHolder[1]);
  KJ_SYSCALL(pipe2(fromHolder, O_CLOEXEC));
  kj::AutoCloseFd fromRead(fromHolder[0]), fromWrite(fromHolder[1]);
  int devNull;
  KJ_SYSCALL(devNull = open("/dev/null", O_WRONLY | O_CLOEXEC));
  kj::AutoCloseFd nullFd(devNull);
  kj::AutoCloseFd sources[3] = {dupHigh(toRead), dupHigh(fromWrite), dupHigh(nullFd)};
  HolderPlan plan{};
  for (int i = 0; i < 3; i++) plan.sources[i] = sources[i].get();

  ChildStacks stack(1);
  VforkedChild child = vforkOnStack(execHolderInChild, stack.top(0), CLONE_NEWUSER, &plan);
  if (child.pid < 0) fail("clone(CLONE_NEWUSER)", child.error);
  pid_t pid = child.pid;
  kj::AutoCloseFd holder(child.pidfd);
  // From here on the holder is killed and reaped on every way out.
  KJ_DEFER({
    syscall(SYS_pidfd_send_signal, holder.get(), SIGKILL, nullptr, 0);
    siginfo_t info;
    reapPidfd(holder.get(), info);
  });
  if (plan.failedStep != 0) {
    fail(plan.failedStep == 4
             ? std::string("cannot run ") + USERNS_HOLDER
             : std::string("setting up its holder (step ") + std::to_string(plan.failedStep) + ")",
         plan.savedErrno);
  }
  for (auto& source : sources) source = nullptr;
  toRead = nullptr;
  fromWrite = nullptr;
  char byte = 'x';
  if (write(toWrite, &byte, 1) != 1) fail(std::string("writing to ") + USERNS_HOLDER, errno);
  pollfd p{fromRead.get(), POLLIN, 0};
  int ready;
  do {
    ready = poll(&p, 1, 10000);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0 || read(fromRead, &byte, 1) != 1 || byte != 'x') {
    fail(std::string(USERNS_HOLDER) + " did not answer within 10 s", ready < 0 ? errno : ETIMEDOUT);
  }
  if (int error = writeProcFile(pid, "setgroups", "deny")) fail("setgroups", error);
  std::string uid = std::to_string(geteuid()), gid = std::to_string(getegid());
  if (int error = writeProcFile(pid, "uid_map", uid + " " + uid + " 1\n")) fail("uid_map", error);
  if (int error = writeProcFile(pid, "gid_map", gid + " " + gid + " 1\n")) fail("gid_map", error);
  std::string nsPath = "/proc/" + std::to_string(pid) + "/ns/user";
  int ns = open(nsPath.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) fail(nsPath, errno);
  return kj::AutoCloseFd(ns);
}

// A forked worker's end: its pidfd turns readable (not our child: no waitid), then the zygote's
// report. nullopt while it runs (or, blocking, never).
std::optional<WorkerExit> waitForked(const SpawnedWorker& worker, bool block) {
  struct pollfd p = {worker.pidfd.get(), POLLIN, 0};
  int ready;
  do {
    ready = poll(&p, 1, block ? -1 : 0);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) return std::nullopt;
  if (auto status = worker.reporter->exitStatus(worker.reporterPid, KILL_WAIT_MS)) {
    return decodeWaitStatus(*status);
  }
  WorkerExit gone;  // the zygote went, and took it along: as if killed
  gone.signal = SIGKILL;
  return gone;
}

std::optional<WorkerExit> waitPidfd(int pidfd, bool block) {
  siginfo_t info;
  memset(&info, 0, sizeof(info));
  if (block) {
    if (int error = reapPidfd(pidfd, info); error != 0) KJ_FAIL_SYSCALL("waitid(P_PIDFD)", error);
  } else {
    KJ_SYSCALL(waitid(static_cast<idtype_t>(P_PIDFD), pidfd, &info, WEXITED | WNOHANG));
  }
  if (info.si_pid == 0) return std::nullopt;
  if (info.si_code == CLD_EXITED) return decodeWaitStatus(W_EXITCODE(info.si_status, 0));
  return decodeWaitStatus(W_EXITCODE(0, info.si_status));
}

CgroupFs& systemCgroupFs() {
  static SystemCgroupFs fs;
  return fs;
}

std::string readSysctl(const std::string& path) {
  std::ifstream in(path);
  std::string value;
  if (in) std::getline(in, value);
  return value;
}

}  // namespace

struct Spawner::Compiled {
  config::SandboxProfile profile;
  std::string bpf;
  std::string zygoteBpf;  // fork_server profiles only
};

std::string WorkerExit::describe() const {
  if (signal != 0) {
    const char* abbrev = sigabbrev_np(signal);
    return "killed by signal " + std::to_string(signal) + " (SIG" +
           (abbrev != nullptr ? abbrev : "?") + ")";
  }
  return "exited with status " + std::to_string(exitCode);
}

WorkerExit decodeWaitStatus(int status) {
  WorkerExit exit;
  if (WIFEXITED(status)) {
    int code = WEXITSTATUS(status);
    // bwrap reports a worker's death by signal N as exit status 128 + N.
    if (code > 128 && code < 128 + NSIG) {
      exit.signal = code - 128;
    } else {
      exit.exitCode = code;
    }
  } else {
    exit.signal = WTERMSIG(status);
  }
  return exit;
}

WorkerExit waitForExit(const SpawnedWorker& worker) {
  if (worker.reporter) return *waitForked(worker, true);
  return *waitPidfd(worker.pidfd.get(), true);
}

std::optional<WorkerExit> pollExit(const SpawnedWorker& worker) {
  if (worker.reporter) return waitForked(worker, false);
  return waitPidfd(worker.pidfd.get(), false);
}

namespace {

// What SystemSpawnOs::checkPlainDirectory() checks, with the directory's stat.
int statPlainDirectory(const std::string& root, const std::string& relative, struct stat& st) {
  int rootFd = open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootFd < 0) return errno;
  KJ_DEFER(close(rootFd));
  // No symlink and no mount crossing anywhere below the root, and never above it: what is
  // checked here is the directory bwrap will cover (the worker checks the cover itself too).
  // (No O_DIRECTORY: a final symlink is then opened itself, O_PATH | O_NOFOLLOW, and reported
  // as ELOOP below rather than as ENOTDIR.)
  open_how how{};
  how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  long fd = syscall(SYS_openat2, rootFd, relative.c_str(), &how, sizeof(how));
  if (fd < 0) return errno;
  int rc = fstat(static_cast<int>(fd), &st);
  int error = errno;
  close(static_cast<int>(fd));
  if (rc < 0) return error;
  if (S_ISLNK(st.st_mode)) return ELOOP;
  return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
}

}  // namespace

int SystemSpawnOs::checkPlainDirectory(const std::string& root, const std::string& relative) {
  struct stat st;
  return statPlainDirectory(root, relative, st);
}

std::string SystemSpawnOs::directoryIdentity(const std::string& root, const std::string& relative) {
  struct stat st;
  if (statPlainDirectory(root, relative, st) != 0) return "";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

bool SystemSpawnOs::isSocket(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

bool SystemSpawnOs::fileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool SystemSpawnOs::isExecutable(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

std::string SystemSpawnOs::readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SandboxUnavailable("cannot read " + path + ": " + strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> SystemSpawnOs::subdirectories(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return names;
  KJ_DEFER(closedir(dir));
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    struct stat st;
    if (stat((path + "/" + name).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Spawner::Spawner(SpawnerSettings settings, SpawnOs& os)
    : Spawner(kj::mv(settings), os, systemCgroupFs()) {}

Spawner::Spawner(SpawnerSettings settings, SpawnOs& os, CgroupFs& cgroupFs)
    : settings_(kj::mv(settings)), os_(os), cgroups_(cgroupFs) {}

const CgroupStatus& Spawner::cgroupStatus() { return cgroups_.status(); }

const Spawner::Compiled& Spawner::compiled(const std::string& name) {
  auto it = cache_.find(name);
  if (it != cache_.end()) return *it->second;
  auto entry = std::make_shared<Compiled>();
  entry->profile = loadProfile(os_, settings_.profileDir, name);
  entry->bpf = compileSeccomp(entry->profile);
  if (entry->profile.fork_server()) entry->zygoteBpf = compileZygoteSeccomp(entry->profile);
  return *cache_.emplace(name, kj::mv(entry)).first->second;
}

bool Spawner::writesHost(const std::string& profile) {
  for (const auto& m : compiled(profile).profile.mount()) {
    if (m.kind() == config::Mount::BIND) return true;
  }
  return false;
}

std::optional<std::string> Spawner::hiddenIdentity(const SpawnRequest& request) {
  std::vector<std::string> identities;
  try {
    compileHides(compiled(request.profile).profile, request, false, &identities);
  } catch (const SandboxUnavailable&) {
    return std::nullopt;  // not a plain directory any more: a spawn now would be refused too
  }
  std::string joined;
  for (const auto& id : identities) {
    if (id.empty()) return std::nullopt;
    joined += id + ";";
  }
  return joined;
}

namespace {

// A zygote's workers run with its argv and mounts (they are forked, not exec'd): one zygote per
// profile, variables, worker and worker arguments.
std::string forkServerKey(const SpawnRequest& request) {
  std::string key = request.profile + '\0' + request.workerOverride.value_or("");
  for (auto& [name, value] : request.vars) key += '\0' + name + '=' + value;
  for (auto& arg : request.workerArgs) key += '\0' + arg;
  return key;
}

}  // namespace

SpawnedWorker Spawner::spawn(const SpawnRequest& request) {
  if (geteuid() == 0) throw SandboxUnavailable(ROOT_REFUSAL);
  // A worker's parent-death signal fires when the *thread* that cloned it ends: only the main
  // thread lives exactly as long as the supervisor. (checkAvailable()'s trial may run on any
  // thread: it waits for the trial's end, so its thread outlives it.)
  KJ_REQUIRE(gettid() == getpid(), "workers are spawned from the supervisor's main thread only");
  if (!available_) {
    if (auto reason = checkAvailable()) throw SandboxUnavailable(*reason);
  }
  auto& entry = compiled(request.profile);
  // The argv first: a request the profile refuses (and so no zygote would serve) creates
  // nothing.
  auto args = compileArgv(entry.profile, request, SECCOMP_FD);
  if (entry.profile.fork_server() && request.hide.empty() && request.egressSocket.empty() &&
      !cgroups_.status().inForce) {
    if (auto server = forkServerFor(entry, request)) {
      try {
        return server->fork(request.stdoutFd, request.stderrFd);
      } catch (const SandboxUnavailable& e) {
        warn(std::string(e.what()) +
             "; this worker is spawned by bwrap, and so are the next for a minute");
        forkServerFailures_[forkServerKey(request)] = std::chrono::steady_clock::now();
      }
    }
  }
  const auto& limits = entry.profile.limits();
  // bwrap itself is in the cgroup too, outside the sandbox's user namespace: one more pid than
  // RLIMIT_NPROC counts.
  auto cgroup = cgroups_.create(
      entry.profile.name(), CgroupLimits{limits.sandbox_memory_bytes(), limits.max_processes() + 1,
                                         limits.cpu_percent()});
  return start(entry.profile, entry.bpf, request, args, kj::mv(cgroup), SOCK_STREAM);
}

Spawner::~Spawner() noexcept(false) {}

void Spawner::warn(const std::string& message) {
  if (settings_.warn) {
    settings_.warn(message);
  } else {
    fprintf(stderr, "chitin spawner: %s\n", message.c_str());
  }
}

std::shared_ptr<ForkServer> Spawner::forkServerOf(const SpawnRequest& request) {
  auto it = forkServers_.find(forkServerKey(request));
  if (it == forkServers_.end() || !it->second->usable()) return nullptr;
  return it->second;
}

std::shared_ptr<ForkServer> Spawner::forkServerFor(const Compiled& entry,
                                                   const SpawnRequest& request) {
  std::string key = forkServerKey(request);
  auto it = forkServers_.find(key);
  if (it != forkServers_.end()) {
    if (it->second->usable()) return it->second;
    forkServers_.erase(it);  // ended or broken: its workers went with it; a new one below
  }
  // One that could not start is not tried again for a while: each spawn would pay for the
  // attempt and say the same again.
  auto failed = forkServerFailures_.find(key);
  if (failed != forkServerFailures_.end() &&
      std::chrono::steady_clock::now() - failed->second < FORK_SERVER_RETRY) {
    return nullptr;
  }
  forkServerFailures_.erase(key);
  try {
    SpawnRequest zygoteRequest;
    zygoteRequest.profile = request.profile;
    zygoteRequest.vars = request.vars;
    zygoteRequest.workerOverride = request.workerOverride;
    zygoteRequest.workerArgs = request.workerArgs;
    auto args = compileArgvImpl(entry.profile, zygoteRequest, SECCOMP_FD, false, true);
    auto server = std::make_shared<ForkServer>(
        start(entry.profile, entry.zygoteBpf, zygoteRequest, args, nullptr, SOCK_SEQPACKET),
        entry.profile, entry.bpf);
    forkServers_[key] = server;
    return server;
  } catch (const SandboxUnavailable& e) {
    warn("the " + request.profile + " zygote cannot start (" + e.what() +
         "); its workers are spawned by bwrap one by one for a minute, then it is tried again");
  } catch (const kj::Exception& e) {
    warn("the " + request.profile + " zygote cannot start (" + e.getDescription().cStr() +
         "); its workers are spawned by bwrap one by one for a minute, then it is tried again");
  }
  forkServerFailures_[key] = std::chrono::steady_clock::now();
  return nullptr;
}

SpawnedWorker Spawner::start(const config::SandboxProfile& profile, const std::string& bpf,
                             const SpawnRequest& request, const std::vector<std::string>& args,
                             std::unique_ptr<CgroupLease> cgroup, int socketType) {
  // Step 1: the argv, from the profile alone (plus the request's variables, hidden directories
  // and arguments), compiled by the caller.

  // Step 2: the seccomp program in a sealed memfd, read by bwrap from fd 4. A fresh one per
  // spawn: bwrap reads from the shared file offset.
  int memfd;
  KJ_SYSCALL(memfd = memfd_create("chitin-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  kj::AutoCloseFd seccompFd(memfd);
  for (size_t done = 0; done < bpf.size();) {
    ssize_t n;
    KJ_SYSCALL(n = write(memfd, bpf.data() + done, bpf.size() - done));
    done += n;
  }
  KJ_SYSCALL(fcntl(memfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE));
  KJ_SYSCALL(lseek(memfd, 0, SEEK_SET));

  // Step 3: the worker's only channel, and its stdio: stdin /dev/null; stdout and stderr a pipe
  // of its own unless the caller gave fds. Never our own stderr: the worker's processes could
  // reopen it through /proc/1/fd and read the gateway's log (its token URL included).
  int pair[2];
  KJ_SYSCALL(socketpair(AF_UNIX, socketType | SOCK_CLOEXEC, 0, pair));
  kj::AutoCloseFd ours(pair[0]), theirs(pair[1]);
  int devNull;
  KJ_SYSCALL(devNull = open("/dev/null", O_RDONLY | O_CLOEXEC));
  kj::AutoCloseFd nullFd(devNull);
  kj::AutoCloseFd outputRead, outputWrite;
  if (request.stdoutFd < 0 || request.stderrFd < 0) {
    int pipeFds[2];
    KJ_SYSCALL(pipe2(pipeFds, O_CLOEXEC));
    outputRead = kj::AutoCloseFd(pipeFds[0]);
    outputWrite = kj::AutoCloseFd(pipeFds[1]);
    // Our end only: the supervisor must never block on a worker's output.
    KJ_SYSCALL(fcntl(outputRead, F_SETFL, O_NONBLOCK));
  }
  int outFd = request.stdoutFd >= 0 ? request.stdoutFd : outputWrite.get();
  int errFd = request.stderrFd >= 0 ? request.stderrFd : outputWrite.get();
  // Above 9, so that placing them on 0..4 can never overwrite one another.
  kj::AutoCloseFd sources[5] = {dupHigh(nullFd), dupHigh(outFd), dupHigh(errFd), dupHigh(theirs),
                                dupHigh(seccompFd)};
  // Above 9 too: the child places fds 0..4 before it writes to this one.
  kj::AutoCloseFd cgroupProcs = cgroup ? dupHigh(cgroup->procsFd()) : kj::AutoCloseFd();

  // Step 4: the plan for the child, all memory prepared here.
  std::vector<char*> argv;
  for (auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  ChildPlan plan{};
  for (int i = 0; i < 5; i++) plan.sources[i] = sources[i].get();
  plan.cgroupProcs = cgroup ? cgroupProcs.get() : -1;
  plan.userNamespace = settings_.pidNamespacePerSandbox ? sandboxUserNamespace() : -1;
  plan.supervisor = getpid();
  if (plan.userNamespace >= 0) {
    // /proc's number for us, which the outer bwrap compares its parent with (/proc may be
    // another pid namespace's than ours).
    char self[32] = {};
    if (readlink("/proc/self", self, sizeof(self) - 1) <= 0) {
      throw SandboxUnavailable(std::string("cannot read /proc/self (is /proc mounted?): ") +
                               strerror(errno));
    }
    plan.supervisorInProc = static_cast<pid_t>(atoi(self));
  }
  plan.path = settings_.bwrapPath.c_str();
  plan.argv = argv.data();
  plan.envp = envp;

  // Step 5: the child (vforkOnStack()); we resume once it has exec'd bwrap, or has cloned the
  // outer bwrap into its pid namespace (which has then exec'd), or has failed. Two stacks: the
  // child's on top, the outer bwrap's clone's below it.
  ChildStacks stacks(2);
  plan.monitorStack = stacks.top(0);
  VforkedChild child = vforkOnStack(execBwrapInChild, stacks.top(1), 0, &plan);
  if (child.pid < 0) KJ_FAIL_SYSCALL("clone", child.error);
  pid_t pid = child.pid;
  int pidfd = child.pidfd;
  kj::AutoCloseFd ownedPidfd(pidfd);
  if (plan.userNamespace >= 0) {
    // The child has gone: the outer bwrap, its clone, is ours now (or failed before its exec).
    waitPidfd(pidfd, true);
    ownedPidfd = nullptr;
    if (plan.monitor > 0) ownedPidfd = adoptMonitor(plan.monitor);
    pid = plan.monitor;
    pidfd = ownedPidfd.get();
  }

  if (plan.failedStep != 0) {
    if (pidfd >= 0) waitPidfd(pidfd, true);  // reap the child that could not exec
    if (plan.failedStep == 4) {
      throw SandboxUnavailable("cannot run bubblewrap at " + settings_.bwrapPath + ": " +
                               strerror(plan.savedErrno) + " (apt-get install bubblewrap)");
    }
    if (plan.failedStep == 5) {
      throw SandboxUnavailable("cgroup limits: cannot move the worker into its cgroup " +
                               cgroup->path() + ": " + strerror(plan.savedErrno));
    }
    if (plan.failedStep == 9) {
      throw SandboxUnavailable(std::string("cannot read /proc/self/stat (is /proc mounted?): ") +
                               strerror(plan.savedErrno));
    }
    if (plan.failedStep == 7 || plan.failedStep == 8) {
      throw SandboxUnavailable(
          std::string("cannot start the sandbox in a pid namespace of its own (") +
          (plan.failedStep == 7 ? "setns(CLONE_NEWUSER)" : "clone(CLONE_NEWPID)") +
          "): " + strerror(plan.savedErrno) + USERNS_HINT);
    }
    KJ_FAIL_SYSCALL(plan.failedStep == 1   ? "dup2"
                    : plan.failedStep == 6 ? "prctl(PR_SET_PDEATHSIG)"
                                           : "close_range",
                    plan.savedErrno);
  }
  // Gone before its exec, with nothing to say: we were taken for dead (cannot be, we are here).
  KJ_REQUIRE(pid > 0, "the outer bwrap was not started");
  if (cgroup) cgroup->closeProcsFd();

  SpawnedWorker worker;
  worker.pid = pid;
  worker.pidfd = kj::mv(ownedPidfd);
  worker.socket = kj::mv(ours);
  worker.output = kj::mv(outputRead);
  worker.cgroup = kj::mv(cgroup);
  worker.wallClockSeconds = profile.limits().wall_clock_seconds();
  worker.profile = profile.name();
  return worker;
}

int Spawner::sandboxUserNamespace() {
  if (userNamespace_.get() < 0) userNamespace_ = makeSandboxUserNamespace();
  return userNamespace_.get();
}

std::optional<std::string> Spawner::checkAvailable() {
  if (available_) return std::nullopt;
  if (geteuid() == 0) return std::string(ROOT_REFUSAL);
  if (!os_.isExecutable(settings_.bwrapPath)) {
    return "bubblewrap is not installed (no executable " + settings_.bwrapPath +
           "): apt-get install bubblewrap";
  }
  if (readSysctl("/proc/sys/kernel/unprivileged_userns_clone") == "0") {
    return std::string(
        "unprivileged user namespaces are disabled: set "
        "kernel.unprivileged_userns_clone=1 (sysctl, and in /etc/sysctl.d/)");
  }
  if (readSysctl("/proc/sys/user/max_user_namespaces") == "0") {
    return std::string(
        "user namespaces are disabled: set user.max_user_namespaces to a "
        "positive number, e.g. 15000 (sysctl, and in /etc/sysctl.d/)");
  }
  // Level 3 is SECCOMP_RET_KILL_PROCESS, the default action of every chitin filter.
  if (seccomp_api_get() < 3) {
    return std::string(
        "this kernel's seccomp lacks SECCOMP_RET_KILL_PROCESS (Linux >= 4.14 "
        "with CONFIG_SECCOMP_FILTER is required)");
  }

  // A real, trivial sandbox: namespaces, the usual mounts, a default-kill filter, /usr/bin/true.
  config::SandboxProfile trial;
  trial.set_name("availability-check");
  trial.set_worker("true");
  auto mount = [&](config::Mount::Kind kind, const char* src, const char* dst) {
    auto* m = trial.add_mount();
    m->set_kind(kind);
    m->set_src(src);
    m->set_dst(dst);
  };
  mount(config::Mount::RO_BIND, "/usr", "/usr");
  mount(config::Mount::SYMLINK, "usr/lib", "/lib");
  mount(config::Mount::SYMLINK, "usr/lib64", "/lib64");
  mount(config::Mount::SYMLINK, "usr/bin", "/bin");
  mount(config::Mount::PROC, "", "/proc");
  mount(config::Mount::DEV, "", "/dev");
  mount(config::Mount::TMPFS, "", "/tmp");
  for (auto group : {config::BASIC_IO, config::MEMORY, config::PROCESS_SELF}) {
    trial.add_syscalls(group);
  }
  auto* limits = trial.mutable_limits();
  limits->set_memory_bytes(256u << 20);
  limits->set_max_processes(8);
  limits->set_max_open_files(64);
  limits->set_cpu_seconds(5);
  limits->set_max_file_bytes(1u << 20);
  limits->set_tmpfs_bytes(1u << 20);

  int pipeFds[2];
  KJ_SYSCALL(pipe2(pipeFds, O_CLOEXEC));
  kj::AutoCloseFd readEnd(pipeFds[0]), writeEnd(pipeFds[1]);
  SpawnRequest request;
  request.profile = trial.name();
  request.workerOverride = "/usr/bin/true";
  request.stdoutFd = writeEnd.get();
  request.stderrFd = writeEnd.get();
  SpawnedWorker worker;
  try {
    worker = start(trial, compileSeccomp(trial), request, compileArgv(trial, request, SECCOMP_FD),
                   nullptr, SOCK_STREAM);
  } catch (const SandboxUnavailable& e) {
    return std::string(e.what());
  }
  writeEnd = nullptr;

  // bwrap /usr/bin/true takes ~15 ms; a sandbox that has not finished in 10 s is broken.
  pollfd pfd{worker.pidfd.get(), POLLIN, 0};
  int ready;
  KJ_SYSCALL(ready = poll(&pfd, 1, 10000));
  if (ready == 0) {
    killWorker(worker);
    waitForExit(worker);
    return std::string("the trial sandbox (bwrap running /usr/bin/true) did not finish in 10 s");
  }
  WorkerExit exit = waitForExit(worker);
  std::string output(4096, '\0');
  ssize_t n = read(readEnd.get(), output.data(), output.size());
  output.resize(n > 0 ? n : 0);
  while (!output.empty() && output.back() == '\n') output.pop_back();
  if (exit.exitCode == 0) {
    available_ = true;
    return std::nullopt;
  }
  std::string reason = "bubblewrap could not build a sandbox (" + exit.describe() + ")";
  if (!output.empty()) reason += ": " + output;
  if (exit.signal == SIGSYS) {
    reason +=
        "; the seccomp filter killed the trial's start-up: this kernel or libc needs a "
        "syscall chitin does not allow yet (please report it)";
  } else if (output.find("namespace") != std::string::npos ||
             output.find("uid map") != std::string::npos) {
    reason +=
        "; unprivileged user namespaces seem unavailable: enable them (Debian: "
        "kernel.unprivileged_userns_clone=1; Ubuntu >= 23.10: "
        "kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap)";
  }
  return reason;
}

}  // namespace chitin::spawn
