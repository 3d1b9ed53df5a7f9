// SPDX-License-Identifier: Apache-2.0
// Tests for the agent core's input checks. (Whole turns through real workers are in the e2e
// suite.)
// Runs in: test

#include "agent-core.h"

#include <capnp/message.h>
#include <doctest/doctest.h>
#include <kj/exception.h>

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

// Found by fuzzing (tests/fuzz/worker-messages): a model worker could claim millions of
// zero-size tool calls in a message of a few bytes, and the supervisor built a transcript entry
// (and a transcript line) for each.
TEST_CASE("model worker: a completion with more than 128 tool calls is refused") {
  capnp::MallocMessageBuilder message;
  auto assistant = message.initRoot<rpc::ChatMessage>();
  assistant.setRole(rpc::Role::ASSISTANT);
  assistant.setContent("ok \xff");
  auto calls = assistant.initToolCalls(2);
  calls[0].setId("call_1");
  calls[0].setName("exec");
  calls[0].setArgumentsJson(R"({"command":"ls"})");
  TranscriptEntry entry = assistantEntryFrom(assistant.asReader());
  CHECK(entry.role == "assistant");
  CHECK(entry.content == "ok \xef\xbf\xbd");
  REQUIRE(entry.toolCalls.size() == 2);
  CHECK(entry.toolCalls[0].arguments == R"({"command":"ls"})");

  assistant.initToolCalls(129);
  CHECK_THROWS_AS(assistantEntryFrom(assistant.asReader()), kj::Exception);
  assistant.initToolCalls(128);
  CHECK(assistantEntryFrom(assistant.asReader()).toolCalls.size() == 128);
}

}  // namespace

TEST_CASE("history: an unanswered tool call (crash mid-exchange) is closed as interrupted") {
  auto entry = [](const char* role, const char* content) {
    TranscriptEntry e;
    e.role = role;
    e.content = content;
    return e;
  };
  std::vector<TranscriptEntry> h;
  h.push_back(entry("user", "do two things"));
  h.push_back(entry("assistant", ""));
  h.back().toolCalls = {{"c1", "exec", "{}"}, {"c2", "read", "{}"}};
  h.push_back(entry("tool", "ok"));
  h.back().toolCallId = "c1";
  // ... the gateway was killed before c2's result; then the next turn:
  h.push_back(entry("user", "again"));
  h.push_back(entry("tool", "stray"));
  h.back().toolCallId = "zz";
  h.push_back(entry("assistant", "fine"));
  closeOpenToolCalls(h);
  REQUIRE(h.size() == 6);
  CHECK(h[2].toolCallId == "c1");
  CHECK(h[3].role == "tool");
  CHECK(h[3].toolCallId == "c2");
  CHECK(h[3].isError);
  CHECK(h[3].content.find("interrupted") != std::string::npos);
  CHECK(h[4].content == "again");
  CHECK(h[5].content == "fine");  // the stray result is gone

  std::vector<TranscriptEntry> tail;
  tail.push_back(entry("user", "x"));
  tail.push_back(entry("assistant", ""));
  tail.back().toolCalls = {{"c9", "write", "{}"}};
  closeOpenToolCalls(tail);
  REQUIRE(tail.size() == 3);
  CHECK(tail[2].toolCallId == "c9");
}

}  // namespace chitin
