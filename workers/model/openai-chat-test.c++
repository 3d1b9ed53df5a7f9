// SPDX-License-Identifier: Apache-2.0
// Tests for the OpenAI-compatible Chat Completions adapter: request bodies and stream assembly.
// Runs in: worker (sandboxed) -- test code, runs unconfined.

#include "openai-chat.h"

#include <doctest/doctest.h>
#include <kj/exception.h>

#include <vector>

#include "test-request.h"

namespace chitin::model {
namespace {

using testing::fillRequest;
using testing::TestMessage;

Outcome assemble(const std::vector<std::string>& dataLines, std::string* streamed = nullptr) {
  std::string text;
  OpenAiChatAssembler assembler([&](std::string_view t) { text += t; });
  for (auto& data : dataLines) {
    if (!assembler.onEvent(SseEvent{"", data})) break;
  }
  if (streamed) *streamed = text;
  return assembler.finish();
}

TEST_CASE("openai-chat: the URL is {baseUrl}/chat/completions") {
  CHECK(openAiChatUrl("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1/chat/completions");
  CHECK(openAiChatUrl("https://api.openai.com/v1/") ==
        "https://api.openai.com/v1/chat/completions");
}

TEST_CASE("openai-chat: the request carries system, tool calls with ids, tool results and tools") {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<rpc::CompletionRequest>();
  fillRequest(request, "be brief",
              {{rpc::Role::USER, "list files"},
               {rpc::Role::ASSISTANT,
                "",
                {{"call_1", "exec", "{\"command\":\"ls\"}"}, {"call_2", "read", ""}}},
               {rpc::Role::TOOL, "a.txt", {}, "call_1"},
               {rpc::Role::TOOL, "denied", {}, "call_2", true},
               {rpc::Role::ASSISTANT, "two files"}},
              {{"exec", "run a command", "{\"type\":\"object\"}"}, {"noargs", "", ""}});
  Json body = Json::parse(buildOpenAiChatBody(request, {"gpt-test", 77}));

  CHECK(body["model"] == "gpt-test");
  CHECK(body["max_tokens"] == 77);
  CHECK(body["stream"] == true);
  CHECK(body["stream_options"]["include_usage"] == true);
  auto& messages = body["messages"];
  REQUIRE(messages.size() == 6);
  CHECK(messages[0] == Json({{"role", "system"}, {"content", "be brief"}}));
  CHECK(messages[1] == Json({{"role", "user"}, {"content", "list files"}}));
  CHECK(messages[2]["content"].is_null());
  CHECK(messages[2]["tool_calls"][0] ==
        Json({{"id", "call_1"},
              {"type", "function"},
              {"function", {{"name", "exec"}, {"arguments", "{\"command\":\"ls\"}"}}}}));
  CHECK(messages[2]["tool_calls"][1]["function"]["arguments"] == "{}");
  CHECK(messages[3] == Json({{"role", "tool"}, {"tool_call_id", "call_1"}, {"content", "a.txt"}}));
  CHECK(messages[4]["tool_call_id"] == "call_2");
  CHECK(messages[5] == Json({{"role", "assistant"}, {"content", "two files"}}));
  REQUIRE(body["tools"].size() == 2);
  CHECK(body["tools"][0] == Json({{"type", "function"},
                                  {"function",
                                   {{"name", "exec"},
                                    {"description", "run a command"},
                                    {"parameters", {{"type", "object"}}}}}}));
  CHECK(body["tools"][1]["function"]["parameters"] ==
        Json({{"type", "object"}, {"properties", Json::object()}}));
}

TEST_CASE("openai-chat: invalid UTF-8 in forwarded text is replaced, not fatal") {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<rpc::CompletionRequest>();
  fillRequest(request, "", {{rpc::Role::USER, "bad \xFF byte"}});
  Json body = Json::parse(buildOpenAiChatBody(request, {"m", 1}));
  CHECK(body["messages"][0]["content"] == "bad \xEF\xBF\xBD byte");
}

TEST_CASE("openai-chat: a tool message without toolCallId or a non-object schema is refused") {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<rpc::CompletionRequest>();
  fillRequest(request, "", {{rpc::Role::TOOL, "orphan"}});
  CHECK_THROWS_AS(buildOpenAiChatBody(request, {"m", 1}), kj::Exception);

  fillRequest(request, "", {{rpc::Role::USER, "hi"}}, {{"t", "", "[1,2]"}});
  CHECK_THROWS_AS(buildOpenAiChatBody(request, {"m", 1}), kj::Exception);
  // A refused schema is not remembered as checked: refused again on the next turn.
  CHECK_THROWS_AS(buildOpenAiChatBody(request, {"m", 1}), kj::Exception);
  // Nor does a remembered good schema vouch for another text.
  fillRequest(request, "", {{rpc::Role::USER, "hi"}}, {{"t", "", R"({"type":"object"})"}});
  CHECK_NOTHROW(buildOpenAiChatBody(request, {"m", 1}));
  fillRequest(request, "", {{rpc::Role::USER, "hi"}}, {{"t", "", R"({"type":"object"}x)"}});
  CHECK_THROWS_AS(buildOpenAiChatBody(request, {"m", 1}), kj::Exception);
}

TEST_CASE("openai-chat: a message with a role this build does not know is refused") {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<rpc::CompletionRequest>();
  fillRequest(request, "", {{rpc::Role::USER, "hi"}, {rpc::Role::USER, "there"}});
  request.getMessages()[1].setRole(static_cast<rpc::Role>(99));
  CHECK_THROWS_AS(buildOpenAiChatBody(request, {"m", 1}), kj::Exception);
}

TEST_CASE("openai-chat: every text is a well-formed JSON string, whatever it holds") {
  capnp::MallocMessageBuilder message;
  auto request = message.initRoot<rpc::CompletionRequest>();
  std::string awkward =
      "quote \" backslash \\ newline \n tab \t nul-free \x01\x1f del \x7f "
      "caf\xC3\xA9 \xF0\x9F\x98\x80 lone \x80 overlong \xC0\xAF cut \xE2\x82";
  fillRequest(request, awkward,
              {{rpc::Role::USER, awkward},
               {rpc::Role::ASSISTANT, awkward, {{awkward, awkward, awkward}}},
               {rpc::Role::TOOL, awkward, {}, awkward}},
              {{awkward, awkward, ""}});
  std::string model = awkward;
  Json body = Json::parse(buildOpenAiChatBody(request, {model, 5}));
  std::string expected =
      "quote \" backslash \\ newline \n tab \t nul-free \x01\x1f del \x7f "
      "caf\xC3\xA9 \xF0\x9F\x98\x80 lone \xEF\xBF\xBD overlong "
      "\xEF\xBF\xBD\xEF\xBF\xBD cut \xEF\xBF\xBD\xEF\xBF\xBD";
  CHECK(body["model"] == expected);
  CHECK(body["messages"][0]["content"] == expected);
  CHECK(body["messages"][1]["content"] == expected);
  CHECK(body["messages"][2]["content"] == expected);
  CHECK(body["messages"][2]["tool_calls"][0]["id"] == expected);
  CHECK(body["messages"][2]["tool_calls"][0]["function"]["name"] == expected);
  CHECK(body["messages"][2]["tool_calls"][0]["function"]["arguments"] == expected);
  CHECK(body["messages"][3]["tool_call_id"] == expected);
  CHECK(body["messages"][3]["content"] == expected);
  CHECK(body["tools"][0]["function"]["name"] == expected);
  CHECK(body["tools"][0]["function"]["description"] == expected);
}

TEST_CASE("openai-chat: content fragments stream in order and form the message") {
  std::string streamed;
  auto outcome =
      assemble({R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})",
                R"({"choices":[{"index":0,"delta":{"content":"Hel"}}]})",
                R"({"choices":[{"index":0,"delta":{"content":"lo"}}]})",
                R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})",
                R"({"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2}})", "[DONE]"},
               &streamed);
  REQUIRE_FALSE(outcome.failure);
  CHECK(streamed == "Hello");
  CHECK(outcome.content == "Hello");
  CHECK(outcome.toolCalls.empty());
  CHECK(outcome.stopReason == "stop");
  CHECK(outcome.inputTokens == 12);
  CHECK(outcome.outputTokens == 2);
}

