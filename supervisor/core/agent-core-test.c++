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

// Issue 8 §1: arguments nested a few hundred thousand levels deep reached the guard, whose
// JSON printing recursed once per level and overflowed the supervisor's only thread.
TEST_CASE("model reply: arguments nested past the bound are refused before anything parses them") {
  capnp::MallocMessageBuilder message;
  auto assistant = message.initRoot<rpc::ChatMessage>();
  assistant.setRole(rpc::Role::ASSISTANT);
  auto calls = assistant.initToolCalls(2);
  calls[0].setId("call_1");
  calls[0].setName("read");
  calls[0].setArgumentsJson(R"({"path":"notes.md"})");
  calls[1].setId("call_2");
  calls[1].setName("exec");
  std::string nested = std::string(64, '[') + std::string(64, ']');
  calls[1].setArgumentsJson(R"({"command":"ls","x":)" + nested.substr(1, 126) + "}");
  CHECK(checkAssistantMessage(assistant.asReader()) == "");  // 64 levels in all: allowed

  std::string deep =
      R"({"command":"ls","x":)" + std::string(300000, '[') + std::string(300000, ']') + "}";
  calls[1].setArgumentsJson(deep);
  CHECK(checkAssistantMessage(assistant.asReader()) ==
        "tool call 2 (exec): arguments: objects/arrays nested deeper than the 64 levels allowed");
}

TEST_CASE("model reply: oversized text, arguments, names and ids are refused, naming the call") {
  capnp::MallocMessageBuilder message;
  auto assistant = message.initRoot<rpc::ChatMessage>();
  assistant.setContent(std::string(MAX_ASSISTANT_TEXT_BYTES + 1, 'a'));
  CHECK(checkAssistantMessage(assistant.asReader()).find("its text is") == 0);
  assistant.setContent("fine");

  auto calls = assistant.initToolCalls(3);
  for (int i = 0; i < 3; ++i) {
    calls[i].setId("c");
    calls[i].setName("write");
    calls[i].setArgumentsJson(R"({"path":"a","content":")" + std::string(3 << 20, 'x') + "\"}");
  }
  CHECK(checkAssistantMessage(assistant.asReader()).find("together are more than") !=
        std::string::npos);
  calls[0].setArgumentsJson("\"" + std::string((4 << 20) + 1, 'x') + "\"");
  CHECK(checkAssistantMessage(assistant.asReader()).find("tool call 1 (write): arguments: ") == 0);
  calls[0].setArgumentsJson("{}");
  calls[0].setName(std::string(65, 'n'));
  CHECK(checkAssistantMessage(assistant.asReader()).find("tool call 1: the tool name") == 0);
  calls[0].setName("");
  CHECK(checkAssistantMessage(assistant.asReader()).find("tool call 1: the tool name") == 0);
  calls[0].setName("write");
  calls[0].setId(std::string(257, 'i'));
  CHECK(checkAssistantMessage(assistant.asReader()).find("its id is longer") != std::string::npos);
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
