// SPDX-License-Identifier: Apache-2.0
// Bounds on JSON text from the other side (a model, a worker, a client, a platform), checked
// before any parser, printer or walker that recurses touches it.
// Runs in: supervisor and workers
//
// nlohmann's parser is iterative, but printing, comparing and copying a value recurse once per
// level, and so do protobuf's JSON-to-Struct and most code that walks a value. A few hundred
// thousand brackets in one tool call's arguments overflowed the supervisor's only thread (issue
// 8 §1). The scan here is linear, allocation-free and never recurses; it checks nesting and
// size only - the real parser validates everything else afterwards.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace chitin {

// Deepest nesting of objects/arrays in `text` (brackets inside string literals do not count),
// scanning only until `limit` is exceeded: the result is at most limit + 1.
uint32_t jsonDepth(std::string_view text, uint32_t limit);

struct JsonBounds {
  size_t maxBytes;
  uint32_t maxDepth;
};

// "" when `text` is within `bounds`; otherwise a message naming `what` and the bound it broke,
// e.g. "tool call arguments: objects/arrays nested deeper than the 64 levels allowed".
std::string checkJsonBounds(std::string_view text, const JsonBounds& bounds, std::string_view what);

}  // namespace chitin
