// SPDX-License-Identifier: Apache-2.0
// The owner's commands that act through the gateway on the safeguards: `pairing`, `approvals`,
// `rollback` and `policy reload`.
// Runs in: CLI (the invoking user's process, unprivileged)

#pragma once

#include <string>
#include <vector>

#include "remote-commands.h"

namespace chitin::cli {

// `command` is "pairing", "approvals", "rollback" or "policy-reload"; `args` follow it.
// Returns the exit code (2 with a message naming the argument on bad usage).
int runControlCommand(const std::string& command, const std::vector<std::string>& args,
                      RemoteContext& context);

}  // namespace chitin::cli
