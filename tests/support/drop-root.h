// SPDX-License-Identifier: Apache-2.0
// Test support: stop being root before anything that must run as the service user.
// Runs in: tests
//
// chitin never runs workers as uid 0 (the spawner refuses), so a test process started as root
// (CI containers) first becomes an unprivileged user for good, like the real service would be.

#pragma once

#include <optional>
#include <string>

namespace chitin::testing {

// If the effective uid is 0: setgroups(0), setgid, setuid to `user` (all of real, effective and
// saved ids), then verifies that uid 0 cannot be regained. Returns why it could not (the user
// does not exist, a call failed); nullopt when the process is now unprivileged. A no-op for a
// process that is not root.
std::optional<std::string> dropRoot(const std::string& user);

// The user named by $CHITIN_TEST_USER, default "chitin-test".
std::string testUser();

}  // namespace chitin::testing
