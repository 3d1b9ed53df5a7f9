// SPDX-License-Identifier: Apache-2.0
// The OpenAI-compatible embeddings API (POST <base>/embeddings): the request body, and the reply
// read without trusting its shape. OpenAI, Ollama, vLLM and llama.cpp's server all speak it.
// Runs in: worker (sandboxed)
//
// The reply is {"data":[{"index":i,"embedding":[...]}...],"usage":{"prompt_tokens":n}}. It is
// believed only when it holds exactly one vector for each text sent, each at its own index, all
// of one dimension (1..maxEmbeddingDimensions) and every component a finite number; anything
// else is a bad response, never a partial answer.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "api.h"

namespace chitin::model {

std::string openAiEmbeddingsUrl(std::string_view baseUrl);

// `texts` must already be within model.capnp's bounds (the server checks them first).
std::string buildOpenAiEmbeddingsBody(const std::string& model,
                                      const std::vector<std::string>& texts);

// Embeddings are one JSON reply, never a stream: an event stream is a bad response.
class OpenAiEmbeddingsAssembler final : public StreamAssembler {
 public:
  explicit OpenAiEmbeddingsAssembler(size_t expectedTexts) : expected_(expectedTexts) {}

  bool onEvent(const SseEvent& event) override;
  bool sawTerminator() const override { return done_; }
  bool onWholeResponse(std::string_view body) override;
  Outcome finish() override;

 private:
  bool fail(std::string message);

  size_t expected_;
  bool done_ = false;
  std::optional<Failure> failure_;
  std::vector<std::vector<float>> vectors_;
  uint32_t inputTokens_ = 0;
};

}  // namespace chitin::model
