// SPDX-License-Identifier: Apache-2.0
// The OpenAI-compatible Chat Completions API (OpenAI, Ollama, vLLM, llama.cpp servers):
// request bodies and the assembly of a streamed reply.
// Runs in: worker (sandboxed)
//
// Stream facts this relies on: each `data:` line is one chunk; `delta.content` fragments
// append; `delta.tool_calls[]` fragments are keyed by `index` and their `function.arguments`
// text is concatenated per index, with `id` and `name` sent once; `finish_reason` ends the
// choice; a usage chunk may follow with `choices: []`; `data: [DONE]` ends the stream.

#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "api.h"
#include "untrusted-json.h"

namespace chitin::model {

// `{baseUrl}/chat/completions`: the base URL names the API root, as every compatible server
// documents it ("https://api.openai.com/v1", "http://127.0.0.1:11434/v1").
std::string openAiChatUrl(std::string_view baseUrl);

// The streaming request body. Throws on a malformed request from the supervisor (a tool
// message without the id of the call it answers, a tool schema that is not an object).
std::string buildOpenAiChatBody(rpc::CompletionRequest::Reader request,
                                const BodySettings& settings);

class OpenAiChatAssembler final : public StreamAssembler {
 public:
  explicit OpenAiChatAssembler(TextSink onText) : onText_(std::move(onText)) {}

  bool onEvent(const SseEvent& event) override;
  bool sawTerminator() const override { return done_ || !finishReason_.empty(); }
  Outcome finish() override;

  // Fed through the same assembly as a stream, so both paths agree on what a reply means.
  bool onWholeResponse(std::string_view body) override;

 private:
  struct PartialCall {
    std::string id;
    std::string name;
    std::string arguments;
  };

  bool onChunk(const Json& chunk);
  void onToolCallDelta(const Json& delta);
  bool fail(FailureKind kind, std::string message);

  TextSink onText_;
  std::string content_;
  std::map<int64_t, PartialCall> calls_;
  int64_t lastIndex_ = -1;
  std::string finishReason_;
  bool done_ = false;
  std::optional<Failure> failure_;
  uint32_t inputTokens_ = 0;
  uint32_t outputTokens_ = 0;
};

}  // namespace chitin::model
