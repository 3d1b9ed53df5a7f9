// SPDX-License-Identifier: Apache-2.0
// The body of the two model stream targets (openai-stream, anthropic-stream): a provider's
// reply through the SSE framer and the API's assembler, as transfer.c++ feeds it, then into a
// Completion as the worker sends it to the supervisor.
// Runs in: test (libFuzzer targets, tests/fuzz/)
//
// Input: byte 0 picks the mode (even: a stream read in chunks whose sizes byte 0 seeds; odd: a
// whole JSON reply, the non-streaming path), the rest is the body. Checks: everything that
// leaves the worker as Text is valid UTF-8 (the supervisor re-checks, but the worker promises
// it), a failure has a message, and exceptions never escape the assembler.

#pragma once

#include <capnp/message.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "api.h"
#include "fuzz-support.h"
#include "provider.h"
#include "sse.h"
#include "utf8.h"

namespace chitin::fuzz {

inline void checkText(const std::string& text) {
  FUZZ_CHECK(isValidUtf8(kj::ArrayPtr<const char>(text.data(), text.size())), text);
}

template <typename Assembler>
int fuzzModelStream(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t mode = data[0];
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string streamed;
  Assembler assembler([&](std::string_view text) { streamed.append(text); });

  if (mode % 2 == 1) {
    assembler.onWholeResponse(body);
  } else {
    SseParser parser;
    auto onEvent = [&](const SseEvent& event) { return assembler.onEvent(event); };
    uint32_t state = mode;
    size_t offset = 0;
    while (offset < body.size()) {
      state = state * 1103515245u + 12345u;
      size_t chunk = mode == 0 ? body.size() : 1 + (state >> 16) % 64;
      if (parser.feed(body.substr(offset, chunk), onEvent) != SseParser::Status::ok) break;
      offset += chunk;
    }
  }
  (void)assembler.sawTerminator();
  model::Outcome outcome = assembler.finish();

  checkText(streamed);
  if (outcome.failure) {
    FUZZ_CHECK(!outcome.failure->message.empty(), "a failure without a message");
    checkText(outcome.failure->message);
  } else {
    checkText(outcome.content);
    for (const auto& call : outcome.toolCalls) {
      checkText(call.id);
      checkText(call.name);
      checkText(call.argumentsJson);
    }
  }
  checkText(outcome.stopReason);
  capnp::MallocMessageBuilder message;
  model::fillCompletion(message.initRoot<rpc::Completion>(), outcome);
  return 0;
}

}  // namespace chitin::fuzz
