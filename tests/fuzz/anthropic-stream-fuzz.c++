// SPDX-License-Identifier: Apache-2.0
// Fuzz target: an Anthropic Messages API reply through the SSE framer and
// the AnthropicAssembler (see model-stream.h for the input format and the checks).
// Runs in: test (libFuzzer target, tests/fuzz/)

#include "anthropic.h"
#include "model-stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return chitin::fuzz::fuzzModelStream<chitin::model::AnthropicAssembler>(data, size);
}
