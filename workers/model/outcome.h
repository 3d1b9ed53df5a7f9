// SPDX-License-Identifier: Apache-2.0
// The result of one model call in plain C++ values, built on the transfer thread and turned
// into a `Completion` on the RPC thread.
// Runs in: worker (sandboxed)

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model.capnp.h"

namespace chitin::model {

using FailureKind = rpc::ModelFailure::Kind;

struct AssembledToolCall {
  std::string id;
  std::string name;
  std::string argumentsJson;  // the model's text, kept as sent ("{}" when it sent nothing)
};

struct Failure {
  FailureKind kind;
  std::string message;  // user-facing; never contains the API key
  uint16_t httpStatus = 0;
};

struct Outcome {
  // Set when the call failed; otherwise content/toolCalls form the assistant message.
  std::optional<Failure> failure;
  std::string content;
  std::vector<AssembledToolCall> toolCalls;
  std::vector<std::vector<float>> embeddings;  // an embeddings call's vectors, one per text
  std::string stopReason;
  uint32_t inputTokens = 0;
  uint32_t outputTokens = 0;
};

inline Outcome failedOutcome(FailureKind kind, std::string message, uint16_t httpStatus = 0) {
  Outcome outcome;
  outcome.failure = Failure{kind, std::move(message), httpStatus};
  return outcome;
}

}  // namespace chitin::model
