// SPDX-License-Identifier: Apache-2.0
// One exec call: spawn, stream, cap, time out, reap (see exec-runner.h).
// Runs in: worker (sandboxed)

#include "exec-runner.h"

#include <errno.h>
#include <fcntl.h>
#include <kj/async-unix.h>
#include <kj/debug.h>
#include <kj/vector.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <poll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "beneath.h"
#include "exec-env.h"
#include "utf8.h"
#include "workspace-path.h"

namespace chitin {

namespace {

constexpr const char BASH[] = "/bin/bash";
// execve() refuses a single argument longer than this (MAX_ARG_STRLEN).
constexpr size_t MAX_COMMAND_BYTES = 128 * 1024 - 1;
constexpr size_t READ_CHUNK_BYTES = 64 * 1024;
// After bash exits and its group is killed, output still in the pipe is collected for at most
// this long: a process that left the group with setsid() could otherwise hold the pipe open.
constexpr auto DRAIN_GRACE = 1 * kj::SECONDS;

ExecOutcome failedWith(kj::String message) {
  ExecOutcome outcome;
  outcome.failed = true;
  outcome.text = kj::mv(message);
  return outcome;
}

// NUL bytes (`cat /dev/zero`, `find -print0`) as U+FFFD: Text that reaches the model must not
// contain them (a NUL would end the text early for every C-string consumer downstream, status
// lines included). The result stays within `limit` bytes, cut on a character boundary.
kj::String textWithoutNul(kj::String text, size_t limit) {
  if (memchr(text.begin(), '\0', text.size()) == nullptr) return text;
  kj::Vector<char> out(text.size() + 1);
  for (char c : text) {
    if (c == '\0') {
      out.addAll(kj::StringPtr("\xef\xbf\xbd"));
    } else {
      out.add(c);
    }
  }
  size_t keep = utf8BoundaryAtOrBefore(out.asPtr(), limit);
  return kj::heapString(out.begin(), keep);
}

kj::String signalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev == nullptr ? kj::str("unknown") : kj::str("SIG", abbrev);
}

// The working directory, checked by the path rules and opened beneath the root so that it
// cannot be a symlink out of the workspace. The child fchdir()s to this very fd.
kj::OneOf<kj::AutoCloseFd, kj::String> openWorkdir(int rootFd, kj::StringPtr workdir) {
  kj::String rel = kj::str(".");
  kj::String shown = displayPath(workdir);
  if (workdir.size() > 0) {
    auto checked = checkWorkspacePath(workdir);
    if (checked.is<PathRejection>()) {
      return kj::str("workdir: ", checked.get<PathRejection>().message);
    }
    rel = kj::mv(checked.get<kj::String>());
  }
  auto opened = openBeneath(rootFd, rel, O_PATH | O_DIRECTORY, Symlinks::FOLLOW_BENEATH);
  if (opened.is<kj::AutoCloseFd>()) return kj::mv(opened.get<kj::AutoCloseFd>());
  int error = opened.get<int>();
  if (error == ENOENT) return kj::str("workdir not found: ", shown);
  if (error == ENOTDIR) return kj::str("workdir is not a directory: ", shown);
  return kj::str("workdir: ",
                 describeOpenError(error, rootFd, rel, Symlinks::FOLLOW_BENEATH, shown).message);
}

// posix_spawn*() return an error number instead of setting errno.
void checkSpawnCall(int rc, const char* call) {
  if (rc != 0) KJ_FAIL_SYSCALL(call, rc);
}

// Starts `/bin/bash -c script` in `workdirFd`, in a session of its own, with stdin /dev/null,
// stdout and stderr one pipe (our end returned), the exec environment, clean signal state, and
// `extra` as fds 3, 4, ... (nothing else open).
SpawnedShell spawnBash(kj::StringPtr script, int workdirFd, kj::StringPtr home,
                       kj::ArrayPtr<const int> extra = nullptr) {
  int pipeFds[2];
  KJ_SYSCALL(pipe2(pipeFds, O_CLOEXEC));
  kj::AutoCloseFd readEnd(pipeFds[0]);
  kj::AutoCloseFd writeEnd(pipeFds[1]);
  // Only our end is non-blocking: the command's stdout must behave like an ordinary pipe.
  KJ_SYSCALL(fcntl(readEnd, F_SETFL, O_NONBLOCK));

  posix_spawn_file_actions_t actions;
  checkSpawnCall(posix_spawn_file_actions_init(&actions), "posix_spawn_file_actions_init");
  KJ_DEFER(posix_spawn_file_actions_destroy(&actions));
  // In order: cwd first (the fd is closed below), then stdio, then nothing else open.
  checkSpawnCall(posix_spawn_file_actions_addfchdir_np(&actions, workdirFd), "addfchdir_np");
  checkSpawnCall(posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0),
                 "addopen(/dev/null)");
  checkSpawnCall(posix_spawn_file_actions_adddup2(&actions, writeEnd, STDOUT_FILENO), "adddup2");
  checkSpawnCall(posix_spawn_file_actions_adddup2(&actions, writeEnd, STDERR_FILENO), "adddup2");
  // Each extra fd is above every target (the worker's own fds 0-3 are taken), so no dup2 here
  // overwrites one still to be copied.
  for (size_t i = 0; i < extra.size(); ++i) {
    KJ_REQUIRE(extra[i] > STDERR_FILENO + static_cast<int>(extra.size()), "extra fd too low",
               extra[i]);
    checkSpawnCall(posix_spawn_file_actions_adddup2(&actions, extra[i],
                                                    STDERR_FILENO + 1 + static_cast<int>(i)),
                   "adddup2");
  }
  checkSpawnCall(posix_spawn_file_actions_addclosefrom_np(
                     &actions, STDERR_FILENO + 1 + static_cast<int>(extra.size())),
                 "addclosefrom_np");

