// SPDX-License-Identifier: Apache-2.0
// Tests for slowing down failed authentication, with a hand-moved clock.
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

TEST_CASE("auth limiter: failures past the free ones wait, doubling, up to the window") {
  ManualClock clock;
  AuthLimiter limiter(3, 60s, clock.fn());
  CHECK(limiter.recordFailure("127.0.0.1") == 0ms);
  CHECK(limiter.recordFailure("127.0.0.1") == 0ms);
  CHECK(limiter.recordFailure("127.0.0.1") == 250ms);  // the third of three: slowed
  CHECK(limiter.recordFailure("127.0.0.1") == 500ms);
  CHECK(limiter.recordFailure("127.0.0.1") == 1000ms);
  for (int i = 0; i < 20; ++i) limiter.recordFailure("127.0.0.1");
  CHECK(limiter.recordFailure("127.0.0.1") == 60000ms);
  CHECK(limiter.heldConnections() == 24);
}

TEST_CASE("auth limiter: addresses are counted separately, and old failures are forgotten") {
  ManualClock clock;
  AuthLimiter limiter(2, 60s, clock.fn());
  limiter.recordFailure("10.0.0.1");
  CHECK(limiter.recordFailure("10.0.0.2") == 0ms);
  CHECK(limiter.recordFailure("10.0.0.1") > 0ms);
  clock.now += 61s;
  CHECK(limiter.recordFailure("10.0.0.1") == 0ms);
}

TEST_CASE("auth limiter: a success forgets the address's failures") {
  ManualClock clock;
  AuthLimiter limiter(2, 60s, clock.fn());
  limiter.recordFailure("a");
  limiter.recordFailure("a");
  limiter.recordSuccess("a");
  CHECK(limiter.recordFailure("a") == 0ms);
}

TEST_CASE("auth limiter: at most so many failing connections are held") {
  ManualClock clock;
  AuthLimiter limiter(1, 60s, clock.fn());
  for (size_t i = 0; i < AuthLimiter::MAX_HELD_CONNECTIONS; ++i) {
    CHECK(limiter.recordFailure("a") > 0ms);
  }
  CHECK(limiter.recordFailure("a") == 0ms);  // answered at once
  limiter.release();
  CHECK(limiter.recordFailure("a") > 0ms);
}

TEST_CASE("auth limiter: zero free failures disables slowing") {
  ManualClock clock;
  AuthLimiter limiter(0, 60s, clock.fn());
  for (int i = 0; i < 100; ++i) CHECK(limiter.recordFailure("a") == 0ms);
}

TEST_CASE("auth limiter: the table is bounded") {
  ManualClock clock;
  AuthLimiter limiter(2, 60s, clock.fn());
  for (size_t i = 0; i < AuthLimiter::MAX_TRACKED_ADDRESSES + 100; ++i) {
    clock.now += 1ms;
    limiter.recordFailure("flood-" + std::to_string(i));
  }
  CHECK(limiter.trackedAddresses() == AuthLimiter::MAX_TRACKED_ADDRESSES);
}

}  // namespace
}  // namespace chitin::gateway
