// SPDX-License-Identifier: Apache-2.0
// Fuzz target: an OpenAI-compatible Chat Completions reply through the SSE framer and
// the OpenAiChatAssembler (see model-stream.h for the input format and the checks).
// Runs in: test (libFuzzer target, tests/fuzz/)

#include "openai-chat.h"
#include "model-stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return chitin::fuzz::fuzzModelStream<chitin::model::OpenAiChatAssembler>(data, size);
}
