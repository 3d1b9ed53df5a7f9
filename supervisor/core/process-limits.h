// SPDX-License-Identifier: Apache-2.0
// The supervisor's own resource limits, set once at start.
// Runs in: supervisor
//
// Every session whose worker is alive holds three of the supervisor's descriptors (the worker's
// socket, its pidfd and its output pipe), so a thousand sessions need a few thousand. A service
// started by systemd gets a soft RLIMIT_NOFILE of 1,024 (its hard limit is far higher), which
// would end spawning at about 330 sessions. The supervisor raises its soft limit toward the hard
// one; workers set their own from their profiles (--chitin-limits), so none inherits it.

#pragma once

#include <sys/resource.h>

namespace chitin {

// More than a thousand sessions need, and few enough that nothing pays for a huge table.
constexpr rlim_t OPEN_FILES_WANTED = 65536;

// Raises the soft limit on open files to min(hard limit, `wanted`); never lowers it. Returns the
// soft limit in force afterwards.
rlim_t raiseOpenFileLimit(rlim_t wanted = OPEN_FILES_WANTED);

}  // namespace chitin
