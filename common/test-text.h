// SPDX-License-Identifier: Apache-2.0
// Text helpers the unit tests share: one copy each, since test files compile as unity files
// (meson.build), where two files' private helpers of the same name collide.
// Runs in: test

#pragma once

#include <cstddef>
#include <string>

namespace chitin::testing {

// Whether `needle` occurs in `text`.
inline bool has(const std::string& text, const std::string& needle) {
  return text.find(needle) != std::string::npos;
}

// `s`, `n` times over.
inline std::string repeat(const std::string& s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace chitin::testing
