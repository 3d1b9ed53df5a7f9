// SPDX-License-Identifier: Apache-2.0
// What the owner is shown of a tool call that waits for their confirmation: one line to judge
// it at a glance, and the whole call, nothing left out.
// Runs in: supervisor
//
// Both are display text (common/display-text.h): every control, bidi, invisible character and
// long run of spaces in the arguments is shown as an escape, so `ls -la notes<200 spaces>; rm
// -rf notes .git` reads `exec: ls -la notes\[200 spaces]; rm -rf notes .git`. The line has a
// budget per argument; where an argument does not fit it is cut with "…", and `lineWithHint()`
// ends the line with how many bytes are missing and where to see them, so a line is never
// shortened silently. The full view lists every argument whole, multi-line text as an indented
// block with its size, line count and final newline spelled out.
//
// Arguments reach here parsed and bounded (tool-runner checks the size, 4 MiB, before the
// policy is asked); the full view is at most 6 bytes per argument byte (display-text's bound).

#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>

namespace chitin {

struct CallDescription {
  std::string line;           // one line, e.g. `exec: rm -rf build`; each cut ends in "…"
  uint64_t omittedBytes = 0;  // bytes of the arguments the line does not show (0: all of them)
  std::string full;           // the tool and every argument, whole, one "name: value" a line

  // The line as a person is shown it: when shortened, followed by
  // ` [+N bytes not shown; <whereToSeeAll>]`, e.g. "chitin approvals show 3f2a…".
  std::string lineWithHint(std::string_view whereToSeeAll) const;
};

CallDescription describeCall(const std::string& tool, const nlohmann::json& args);

}  // namespace chitin
