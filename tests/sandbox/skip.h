// SPDX-License-Identifier: Apache-2.0
// A sandbox test case that cannot run on this host (a server or a runtime it needs is missing)
// says why and is counted; main() then exits 77, meson's SKIP, instead of 0: a missing
// prerequisite is never reported as a pass. Doctest itself has no run-time skip.
// Runs in: tests

#pragma once

#include <doctest/doctest.h>
#include <stdio.h>

#include <atomic>
#include <string>

namespace chitin::testing {

inline std::atomic<int>& skippedCases() {
  static std::atomic<int> count{0};
  return count;
}

// Records the skip and prints it; the case returns right after.
inline void skipCase(const std::string& why) {
  skippedCases()++;
  const doctest::ContextOptions* options = doctest::getContextOptions();
  const char* name = options && options->currentTest ? options->currentTest->m_name : "?";
  fprintf(stderr, "SKIP: \"%s\": %s\n", name, why.c_str());
}

}  // namespace chitin::testing
