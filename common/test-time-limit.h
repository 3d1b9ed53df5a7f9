// SPDX-License-Identifier: Apache-2.0
// Wall-clock limits in tests that guard against a super-linear path (on their inputs a quadratic
// one takes minutes, not seconds). A sanitizer build runs unoptimized, instrumented code several
// times slower, so its limits are scaled; the guard still tells linear from quadratic.
// Runs in: tests

#pragma once

#include <chrono>

namespace chitin::testing {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr int SLOW_BUILD_FACTOR = 10;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr int SLOW_BUILD_FACTOR = 10;
#else
inline constexpr int SLOW_BUILD_FACTOR = 1;
#endif
#else
inline constexpr int SLOW_BUILD_FACTOR = 1;
#endif

// `limit` in an optimized build, scaled in a sanitizer build.
constexpr std::chrono::milliseconds timeLimit(std::chrono::milliseconds limit) {
  return limit * SLOW_BUILD_FACTOR;
}

}  // namespace chitin::testing
