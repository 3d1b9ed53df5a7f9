// SPDX-License-Identifier: Apache-2.0
// Tests for the bounds on untrusted JSON text.
// Runs in: test

#include "json-bounds.h"

#include <doctest/doctest.h>

#include <string>

namespace chitin {
namespace {

TEST_CASE("json bounds: depth counts objects and arrays outside strings") {
  CHECK(jsonDepth(R"({"a":[{"b":1}]})", 100) == 3);
  CHECK(jsonDepth("1", 100) == 0);
  // Brackets inside strings, including after escaped quotes and backslashes, do not count.
  CHECK(jsonDepth(R"({"a":"[[[\"[[{"})", 100) == 1);
  CHECK(jsonDepth(R"(["\\",[[]]])", 100) == 3);
}

TEST_CASE("json bounds: the scan stops once past the limit") {
  CHECK(jsonDepth("[[[[[[", 3) == 4);
  std::string deep(300000, '[');
  CHECK(jsonDepth(deep, 64) == 65);
}

TEST_CASE("json bounds: a message names the input and the bound it broke") {
  JsonBounds bounds{1000, 4};
  CHECK(checkJsonBounds(R"({"command":"ls"})", bounds, "tool call arguments") == "");
  std::string deep = R"({"command":"ls","x":)" + std::string(5, '[') + std::string(5, ']') + "}";
  CHECK(checkJsonBounds(deep, bounds, "tool call arguments") ==
        "tool call arguments: objects/arrays nested deeper than the 4 levels allowed");
  std::string big = "\"" + std::string(2000, 'x') + "\"";
  CHECK(checkJsonBounds(big, bounds, "tool call arguments") ==
        "tool call arguments: 2002 bytes, more than the 1000 allowed");
}

}  // namespace
}  // namespace chitin
