// SPDX-License-Identifier: Apache-2.0
// The parent field of a /proc/PID/stat file, read the same way by the supervisor (which of its
// children's children a sandbox holds: sandbox-kill.c++) and by the outer bwrap before its exec
// (is the supervisor still its parent: spawner.c++).
// Runs in: supervisor, and in the spawner's clone children (async-signal-safe)

#pragma once

#include <sys/types.h>

namespace chitin::spawn {

// The parent pid that the stat file at `statPath` gives (field 4, after the parenthesised name,
// which may itself hold spaces and parentheses: the last ')' ends it). -1 with errno set when the
// file cannot be opened or read; -1 with errno EINVAL when what it holds is not a stat line.
// Async-signal-safe: one open, read and close, then parsing on the stack.
pid_t parentInProcStat(const char* statPath);

}  // namespace chitin::spawn