TEST_CASE("openai-chat: interleaved parallel tool calls are reassembled per index") {
  auto outcome = assemble(
      {R"({"choices":[{"index":0,"delta":{"content":"Checking."}}]})",
       R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"exec","arguments":""}}]}}]})",
       R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"read","arguments":"{\"pa"}}]}}]})",
       R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"command\""}}]}}]})",
       R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"th\":\"x\"}"}}]}}]})",
       R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":\"ls\"}"}}]}}]})",
       R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})",
       R"({"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9}})", "[DONE]"});
  REQUIRE_FALSE(outcome.failure);
  CHECK(outcome.content == "Checking.");
  CHECK(outcome.stopReason == "tool_calls");
  REQUIRE(outcome.toolCalls.size() == 2);
  CHECK(outcome.toolCalls[0].id == "call_a");
  CHECK(outcome.toolCalls[0].name == "exec");
  CHECK(outcome.toolCalls[0].argumentsJson == R"({"command":"ls"})");
  CHECK(outcome.toolCalls[1].id == "call_b");
  CHECK(outcome.toolCalls[1].name == "read");
  CHECK(outcome.toolCalls[1].argumentsJson == R"({"path":"x"})");
}

TEST_CASE("openai-chat: empty arguments become {} and invalid JSON arguments are kept as sent") {
  auto outcome = assemble(
      {R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c0","function":{"name":"now"}}]}}]})",
       R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c1","function":{"name":"x","arguments":"{not json"}}]}}]})",
       R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})", "[DONE]"});
  REQUIRE_FALSE(outcome.failure);
  REQUIRE(outcome.toolCalls.size() == 2);
  CHECK(outcome.toolCalls[0].argumentsJson == "{}");
  CHECK(outcome.toolCalls[1].argumentsJson == "{not json");
}

TEST_CASE("openai-chat: whole tool calls without an index (Ollama style) stay separate") {
  auto outcome = assemble(
      {R"({"choices":[{"delta":{"tool_calls":[{"id":"a","function":{"name":"f","arguments":{"x":1}}},{"id":"b","function":{"name":"g","arguments":"{}"}}]},"finish_reason":"tool_calls"}]})",
       "[DONE]"});
  REQUIRE_FALSE(outcome.failure);
  REQUIRE(outcome.toolCalls.size() == 2);
  CHECK(outcome.toolCalls[0].argumentsJson == R"({"x":1})");
  CHECK(outcome.toolCalls[1].id == "b");
}

TEST_CASE("openai-chat: a stream that ends before finish_reason and [DONE] is truncated") {
  auto outcome = assemble({R"({"choices":[{"index":0,"delta":{"content":"Hel"}}]})"});
  REQUIRE(outcome.failure);
  CHECK(outcome.failure->kind == FailureKind::TRUNCATED);
}

TEST_CASE("openai-chat: finish_reason without [DONE] is complete (servers that omit it)") {
  auto outcome =
      assemble({R"({"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"length"}]})"});
  REQUIRE_FALSE(outcome.failure);
  CHECK(outcome.content == "ok");
  CHECK(outcome.stopReason == "length");
}

