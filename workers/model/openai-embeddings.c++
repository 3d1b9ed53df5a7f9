// SPDX-License-Identifier: Apache-2.0
// The OpenAI-compatible embeddings API (see openai-embeddings.h).
// Runs in: worker (sandboxed)

#include "openai-embeddings.h"

#include <cmath>

#include "model.capnp.h"
#include "untrusted-json.h"

namespace chitin::model {

std::string openAiEmbeddingsUrl(std::string_view baseUrl) {
  return joinUrl(baseUrl, "/embeddings");
}

std::string buildOpenAiEmbeddingsBody(const std::string& model,
                                      const std::vector<std::string>& texts) {
  Json input = Json::array();
  for (const auto& text : texts) input.push_back(text);
  return dumpBody(Json{{"model", model}, {"input", std::move(input)}, {"encoding_format", "float"}});
}

bool OpenAiEmbeddingsAssembler::fail(std::string message) {
  if (!failure_) failure_ = Failure{FailureKind::BAD_RESPONSE, std::move(message), 0};
  vectors_.clear();
  return false;
}

bool OpenAiEmbeddingsAssembler::onEvent(const SseEvent&) {
  return fail("the provider answered the embeddings request with an event stream");
}

bool OpenAiEmbeddingsAssembler::onWholeResponse(std::string_view body) {
  auto reply = parseUntrustedJson(body);
  if (!reply || !reply->is_object())
    return fail("the provider's embeddings reply is not a JSON object: " + excerpt(body));
  if (const Json* error = member(*reply, "error"); error != nullptr) {
    std::string message = error->is_object() ? textMember(*error, "message") : "";
    failure_ = Failure{failureKindForErrorType(error->is_object() ? textMember(*error, "type") : ""),
                       "the provider refused the embeddings request: " +
                           excerpt(message.empty() ? error->dump() : message, 200),
                       0};
    return false;
  }
  const Json* data = member(*reply, "data");
  if (data == nullptr || !data->is_array())
    return fail("the provider's embeddings reply has no \"data\" list");
  if (data->size() != expected_)
    return fail("the provider's embeddings reply holds " + std::to_string(data->size()) +
                " vectors for " + std::to_string(expected_) + " texts");
  std::vector<std::vector<float>> vectors(expected_);
  size_t dimensions = 0;
  for (size_t position = 0; position < data->size(); ++position) {
    const Json& item = (*data)[position];
    // Each item names its text; without an index the list's order is the texts'.
    size_t index = position;
    if (const Json* i = member(item, "index"); i != nullptr) {
      if (!i->is_number_unsigned() || i->get<uint64_t>() >= expected_)
        return fail("an embedding's \"index\" is not one of the texts sent");
      index = static_cast<size_t>(i->get<uint64_t>());
    }
    if (!vectors[index].empty()) return fail("two embeddings name text " + std::to_string(index));
    const Json* embedding = member(item, "embedding");
    if (embedding == nullptr || !embedding->is_array() || embedding->empty())
      return fail("an embedding is not a list of numbers");
    if (embedding->size() > rpc::MAX_EMBEDDING_DIMENSIONS)
      return fail("an embedding has " + std::to_string(embedding->size()) +
                  " dimensions, more than " + std::to_string(rpc::MAX_EMBEDDING_DIMENSIONS));
    if (dimensions == 0) dimensions = embedding->size();
    if (embedding->size() != dimensions)
      return fail("the embeddings are not all of one dimension (" + std::to_string(dimensions) +
                  " and " + std::to_string(embedding->size()) + ")");
    auto& vector = vectors[index];
    vector.reserve(dimensions);
    for (const Json& component : *embedding) {
      if (!component.is_number()) return fail("an embedding holds something other than numbers");
      double value = component.get<double>();
      float narrowed = static_cast<float>(value);
      if (!std::isfinite(narrowed)) return fail("an embedding holds a number out of range");
      vector.push_back(narrowed);
    }
  }
  if (const Json* usage = member(*reply, "usage"))
    inputTokens_ = countMember(*usage, "prompt_tokens");
  vectors_ = std::move(vectors);
  done_ = true;
  return true;
}

Outcome OpenAiEmbeddingsAssembler::finish() {
  Outcome outcome;
  outcome.inputTokens = inputTokens_;
  if (failure_) {
    outcome.failure = failure_;
  } else if (!done_) {
    outcome.failure = Failure{FailureKind::TRUNCATED,
                              "the provider's embeddings reply ended before it was complete", 0};
  } else {
    outcome.embeddings = std::move(vectors_);
  }
  return outcome;
}

}  // namespace chitin::model
