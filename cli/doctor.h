// SPDX-License-Identifier: Apache-2.0
// `chitin doctor`: checks what chitin needs from this machine and says how to fix each gap.
// Runs in: the invoking user's process

#pragma once

#include <ostream>

#include "spawner.h"

namespace chitin::cli {

// Prints one line per check ("ok", "warn" or "FAIL" with a fix). Returns 0 when everything
// needed to run workers passes, 1 otherwise.
int runDoctor(const spawn::SpawnerSettings& settings, std::ostream& out);

}  // namespace chitin::cli