TEST_CASE("openai-chat: a chunk that is not JSON is a bad response and stops reading") {
  OpenAiChatAssembler assembler(nullptr);
  CHECK(assembler.onEvent({"", R"({"choices":[{"index":0,"delta":{"content":"a"}}]})"}));
  CHECK_FALSE(assembler.onEvent({"", "{\"choices\": [oops"}));
  auto outcome = assembler.finish();
  REQUIRE(outcome.failure);
  CHECK(outcome.failure->kind == FailureKind::BAD_RESPONSE);
  CHECK(outcome.failure->message.find("not a JSON object") != std::string::npos);
}

TEST_CASE("openai-chat: an error chunk mid-stream fails the call with the provider's message") {
  auto outcome = assemble({R"({"choices":[{"index":0,"delta":{"content":"a"}}]})",
                           R"({"error":{"message":"model overloaded","type":"server_error"}})"});
  REQUIRE(outcome.failure);
  CHECK(outcome.failure->kind == FailureKind::SERVER_ERROR);
  CHECK(outcome.failure->message.find("model overloaded") != std::string::npos);
}

TEST_CASE("openai-chat: finish_reason content_filter is a refusal") {
  auto outcome = assemble(
      {R"({"choices":[{"index":0,"delta":{},"finish_reason":"content_filter"}]})", "[DONE]"});
  REQUIRE(outcome.failure);
  CHECK(outcome.failure->kind == FailureKind::REFUSED);
}

TEST_CASE("openai-chat: a non-streamed reply is assembled like a stream") {
  OpenAiChatAssembler assembler(nullptr);
  CHECK(assembler.onWholeResponse(R"({"choices":[{"index":0,"message":{"role":"assistant",
      "content":null,"tool_calls":[{"id":"c9","type":"function","function":{"name":"exec",
      "arguments":"{\"command\":\"pwd\"}"}}]},"finish_reason":"tool_calls"}],
      "usage":{"prompt_tokens":3,"completion_tokens":4}})"));
  auto outcome = assembler.finish();
  REQUIRE_FALSE(outcome.failure);
  REQUIRE(outcome.toolCalls.size() == 1);
  CHECK(outcome.toolCalls[0].id == "c9");
  CHECK(outcome.toolCalls[0].argumentsJson == R"({"command":"pwd"})");
  CHECK(outcome.inputTokens == 3);
}

// Found by fuzzing (tests/fuzz/openai-stream): a chunk with a stray 0x97 byte used to put the
// byte into the failure message, which travels as Text and is shown to the user.
TEST_CASE("openai-chat: an error message quoting the provider's bytes is valid UTF-8") {
  Outcome outcome = assemble({"{\"choices\": [{\"index\": \x97}]}"});
  REQUIRE(outcome.failure);
  CHECK(outcome.failure->message ==
        "the provider sent a stream chunk that is not a JSON object: {\"choices\": [{\"index\": "
        "?}]}");
  CHECK(excerpt("a\tb\xc3\xa9\xff\xe2\x82", 80) == "a?b\xc3\xa9???");
  CHECK(excerpt("\xc3\xa9\xc3\xa9", 3) == "\xc3\xa9...");
}

}  // namespace
}  // namespace chitin::model
