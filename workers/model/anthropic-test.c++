// SPDX-License-Identifier: Apache-2.0
// Tests for the Anthropic Messages adapter: request bodies and stream event assembly.
// Runs in: worker (sandboxed) -- test code, runs unconfined.

#include "anthropic.h"

#include <doctest/doctest.h>

#include <utility>
#include <vector>

#include "test-request.h"

namespace chitin::model {
namespace {

using testing::fillRequest;

Outcome assemble(const std::vector<std::pair<std::string, std::string>>& events,
                 std::string* streamed = nullptr) {
  std::string text;
  AnthropicAssembler assembler([&](std::string_view t) { text += t; });
  for (auto& [name, data] : events) {
    if (!assembler.onEvent(SseEvent{name, data})) break;
  }
  if (streamed) *streamed = text;
  return assembler.finish();
}

const std::pair<std::string, std::string> MESSAGE_START = {
    "message_start",
    R"({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",
        "content":[],"model":"m","stop_reason":null,"usage":{"input_tokens":10,
        "cache_read_input_tokens":5,"output_tokens":1}}})"};
const std::pair<std::string, std::string> MESSAGE_STOP = {"message_stop",
                                                          R"({"type":"message_stop"})"};

std::pair<std::string, std::string> messageDelta(const char* stopReason) {
  return {"message_delta", std::string(R"({"type":"message_delta","delta":{"stop_reason":")") +
                               stopReason + R"("},"usage":{"output_tokens":42}})"};
}

TEST_CASE("anthropic: the URL adds /v1/messages unless baseUrl already ends in /v1") {
  CHECK(anthropicMessagesUrl("https://api.anthropic.com") ==
        "https://api.anthropic.com/v1/messages");
  CHECK(anthropicMessagesUrl("http://127.0.0.1:9/v1/") == "http://127.0.0.1:9/v1/messages");
}

TEST_CASE("anthropic: consecutive tool results merge into one user message, ids kept") {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<rpc::CompletionRequest>();
  fillRequest(request, "be brief",
              {{rpc::Role::USER, "list and read"},
               {rpc::Role::ASSISTANT,
                "Sure.",
                {{"toolu_1", "exec", "{\"command\":\"ls\"}"}, {"toolu_2", "read", "not json"}}},
               {rpc::Role::TOOL, "a.txt", {}, "toolu_1"},
               {rpc::Role::TOOL, "denied by policy", {}, "toolu_2", true},
               {rpc::Role::USER, "and now?"},
               {rpc::Role::SYSTEM, "a later note"}},
              {{"exec", "run", "{\"type\":\"object\"}"}});
  Json body = Json::parse(buildAnthropicBody(request, {"claude-test", 1024}));

  CHECK(body["model"] == "claude-test");
  CHECK(body["max_tokens"] == 1024);
  CHECK(body["stream"] == true);
  CHECK(body["system"] == "be brief\n\na later note");
  auto& messages = body["messages"];
  REQUIRE(messages.size() == 3);
  CHECK(messages[0] ==
        Json({{"role", "user"}, {"content", {{{"type", "text"}, {"text", "list and read"}}}}}));
  CHECK(messages[1]["role"] == "assistant");
  REQUIRE(messages[1]["content"].size() == 3);
  CHECK(messages[1]["content"][0] == Json({{"type", "text"}, {"text", "Sure."}}));
  CHECK(messages[1]["content"][1] == Json({{"type", "tool_use"},
                                           {"id", "toolu_1"},
                                           {"name", "exec"},
                                           {"input", {{"command", "ls"}}}}));
  CHECK(messages[1]["content"][2]["input"] == Json::object());
  CHECK(messages[2]["role"] == "user");
  REQUIRE(messages[2]["content"].size() == 3);
  CHECK(messages[2]["content"][0] ==
        Json({{"type", "tool_result"}, {"tool_use_id", "toolu_1"}, {"content", "a.txt"}}));
  CHECK(messages[2]["content"][1] == Json({{"type", "tool_result"},
                                           {"tool_use_id", "toolu_2"},
                                           {"content", "denied by policy"},
                                           {"is_error", true}}));
  CHECK(messages[2]["content"][2] == Json({{"type", "text"}, {"text", "and now?"}}));
  CHECK(body["tools"][0] ==
        Json({{"name", "exec"}, {"description", "run"}, {"input_schema", {{"type", "object"}}}}));
}