  posix_spawnattr_t attr;
  checkSpawnCall(posix_spawnattr_init(&attr), "posix_spawnattr_init");
  KJ_DEFER(posix_spawnattr_destroy(&attr));
  // A new session makes bash a process group leader: kill(-pid) then reaches all it started.
  // Signal mask and dispositions start clean whatever the worker's event loop set up.
  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  checkSpawnCall(posix_spawnattr_setsigmask(&attr, &empty), "setsigmask");
  checkSpawnCall(posix_spawnattr_setsigdefault(&attr, &all), "setsigdefault");
  checkSpawnCall(posix_spawnattr_setflags(
                     &attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
                 "setflags");

  auto env = execEnvironment(home);
  kj::Vector<const char*> envp;
  for (auto& entry : env) envp.add(entry.cStr());
  envp.add(nullptr);
  const char* argv[] = {BASH, "-c", script.cStr(), nullptr};
  pid_t pid;
  int rc = posix_spawn(&pid, BASH, &actions, &attr, const_cast<char* const*>(argv),
                       const_cast<char* const*>(envp.begin()));
  if (rc != 0) KJ_FAIL_SYSCALL("posix_spawn(/bin/bash)", rc, script.size());
  writeEnd = nullptr;

  // Safe even if bash already exited: it stays a zombie until we reap it.
  long pidfd = syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) {
    int error = errno;
    kill(-pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    KJ_FAIL_SYSCALL("pidfd_open", error, pid);
  }
  return SpawnedShell{pid, kj::AutoCloseFd(static_cast<int>(pidfd)), kj::mv(readEnd)};
}

// What the warm shell runs: it waits for one byte on fd 4 (the call has come), reads the
// command whole from fd 3 (a file: bash reads a pipe a byte at a time), closes both, and runs
// the command as the shell's own code, its variables gone first. The expansion happens before
// eval runs, so the command's own `$...` are expanded only as it runs, after the unset.
constexpr const char WARM_SHELL_READER[] =
    "read -r -n 1 -u 4 __chitin_go || exit 125\n"
    "exec 4<&-\n"
    "IFS= read -r -d '' __chitin_command <&3\n"
    "exec 3<&-\n"
    "SECONDS=0\n"
    "eval \"unset __chitin_go __chitin_command; $__chitin_command\"\n";

class CommandRun {
 public:
  CommandRun(kj::AsyncIoContext& io, SpawnedShell spawned, rpc::ByteSink::Client output,
             size_t maxOutputBytes, uint32_t timeoutSeconds)
      : timer(io.provider->getTimer()),
        pid(spawned.pid),
        pidfd(kj::mv(spawned.pidfd)),
        pidObserver(io.unixEventPort, pidfd, kj::UnixEventPort::FdObserver::OBSERVE_READ),
        input(io.lowLevelProvider->wrapInputFd(spawned.outputReadEnd.release(),
                                               kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP |
                                                   kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC |
                                                   kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK)),
        output(kj::mv(output)),
        maxOutputBytes(maxOutputBytes),
        timeoutSeconds(timeoutSeconds) {}

