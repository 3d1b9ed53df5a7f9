// SPDX-License-Identifier: Apache-2.0
// Fuzz target: an OpenAI-compatible embeddings reply through OpenAiEmbeddingsAssembler.
// Input: one byte giving how many texts were sent (1..64), then the reply's body. Checks: a
// reply is either a failure or exactly one vector per text, all of one dimension within
// maxEmbeddingDimensions, every component finite; a failure message is valid UTF-8.
// Runs in: test (libFuzzer target, tests/fuzz/)

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "model.capnp.h"
#include "openai-embeddings.h"
#include "utf8.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t texts = 1 + data[0] % chitin::rpc::MAX_EMBED_TEXTS;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  chitin::model::OpenAiEmbeddingsAssembler assembler(texts);
  assembler.onWholeResponse(body);
  chitin::model::Outcome outcome = assembler.finish();
  if (outcome.failure) {
    if (!outcome.embeddings.empty()) abort();
    const std::string& m = outcome.failure->message;
    if (!chitin::isValidUtf8(kj::ArrayPtr<const char>(m.data(), m.size()))) abort();
    return 0;
  }
  if (outcome.embeddings.size() != texts) abort();
  size_t dimensions = outcome.embeddings[0].size();
  if (dimensions == 0 || dimensions > chitin::rpc::MAX_EMBEDDING_DIMENSIONS) abort();
  for (const auto& v : outcome.embeddings) {
    if (v.size() != dimensions) abort();
    for (float x : v)
      if (!std::isfinite(x)) abort();
  }
  return 0;
}
