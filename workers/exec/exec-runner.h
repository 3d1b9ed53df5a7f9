// SPDX-License-Identifier: Apache-2.0
// Runs one `exec {command, workdir, timeoutSeconds}` call: bash in the workspace, output
// streamed as it arrives and kept (capped) for the result, the whole process group killed on
// timeout.
// Runs in: worker (sandboxed)
//
// The command runs in bash -- `/bin/bash -c COMMAND`, or the WarmShell started ahead of the
// call -- in its own session (so one kill reaches every process it started), with stdin /dev/null,
// stdout and stderr merged into one pipe, and the environment of exec-env.h (PATH, a fresh HOME,
// LANG, TERM, git pinned). When bash exits, whatever it left running in its process group is killed
// too: a tool call does not leave processes behind (the sandbox's pid namespace would end them with
// the worker anyway). Output: at most maxOutputBytes are kept for the result and streamed live (the
// supervisor kills a worker that streams more); a command whose output passes
// EXEC_RUNAWAY_OUTPUT_BYTES is killed, and the result says so. Network, mounts and syscalls are the
// sandbox profile's business, not this code's.

#pragma once

#include <kj/async-io.h>
#include <kj/string.h>

#include "common.capnp.h"
#include "tool.capnp.h"

namespace chitin {

constexpr uint32_t EXEC_DEFAULT_TIMEOUT_SECONDS = 120;
constexpr uint32_t EXEC_MAX_TIMEOUT_SECONDS = 3600;
constexpr size_t EXEC_DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024;
// Far above any sensible cap, and well inside Cap'n Proto's message limit.
constexpr size_t EXEC_MAX_OUTPUT_LIMIT_BYTES = 16 * 1024 * 1024;
// A command that writes more than this (all of it read and dropped past maxOutputBytes) is
// killed: `cat /dev/zero` ends in milliseconds, not at its timeout.
constexpr uint64_t EXEC_RUNAWAY_OUTPUT_BYTES = 64 * 1024 * 1024;

struct ExecSettings {
  int rootFd;          // the workspace root, an O_PATH directory fd
  kj::StringPtr home;  // HOME for the command (exec-env.h)
  size_t maxOutputBytes = EXEC_DEFAULT_MAX_OUTPUT_BYTES;
};

struct ExecOutcome {
  bool failed = false;
  kj::String text;        // capped output, then a status line on failure
  int32_t exitCode = -1;  // set when bash exited (0 too); -1 when killed or timed out
  bool truncated = false;
  bool timedOut = false;
  bool runaway = false;  // killed for writing more than EXEC_RUNAWAY_OUTPUT_BYTES
};

// bash started for a call: its pid (a process group leader), a pidfd for it, and our end of
// the pipe that is its stdout and stderr.
struct SpawnedShell {
  pid_t pid;
  kj::AutoCloseFd pidfd;
  kj::AutoCloseFd outputReadEnd;
};

// A bash started ahead of need in the call's own sandbox, waiting for its command, so that the
// call pays for the command and not for bash's start (exec, loading, start-up): what makes a
// warm spare sandbox's `exec true` cost little more than its RPC. It has what a bash started for
// the call would have: the exec environment, the workspace root as its directory, a session of
// its own, stdin /dev/null, the output pipe, clean signal state and, started from the event loop
// after the worker's lockdown, the same seccomp filter. One command, once.
// What differs shows only to a command that looks for it: bash runs the command with `eval`
// (a syntax error reads "bash: eval: line 1: ..." where `bash -c` says "bash: -c: line 1:"),
// and $BASH_EXECUTION_STRING and /proc/$$/cmdline hold the reader, not the command.
class WarmShell {
 public:
  // In the workspace root `rootFd`, with `home` as HOME (ExecSettings'). Null when it cannot
  // be set up (no /tmp for its command file): calls then start bash.
  static kj::Own<WarmShell> start(int rootFd, kj::StringPtr home);

  WarmShell(SpawnedShell shell, kj::AutoCloseFd commandFile, kj::AutoCloseFd go);
  ~WarmShell() noexcept(false);
  KJ_DISALLOW_COPY(WarmShell);

  // Gives the shell `command` and hands it over, running; null when it has gone (or is
  // handed over already), and then the caller starts bash itself.
  kj::Maybe<SpawnedShell> hand(kj::StringPtr command);

 private:
  kj::Maybe<SpawnedShell> shell;
  kj::AutoCloseFd commandFile;  // read by the shell as its fd 3, whole, once woken
  kj::AutoCloseFd go;           // the shell's fd 4: one byte wakes it
};

// Runs the command. Bad arguments the model can cause (empty command, bad workdir) resolve to
// a failed outcome; a timeoutSeconds above EXEC_MAX_TIMEOUT_SECONDS is a protocol error (the
// supervisor clamps it) and throws. `output` receives the first maxOutputBytes as they arrive,
// flow-controlled; if it throws, streaming stops and the command carries on.
// With `warm` (may be null) the command runs in that shell when the call names no workdir.
kj::Promise<ExecOutcome> runExec(kj::AsyncIoContext& io, const ExecSettings& settings,
                                 rpc::ExecArgs::Reader args, rpc::ByteSink::Client output,
                                 kj::Own<WarmShell> warm = {});

// Parses `--max-output-bytes=N` from argv (1..EXEC_MAX_OUTPUT_LIMIT_BYTES); the default if the
// flag is absent. Throws on a malformed value.
size_t maxOutputBytesFromArgs(int argc, char** argv);

// `--home=DIR` from argv (tests only: the worker runs unsandboxed), else EXEC_HOME.
kj::StringPtr homeFromArgs(int argc, char** argv);

}  // namespace chitin