  ~CommandRun() noexcept(false) {
    // Cancelled (the supervisor dropped the call) before the command ended: end it now.
    if (!reaped) {
      kill(-pid, SIGKILL);
      siginfo_t info;
      waitid(P_PIDFD, static_cast<id_t>(pidfd.get()), &info, WEXITED);
    }
  }

  kj::Promise<ExecOutcome> run() {
    // The pump runs from the start so that the pipe never fills while we wait for the exit.
    auto pumped = pump().eagerlyEvaluate(nullptr);
    auto exited = waitForExit().exclusiveJoin(
        timer.afterDelay(timeoutSeconds * kj::SECONDS).then([this]() -> kj::Promise<siginfo_t> {
          timedOut = true;
          kill(-pid, SIGKILL);
          return kj::NEVER_DONE;  // the exit follows
        }));
    return exited.then([this, pumped = kj::mv(pumped)](siginfo_t info) mutable {
      return pumped.exclusiveJoin(timer.afterDelay(DRAIN_GRACE)).then([this, info]() {
        endOutput();
        return makeOutcome(info);
      });
    });
  }

 private:
  kj::Timer& timer;
  pid_t pid;
  kj::AutoCloseFd pidfd;
  kj::UnixEventPort::FdObserver pidObserver;
  kj::Own<kj::AsyncInputStream> input;
  rpc::ByteSink::Client output;
  kj::Promise<void> ended = nullptr;  // endOutput()'s call, answered or not
  size_t maxOutputBytes;
  uint32_t timeoutSeconds;

  bool reaped = false;
  bool timedOut = false;
  bool runaway = false;
  bool streaming = true;
  uint64_t totalBytes = 0;
  uint64_t streamedBytes = 0;
  kj::Vector<char> kept;  // the first maxOutputBytes + 1 bytes (one more to cut on a boundary)
  char buffer[READ_CHUNK_BYTES];

  kj::Promise<void> pump() {
    return input->tryRead(buffer, 1, sizeof(buffer)).then([this](size_t n) -> kj::Promise<void> {
      if (n == 0) return kj::READY_NOW;
      totalBytes += n;
      size_t room = maxOutputBytes + 1 - kj::min(kept.size(), maxOutputBytes + 1);
      kept.addAll(buffer, buffer + kj::min(n, room));
      if (totalBytes > EXEC_RUNAWAY_OUTPUT_BYTES && !runaway) {
        // Past anything a result could show: stop the command instead of draining it until its
        // timeout. Reading goes on until the pipe closes (the group is dead, so soon).
        runaway = true;
        kill(-pid, SIGKILL);
      }
      // The live stream carries what the result keeps and no more (the supervisor stops a
      // worker that streams past its cap).
      size_t toStream = static_cast<size_t>(
          kj::min(static_cast<uint64_t>(n),
                  maxOutputBytes - kj::min(streamedBytes, uint64_t{maxOutputBytes})));
      if (!streaming || toStream == 0) return pump();
      streamedBytes += toStream;
      auto request = output.writeRequest();
      request.setChunk(kj::arrayPtr(reinterpret_cast<const kj::byte*>(buffer), toStream));
      return request.send().then([this]() { return pump(); },
                                 [this](kj::Exception&&) {
                                   // The receiver stopped listening; the result still counts.
                                   streaming = false;
                                   return pump();
                                 });
    });
  }

  kj::Promise<siginfo_t> waitForExit() {
    return pidObserver.whenBecomesReadable().then([this]() {
      // bash is a zombie now and still holds its group id: kill what it left running, then
      // reap it. (After the reap the id could be reused, so never the other way round.)
      kill(-pid, SIGKILL);
      siginfo_t info;
      memset(&info, 0, sizeof(info));
      while (waitid(P_PIDFD, static_cast<id_t>(pidfd.get()), &info, WEXITED) < 0) {
        if (errno != EINTR) KJ_FAIL_SYSCALL("waitid(P_PIDFD)", errno, pid);
      }
      reaped = true;
      return info;
    });
  }

  // Tells the sink the stream is over, without waiting for its answer: calls on one connection
  // arrive in the order they were made, so the supervisor has the end (after every write) before
  // the result that follows it, and a round trip per call is saved.
  void endOutput() {
    if (!streaming) return;
    ended = output.endRequest()
                .send()
                .ignoreResult()
                .catch_([](kj::Exception&&) {})
                .eagerlyEvaluate(nullptr);
  }

