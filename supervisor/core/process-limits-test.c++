// SPDX-License-Identifier: Apache-2.0
// Tests for the supervisor's own limits (process-limits.h).
// Runs in: test

#include "process-limits.h"

#include <doctest/doctest.h>

namespace chitin {

TEST_CASE("process limits: the soft open-file limit is raised toward the hard one, never lowered") {
  struct rlimit saved;
  REQUIRE(getrlimit(RLIMIT_NOFILE, &saved) == 0);
  rlim_t hard = saved.rlim_max;
  // As a service starts: a low soft limit under a higher hard one.
  struct rlimit low = saved;
  low.rlim_cur = 256;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &low) == 0);

  rlim_t want = hard == RLIM_INFINITY || hard > 2048 ? 2048 : hard;
  CHECK(raiseOpenFileLimit(want) == want);
  struct rlimit now;
  REQUIRE(getrlimit(RLIMIT_NOFILE, &now) == 0);
  CHECK(now.rlim_cur == want);
  CHECK(now.rlim_max == hard);  // the hard limit is not touched
  // Asked for less than is in force: left as it is.
  CHECK(raiseOpenFileLimit(512) == want);

  REQUIRE(setrlimit(RLIMIT_NOFILE, &saved) == 0);
}

}  // namespace chitin
