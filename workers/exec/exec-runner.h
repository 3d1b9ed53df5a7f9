// SPDX-License-Identifier: Apache-2.0
// Runs one `exec {command, workdir, timeoutSeconds}` call: bash in the workspace, output
// streamed as it arrives and kept (capped) for the result, the whole process group killed on
// timeout.
// Runs in: worker (sandboxed)
//
// The command runs as `/bin/bash -c COMMAND` in its own session (so one kill reaches every
// process it started), with stdin /dev/null, stdout and stderr merged into one pipe, and an
// environment of exactly PATH, HOME (the workspace), LANG=C.UTF-8 and TERM=dumb. When bash
// exits, whatever it left running in its process group is killed too: a tool call does not
// leave processes behind (the sandbox's pid namespace would end them with the worker anyway).
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

struct ExecSettings {
  int rootFd;              // the workspace root, an O_PATH directory fd
  kj::StringPtr rootPath;  // the same directory's path, for HOME
  size_t maxOutputBytes = EXEC_DEFAULT_MAX_OUTPUT_BYTES;
};

struct ExecOutcome {
  bool failed = false;
  kj::String text;        // capped output, then a status line on failure
  int32_t exitCode = -1;  // set when bash exited (0 too); -1 when killed or timed out
  bool truncated = false;
  bool timedOut = false;
};

// Runs the command. Bad arguments the model can cause (empty command, bad workdir) resolve to
// a failed outcome; a timeoutSeconds above EXEC_MAX_TIMEOUT_SECONDS is a protocol error (the
// supervisor clamps it) and throws. `output` receives every byte as it arrives, flow-controlled;
// if it throws, streaming stops and the command carries on.
kj::Promise<ExecOutcome> runExec(kj::AsyncIoContext& io, const ExecSettings& settings,
                                 rpc::ExecArgs::Reader args, rpc::ByteSink::Client output);

// Parses `--max-output-bytes=N` from argv (1..EXEC_MAX_OUTPUT_LIMIT_BYTES); the default if the
// flag is absent. Throws on a malformed value.
size_t maxOutputBytesFromArgs(int argc, char** argv);

}  // namespace chitin