  ExecOutcome makeOutcome(const siginfo_t& info) {
    ExecOutcome outcome;
    outcome.truncated = totalBytes > maxOutputBytes;
    size_t keep =
        outcome.truncated ? utf8BoundaryAtOrBefore(kept.asPtr(), maxOutputBytes) : kept.size();
    kj::String text = textWithoutNul(sanitizeUtf8(kept.asPtr().slice(0, keep)), maxOutputBytes);

    kj::Vector<kj::String> lines;
    if (outcome.truncated && !runaway) {
      lines.add(kj::str("[output truncated: ", totalBytes, " bytes total]"));
    }
    if (runaway) {
      outcome.failed = true;
      outcome.runaway = true;
      lines.add(kj::str("[output truncated] the command was killed: it wrote more than ",
                        EXEC_RUNAWAY_OUTPUT_BYTES >> 20,
                        " MiB of output (write large output to a file and read parts of it)"));
    } else if (timedOut) {
      outcome.failed = true;
      outcome.timedOut = true;
      lines.add(kj::str("timed out after ", timeoutSeconds, " s"));
    } else if (info.si_code == CLD_EXITED) {
      outcome.exitCode = info.si_status;
      if (info.si_status != 0) {
        outcome.failed = true;
        lines.add(kj::str("exit code ", info.si_status));
      }
    } else {
      outcome.failed = true;
      lines.add(
          kj::str("killed by signal ", info.si_status, " (", signalName(info.si_status), ")"));
    }

    if (text.size() == 0 && lines.size() == 0) {
      outcome.text = kj::str("(no output)");
      return outcome;
    }
    bool needNewline = text.size() > 0 && !text.endsWith("\n") && lines.size() > 0;
    outcome.text = kj::str(text, needNewline ? "\n" : "", kj::strArray(lines, "\n"));
    return outcome;
  }
};

}  // namespace

kj::Own<WarmShell> WarmShell::start(int rootFd, kj::StringPtr home) {
  // The command goes in a file nobody can name (bash reads a file in blocks, a pipe a byte at a
  // time); the sandbox's /tmp is the call's own. Without one, calls start bash as before.
  int file = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (file < 0) {
    KJ_LOG(WARNING, "no warm shell: cannot make its command file in /tmp", strerror(errno));
    return {};
  }
  kj::AutoCloseFd commandFile(file);
  int goFds[2];
  KJ_SYSCALL(pipe2(goFds, O_CLOEXEC));
  kj::AutoCloseFd goReadEnd(goFds[0]);
  kj::AutoCloseFd goWriteEnd(goFds[1]);
  auto root = openWorkdir(rootFd, "");
  if (root.is<kj::String>()) {
    KJ_LOG(WARNING, "no warm shell", root.get<kj::String>());
    return {};
  }
  // bash's extra fds are 3 and 4; dup2 needs the sources above them.
  kj::AutoCloseFd fileAbove(fcntl(commandFile, F_DUPFD_CLOEXEC, 10));
  kj::AutoCloseFd goAbove(fcntl(goReadEnd, F_DUPFD_CLOEXEC, 10));
  if (fileAbove.get() < 0 || goAbove.get() < 0) KJ_FAIL_SYSCALL("fcntl(F_DUPFD_CLOEXEC)", errno);
  const int extra[] = {fileAbove.get(), goAbove.get()};
  auto shell = spawnBash(WARM_SHELL_READER, root.get<kj::AutoCloseFd>(), home, extra);
  return kj::heap<WarmShell>(kj::mv(shell), kj::mv(commandFile), kj::mv(goWriteEnd));
}

WarmShell::WarmShell(SpawnedShell shell, kj::AutoCloseFd commandFile, kj::AutoCloseFd go)
    : shell(kj::mv(shell)), commandFile(kj::mv(commandFile)), go(kj::mv(go)) {}

WarmShell::~WarmShell() noexcept(false) {
  KJ_IF_MAYBE (waiting, shell) {
    // Never handed a command: it and anything it started go now.
    kill(-waiting->pid, SIGKILL);
    siginfo_t info;
    waitid(P_PIDFD, static_cast<id_t>(waiting->pidfd.get()), &info, WEXITED);
  }
}