TEST_CASE("anthropic: an empty system prompt is omitted and empty texts are not sent") {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<rpc::CompletionRequest>();
  fillRequest(request, "",
              {{rpc::Role::USER, "hi"}, {rpc::Role::ASSISTANT, ""}, {rpc::Role::USER, "there"}});
  Json body = Json::parse(buildAnthropicBody(request, {"m", 1}));
  CHECK_FALSE(body.contains("system"));
  CHECK_FALSE(body.contains("tools"));
  REQUIRE(body["messages"].size() == 1);
  CHECK(body["messages"][0]["content"].size() == 2);
}

TEST_CASE("anthropic: text before and after a tool_use, input streamed in fragments") {
  std::string streamed;
  auto outcome = assemble(
      {MESSAGE_START,
       {"content_block_start",
        R"({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}})"},
       {"ping", R"({"type": "ping"})"},
       {"content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Let me "}})"},
       {"content_block_delta",
        R"({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"look."}})"},
       {"content_block_stop", R"({"type":"content_block_stop","index":0})"},
       {"content_block_start",
        R"({"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_9","name":"exec","input":{}}})"},
       {"content_block_delta",
        R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}})"},
       {"content_block_delta",
        R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"command\": \"l"}})"},
       {"content_block_delta",
        R"({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"s\"}"}})"},
       {"content_block_stop", R"({"type":"content_block_stop","index":1})"},
       {"some_future_event", R"({"type":"some_future_event","x":1})"},
       {"content_block_start",
        R"({"type":"content_block_start","index":2,"content_block":{"type":"text","text":"Then done."}})"},
       {"content_block_stop", R"({"type":"content_block_stop","index":2})"},
       messageDelta("tool_use"),
       MESSAGE_STOP},
      &streamed);
  REQUIRE_FALSE(outcome.failure);
  CHECK(streamed == "Let me look.Then done.");
  CHECK(outcome.content == "Let me look.\n\nThen done.");
  REQUIRE(outcome.toolCalls.size() == 1);
  CHECK(outcome.toolCalls[0].id == "toolu_9");
  CHECK(outcome.toolCalls[0].name == "exec");
  CHECK(outcome.toolCalls[0].argumentsJson == R"({"command": "ls"})");
  CHECK(outcome.stopReason == "tool_use");
  CHECK(outcome.inputTokens == 15);
  CHECK(outcome.outputTokens == 42);
}

TEST_CASE("anthropic: a tool_use with no input deltas has arguments {}") {
  auto outcome = assemble(
      {MESSAGE_START,
       {"content_block_start",
        R"({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"now","input":{}}})"},
       {"content_block_stop", R"({"type":"content_block_stop","index":0})"},
       messageDelta("tool_use"),
       MESSAGE_STOP});
  REQUIRE_FALSE(outcome.failure);
  REQUIRE(outcome.toolCalls.size() == 1);
  CHECK(outcome.toolCalls[0].argumentsJson == "{}");
}

TEST_CASE("anthropic: an error event after HTTP 200 fails the call with its type") {
  auto outcome = assemble(
      {MESSAGE_START,
       {"error",
        R"({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})"}});
  REQUIRE(outcome.failure);
  CHECK(outcome.failure->kind == FailureKind::SERVER_ERROR);
  CHECK(outcome.failure->message.find("overloaded_error: Overloaded") != std::string::npos);
}

TEST_CASE("anthropic: stop_reason refusal is a refused failure") {
  auto outcome = assemble({MESSAGE_START, messageDelta("refusal"), MESSAGE_STOP});
  REQUIRE(outcome.failure);
  CHECK(outcome.failure->kind == FailureKind::REFUSED);
}

TEST_CASE("anthropic: a stream without message_stop is truncated") {
  auto outcome = assemble({MESSAGE_START, messageDelta("end_turn")});
  REQUIRE(outcome.failure);
  CHECK(outcome.failure->kind == FailureKind::TRUNCATED);
}

TEST_CASE("anthropic: a delta for a block never started, or non-JSON data, is a bad response") {
  auto outcome = assemble(
      {MESSAGE_START,
       {"content_block_delta",
        R"({"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"x"}})"}});
  REQUIRE(outcome.failure);
  CHECK(outcome.failure->kind == FailureKind::BAD_RESPONSE);

  outcome = assemble({MESSAGE_START, {"content_block_delta", "{\"type\":"}});
  REQUIRE(outcome.failure);
  CHECK(outcome.failure->kind == FailureKind::BAD_RESPONSE);
}

}  // namespace
}  // namespace chitin::model
