// SPDX-License-Identifier: Apache-2.0
// The Anthropic Messages API: request bodies and the assembly of a streamed reply.
// Runs in: worker (sandboxed)
//
// Request facts this relies on: `system` is top-level; `messages` alternate user/assistant
// and start with user; tool calls are assistant `tool_use` blocks whose `input` is an object;
// tool results are `tool_result` blocks inside a *user* message, so consecutive results (and
// any user text after them) merge into one user message; `max_tokens` is required.
// Stream facts: message_start, then per block content_block_start / content_block_delta
// (text_delta, input_json_delta) / content_block_stop, then message_delta (stop_reason,
// usage) and message_stop, the terminator. `ping` may come anywhere; `error` (e.g.
// overloaded_error) may arrive after HTTP 200; unknown events are skipped.

#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "api.h"
#include "untrusted-json.h"

namespace chitin::model {

// The version of the Messages API whose wire format this file implements.
constexpr const char ANTHROPIC_VERSION[] = "2023-06-01";

// `{baseUrl}/messages` when baseUrl already ends in "/v1", else `{baseUrl}/v1/messages`, so
// both "https://api.anthropic.com" (the SDKs' form) and ".../v1" (the OpenAI form) work.
std::string anthropicMessagesUrl(std::string_view baseUrl);

// The streaming request body. Throws on a malformed request from the supervisor.
std::string buildAnthropicBody(rpc::CompletionRequest::Reader request,
                               const BodySettings& settings);

class AnthropicAssembler final : public StreamAssembler {
 public:
  explicit AnthropicAssembler(TextSink onText) : onText_(std::move(onText)) {}

  bool onEvent(const SseEvent& event) override;
  bool sawTerminator() const override { return done_; }
  // We always ask for a stream and the API always sends one: anything else is wrong.
  bool onWholeResponse(std::string_view body) override;
  Outcome finish() override;

 private:
  struct Block {
    enum class Type { text, toolUse, other } type = Type::other;
    std::string text;  // text blocks
    std::string id;    // tool_use blocks
    std::string name;
    std::string startInput;   // tool_use input given whole in content_block_start
    std::string partialJson;  // tool_use input streamed as input_json_delta fragments
  };

  bool onBlockDelta(const Json& event);
  bool fail(FailureKind kind, std::string message);

  TextSink onText_;
  std::map<int64_t, Block> blocks_;
  std::string stopReason_;
  bool started_ = false;
  bool done_ = false;
  std::optional<Failure> failure_;
  uint32_t inputTokens_ = 0;
  uint32_t outputTokens_ = 0;
};

}  // namespace chitin::model