kj::Maybe<SpawnedShell> WarmShell::hand(kj::StringPtr command) {
  KJ_IF_MAYBE (waiting, shell) {
    struct pollfd ended = {waiting->pidfd.get(), POLLIN, 0};
    if (poll(&ended, 1, 0) != 0) return nullptr;  // it has gone (the destructor reaps it)
    for (size_t done = 0; done < command.size();) {
      ssize_t n = pwrite(commandFile, command.begin() + done, command.size() - done,
                         static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return nullptr;
      done += static_cast<size_t>(n);
    }
    commandFile = nullptr;
    // The shell's read of its command starts after this byte: the file is whole by then. If it
    // went meanwhile the write fails (EPIPE; the event loop ignores SIGPIPE).
    ssize_t n;
    do {
      n = write(go, "g", 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) return nullptr;
    go = nullptr;
    SpawnedShell handed = kj::mv(*waiting);
    shell = nullptr;
    return kj::mv(handed);
  }
  return nullptr;
}

kj::Promise<ExecOutcome> runExec(kj::AsyncIoContext& io, const ExecSettings& settings,
                                 rpc::ExecArgs::Reader args, rpc::ByteSink::Client output,
                                 kj::Own<WarmShell> warm) {
  uint32_t timeoutSeconds = args.getTimeoutSeconds();
  KJ_REQUIRE(timeoutSeconds <= EXEC_MAX_TIMEOUT_SECONDS,
             "exec timeoutSeconds above the maximum; the supervisor must clamp it", timeoutSeconds,
             EXEC_MAX_TIMEOUT_SECONDS);
  if (timeoutSeconds == 0) timeoutSeconds = EXEC_DEFAULT_TIMEOUT_SECONDS;

  kj::StringPtr command = args.getCommand();
  if (command.size() == 0) return failedWith(kj::str("command is empty"));
  if (memchr(command.begin(), '\0', command.size()) != nullptr) {
    return failedWith(kj::str("command contains a NUL byte"));
  }
  if (command.size() > MAX_COMMAND_BYTES) {
    return failedWith(kj::str("command is too long (", command.size(), " bytes, at most ",
                              MAX_COMMAND_BYTES, "); write a script file and run that"));
  }

  // The warm shell's directory is the workspace root: a call that names another starts bash.
  kj::Maybe<SpawnedShell> shell;
  if (warm.get() != nullptr && args.getWorkdir().size() == 0) shell = warm->hand(command);
  warm = nullptr;  // not handed a command, it ends here
  if (shell == nullptr) {
    auto workdir = openWorkdir(settings.rootFd, args.getWorkdir());
    if (workdir.is<kj::String>()) return failedWith(kj::mv(workdir.get<kj::String>()));
    shell = spawnBash(command, workdir.get<kj::AutoCloseFd>(), settings.home);
  }
  auto run = kj::heap<CommandRun>(io, kj::mv(KJ_ASSERT_NONNULL(shell)), kj::mv(output),
                                  settings.maxOutputBytes, timeoutSeconds);
  auto promise = run->run();
  return promise.attach(kj::mv(run));
}

size_t maxOutputBytesFromArgs(int argc, char** argv) {
  static constexpr char FLAG_TEXT[] = "--max-output-bytes=";
  kj::StringPtr flag = FLAG_TEXT;
  size_t value = EXEC_DEFAULT_MAX_OUTPUT_BYTES;
  for (int i = 1; i < argc; ++i) {
    kj::StringPtr arg = argv[i];
    if (!arg.startsWith(flag)) continue;
    kj::StringPtr digits = arg.slice(flag.size());
    KJ_REQUIRE(digits.size() > 0 && digits.size() <= 9, "--max-output-bytes is not a number", arg);
    size_t parsed = 0;
    for (char c : digits) {
      KJ_REQUIRE(c >= '0' && c <= '9', "--max-output-bytes is not a number", arg);
      parsed = parsed * 10 + static_cast<size_t>(c - '0');
    }
    KJ_REQUIRE(parsed >= 1 && parsed <= EXEC_MAX_OUTPUT_LIMIT_BYTES,
               "--max-output-bytes out of range", parsed, EXEC_MAX_OUTPUT_LIMIT_BYTES);
    value = parsed;
  }
  return value;
}

}  // namespace chitin

namespace chitin {

kj::StringPtr homeFromArgs(int argc, char** argv) {
  static constexpr char FLAG_TEXT[] = "--home=";
  kj::StringPtr home = EXEC_HOME;
  for (int i = 1; i < argc; ++i) {
    kj::StringPtr arg = argv[i];
    if (arg.startsWith(FLAG_TEXT)) home = arg.slice(sizeof(FLAG_TEXT) - 1);
  }
  KJ_REQUIRE(home.startsWith("/"), "--home must be an absolute path", home);
  return home;
}

}  // namespace chitin
