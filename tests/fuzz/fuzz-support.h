// SPDX-License-Identifier: Apache-2.0
// What the fuzz targets share: checks that stop the run with a message (a failed check is a
// finding, like a sanitizer report), and quiet logging.
// Runs in: test (libFuzzer targets, tests/fuzz/)

#pragma once

#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

// Unlike assert(), active in every build type: the fuzz build is not a debug build.
#define FUZZ_CHECK(condition, what)                                                      \
  do {                                                                                   \
    if (!(condition)) {                                                                  \
      std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n  %s\n", __FILE__, __LINE__, \
                   #condition, std::string_view(what).data());                           \
      std::abort();                                                                      \
    }                                                                                    \
  } while (false)

namespace chitin::fuzz {

// The supervisor logs every refused frame; at thousands of inputs a second that is only noise.
inline void quietLogs() { spdlog::set_level(spdlog::level::off); }

}  // namespace chitin::fuzz
