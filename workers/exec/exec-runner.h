// SPDX-License-Identifier: Apache-2.0
// Runs one `exec {command, workdir, timeoutSeconds}` call: bash in the workspace, output
// streamed as it arrives and kept (capped) for the result, the whole process group killed on
// timeout.
// Runs in: worker (sandboxed)
//
// The command runs as `/bin/bash -c COMMAND` in its own session (so one kill reaches every
// process it started), with stdin /dev/null, stdout and stderr merged into one pipe, and the
// environment of exec-env.h (PATH, a fresh HOME, LANG, TERM, git pinned). When bash exits,
// whatever it left running in its process group is killed too: a tool call does not leave
// processes behind (the sandbox's pid namespace would end them with the worker anyway).
// Output: at most maxOutputBytes are kept for the result and streamed live (the supervisor
// kills a worker that streams more); a command whose output passes EXEC_RUNAWAY_OUTPUT_BYTES
// is killed, and the result says so.
// Network, mounts and syscalls are the sandbox profile's business, not this code's.

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

// Runs the command. Bad arguments the model can cause (empty command, bad workdir) resolve to
// a failed outcome; a timeoutSeconds above EXEC_MAX_TIMEOUT_SECONDS is a protocol error (the
// supervisor clamps it) and throws. `output` receives the first maxOutputBytes as they arrive,
// flow-controlled; if it throws, streaming stops and the command carries on.
kj::Promise<ExecOutcome> runExec(kj::AsyncIoContext& io, const ExecSettings& settings,
                                 rpc::ExecArgs::Reader args, rpc::ByteSink::Client output);

// Parses `--max-output-bytes=N` from argv (1..EXEC_MAX_OUTPUT_LIMIT_BYTES); the default if the
// flag is absent. Throws on a malformed value.
size_t maxOutputBytesFromArgs(int argc, char** argv);

// `--home=DIR` from argv (tests only: the worker runs unsandboxed), else EXEC_HOME.
kj::StringPtr homeFromArgs(int argc, char** argv);

}  // namespace chitin
