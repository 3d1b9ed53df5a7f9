// SPDX-License-Identifier: Apache-2.0
// Tests for the failed-authentication rate limiter, with a hand-moved clock.
// Runs in: supervisor (tests)

#include "auth-limiter.h"

#include <doctest/doctest.h>

namespace chitin::gateway {
namespace {

using namespace std::chrono_literals;

struct ManualClock {
  std::chrono::steady_clock::time_point now{std::chrono::hours(1)};
  AuthLimiter::Clock fn() {
    return [this] { return now; };
  }
};

TEST_CASE("auth limiter: the Nth failure within the window locks the address out") {
  ManualClock clock;
  AuthLimiter limiter(5, 60s, clock.fn());
  for (int i = 0; i < 4; ++i) {
    limiter.recordFailure("127.0.0.1");
    CHECK(limiter.lockedFor("127.0.0.1") == 0);
    clock.now += 1s;
  }
  limiter.recordFailure("127.0.0.1");
  CHECK(limiter.lockedFor("127.0.0.1") == 60);
  clock.now += 59s;
  CHECK(limiter.lockedFor("127.0.0.1") == 1);
  clock.now += 500ms;
  CHECK(limiter.lockedFor("127.0.0.1") == 1);  // rounded up, never 0 while locked
  clock.now += 500ms;
  CHECK(limiter.lockedFor("127.0.0.1") == 0);
}

TEST_CASE("auth limiter: addresses are counted separately") {
  ManualClock clock;
  AuthLimiter limiter(2, 60s, clock.fn());
  limiter.recordFailure("10.0.0.1");
  limiter.recordFailure("10.0.0.2");
  CHECK(limiter.lockedFor("10.0.0.1") == 0);
  limiter.recordFailure("10.0.0.1");
  CHECK(limiter.lockedFor("10.0.0.1") == 60);
  CHECK(limiter.lockedFor("10.0.0.2") == 0);
}

TEST_CASE("auth limiter: failures older than the window are forgotten") {
  ManualClock clock;
  AuthLimiter limiter(3, 60s, clock.fn());
  limiter.recordFailure("a");
  limiter.recordFailure("a");
  clock.now += 61s;
  limiter.recordFailure("a");
  CHECK(limiter.lockedFor("a") == 0);
  limiter.recordFailure("a");
  CHECK(limiter.lockedFor("a") == 0);
  limiter.recordFailure("a");
  CHECK(limiter.lockedFor("a") == 60);
}

TEST_CASE("auth limiter: after a lockout ends counting starts over") {
  ManualClock clock;
  AuthLimiter limiter(2, 10s, clock.fn());
  limiter.recordFailure("a");
  limiter.recordFailure("a");
  CHECK(limiter.lockedFor("a") == 10);
  clock.now += 10s;
  CHECK(limiter.lockedFor("a") == 0);
  limiter.recordFailure("a");
  CHECK(limiter.lockedFor("a") == 0);
}

TEST_CASE("auth limiter: success forgets earlier failures but never ends a lockout") {
  ManualClock clock;
  AuthLimiter limiter(2, 60s, clock.fn());
  limiter.recordFailure("a");
  limiter.recordSuccess("a");
  limiter.recordFailure("a");
  CHECK(limiter.lockedFor("a") == 0);
  limiter.recordFailure("a");
  CHECK(limiter.lockedFor("a") == 60);
  limiter.recordSuccess("a");
  CHECK(limiter.lockedFor("a") == 60);
}

TEST_CASE("auth limiter: zero failures-before-lockout disables it") {
  ManualClock clock;
  AuthLimiter limiter(0, 60s, clock.fn());
  for (int i = 0; i < 100; ++i) limiter.recordFailure("a");
  CHECK(limiter.lockedFor("a") == 0);
}

TEST_CASE("auth limiter: the table is bounded, and a locked-out address is not evicted first") {
  ManualClock clock;
  AuthLimiter limiter(2, 60s, clock.fn());
  limiter.recordFailure("victim-of-lockout");
  limiter.recordFailure("victim-of-lockout");
  REQUIRE(limiter.lockedFor("victim-of-lockout") == 60);
  for (size_t i = 0; i < AuthLimiter::MAX_TRACKED_ADDRESSES + 100; ++i) {
    clock.now += 1ms;
    limiter.recordFailure("flood-" + std::to_string(i));
  }
  CHECK(limiter.trackedAddresses() == AuthLimiter::MAX_TRACKED_ADDRESSES);
  CHECK(limiter.lockedFor("victim-of-lockout") > 0);
  CHECK(limiter.lockedFor("victim-of-lockout") < 60);
}

}  // namespace
}  // namespace chitin::gateway
