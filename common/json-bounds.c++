// SPDX-License-Identifier: Apache-2.0
// Bounds on untrusted JSON text (see json-bounds.h).
// Runs in: supervisor and workers

#include "json-bounds.h"

namespace chitin {

uint32_t jsonDepth(std::string_view text, uint32_t limit) {
  uint32_t depth = 0, deepest = 0;
  bool inString = false, escaped = false;
  for (char c : text) {
    if (inString) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        inString = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        inString = true;
        break;
      case '{':
      case '[':
        if (++depth > deepest) {
          deepest = depth;
          if (deepest > limit) return deepest;
        }
        break;
      case '}':
      case ']':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

std::string checkJsonBounds(std::string_view text, const JsonBounds& bounds,
                            std::string_view what) {
  if (text.size() > bounds.maxBytes) {
    return std::string(what) + ": " + std::to_string(text.size()) + " bytes, more than the " +
           std::to_string(bounds.maxBytes) + " allowed";
  }
  if (jsonDepth(text, bounds.maxDepth) > bounds.maxDepth) {
    return std::string(what) + ": objects/arrays nested deeper than the " +
           std::to_string(bounds.maxDepth) + " levels allowed";
  }
  return "";
}

}  // namespace chitin
