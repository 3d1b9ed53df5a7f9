// SPDX-License-Identifier: Apache-2.0
// One model call from request bytes to Outcome: the POST, the retries on 429/5xx, and feeding
// the reply to the API's assembler. Blocking; runs on the call's own thread.
// Runs in: worker (sandboxed)

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "api.h"
#include "http.h"
#include "outcome.h"

namespace chitin::model {

using Api = rpc::ProviderConfig::Api;

struct CallSpec {
  Api api;
  PostRequest post;
  std::string secret;  // the API key, only so that no message we produce can contain it
  uint32_t maxRetries = 3;
  // A single wait longer than this is not made: the call fails with the provider's reason.
  std::chrono::seconds maxRetryWait{30};
  // > 0: an embeddings call for this many texts (one JSON reply, openai-embeddings.h), not a
  // completion.
  size_t embedTexts = 0;
};

// Limits on what one reply may make us hold.
constexpr uint64_t MAX_STREAM_BYTES = 64u << 20;    // a whole streamed reply
constexpr size_t MAX_JSON_REPLY_BYTES = 16u << 20;  // a non-streamed reply
constexpr size_t MAX_ERROR_BODY_BYTES = 64u << 10;  // an error body, summarised

// Runs the call. `onText` receives assistant text as it streams (it may block: that is the
// backpressure from the RPC side). Every failure message has the secret redacted.
Outcome runCall(const CallSpec& spec, HttpSession& http, const std::atomic<bool>& cancelled,
                const TextSink& onText);

}  // namespace chitin::model
