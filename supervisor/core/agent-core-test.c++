// SPDX-License-Identifier: Apache-2.0
// Tests for the agent core's input checks. (Whole turns through real workers are in the e2e
// suite.)
// Runs in: test

#include "agent-core.h"

#include <doctest/doctest.h>

#include <vector>

namespace chitin {
namespace {

TEST_CASE("session keys: the documented form is accepted") {
  CHECK(checkSessionKey("agent:main:cli:direct:alice") == "");
  CHECK(checkSessionKey("agent:main:telegram:group:-100123") == "");
  CHECK(checkSessionKey("agent:work_1:webchat:direct:owner@host") == "");
}

TEST_CASE("session keys: anything else is rejected with the expected form") {
  for (std::string bad : std::vector<std::string>{
           "", "agent:main", "agent:main:cli:direct:", "agent:main:cli:dm:alice",
           "agent:Main:cli:direct:alice", "agent:main:cli:direct:../../x",
           "agent:main:cli:direct:a/b", "agent:main:cli:direct:a b",
           std::string("agent:main:cli:direct:") + std::string(200, 'a')}) {
    CAPTURE(bad);
    CHECK(checkSessionKey(bad).find("agent:<agent>:<channel>:direct|group:<id>") !=
          std::string::npos);
  }
}

}  // namespace
}  // namespace chitin
