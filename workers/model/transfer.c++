// SPDX-License-Identifier: Apache-2.0
// One model call: POST, retries, assembly (see transfer.h).
// Runs in: worker (sandboxed)

#include "transfer.h"

#include <algorithm>
#include <cctype>
#include <memory>
#include <optional>

#include "anthropic.h"
#include "openai-chat.h"
#include "openai-embeddings.h"
#include "sse.h"

namespace chitin::model {

namespace {

// How one attempt's body is being read, decided by status and content-type at its first byte.
enum class BodyMode { none, stream, json, unexpected, error };

std::string lowercase(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::unique_ptr<StreamAssembler> makeAssembler(const CallSpec& spec, const TextSink& onText) {
  if (spec.embedTexts > 0) return std::make_unique<OpenAiEmbeddingsAssembler>(spec.embedTexts);
  switch (spec.api) {
    case Api::OPENAI_CHAT:
      return std::make_unique<OpenAiChatAssembler>(onText);
    case Api::ANTHROPIC:
      return std::make_unique<AnthropicAssembler>(onText);
  }
  return std::make_unique<OpenAiChatAssembler>(onText);
}

std::string seconds(std::chrono::milliseconds ms) {
  auto tenths = (ms.count() + 99) / 100;
  return std::to_string(tenths / 10) + (tenths % 10 ? "." + std::to_string(tenths % 10) : "") +
         " s";
}

struct Attempt {
  Outcome outcome;
  bool retry = false;
  std::chrono::milliseconds wait{0};
};

Attempt attemptOnce(const CallSpec& spec, HttpSession& http, const std::atomic<bool>& cancelled,
                    const TextSink& onText, uint32_t attempt) {
  auto assembler = makeAssembler(spec, onText);
  SseParser parser;
  BodyMode mode = BodyMode::none;
  std::string buffered;
  uint64_t total = 0;
  std::optional<Failure> limitFailure;

  auto onEvent = [&](const SseEvent& event) {
    if (spec.secret.empty() || event.data.find(spec.secret) == std::string::npos) {
      return assembler->onEvent(event);
    }
    SseEvent redacted{event.event, redact(event.data, spec.secret)};
    return assembler->onEvent(redacted);
  };
  auto keepUpTo = [&](std::string_view bytes, size_t limit) {
    buffered.append(bytes.substr(0, limit - std::min(limit, buffered.size())));
    return buffered.size() < limit;
  };
  auto onBody = [&](long status, const ResponseHeaders& headers, std::string_view bytes) {
    if (mode == BodyMode::none) {
      std::string type = lowercase(headers.contentType);
      if (status < 200 || status >= 300) {
        mode = BodyMode::error;
      } else if (type.rfind("text/event-stream", 0) == 0) {
        mode = BodyMode::stream;
      } else if (spec.api == Api::OPENAI_CHAT && type.find("json") != std::string::npos) {
        mode = BodyMode::json;
      } else {
        mode = BodyMode::unexpected;
      }
    }
    total += bytes.size();
    switch (mode) {
      case BodyMode::stream: {
        if (total > MAX_STREAM_BYTES) {
          limitFailure = Failure{FailureKind::BAD_RESPONSE,
                                 "the provider's reply exceeds the 64 MiB limit", 0};
          return false;
        }
        auto fed = parser.feed(bytes, onEvent);
        if (fed == SseParser::Status::tooLarge) {
          limitFailure = Failure{FailureKind::BAD_RESPONSE,
                                 "the provider sent a stream event larger than 8 MiB", 0};
        }
        return fed == SseParser::Status::ok;
      }
      case BodyMode::json:
        if (buffered.size() + bytes.size() > MAX_JSON_REPLY_BYTES) {
          limitFailure = Failure{FailureKind::BAD_RESPONSE,
                                 "the provider's reply exceeds the 16 MiB limit", 0};
          return false;
        }
        buffered.append(bytes);
        return true;
      case BodyMode::unexpected:
        return keepUpTo(bytes, 4096);  // enough to describe it
      case BodyMode::error:
      case BodyMode::none:
        return keepUpTo(bytes, MAX_ERROR_BODY_BYTES);
    }
    return false;
  };

  PostResult result = http.post(spec.post, onBody, cancelled);
  Attempt out;
  uint16_t httpStatus = static_cast<uint16_t>(std::clamp<long>(result.status, 0, 65535));
  auto fail = [&](FailureKind kind, std::string message) {
    out.outcome = failedOutcome(kind, std::move(message), httpStatus);
    return out;
  };

  if (result.cancelled) return fail(FailureKind::CANCELLED, "the call was cancelled");
  if (limitFailure) return fail(limitFailure->kind, limitFailure->message);
  if (result.status == 0) {
    return fail(FailureKind::NETWORK, "could not get a reply from the provider at " +
                                          excerpt(spec.post.url, 200) + ": " +
                                          result.transportError);
  }

  if (result.status >= 200 && result.status < 300) {
    if (mode == BodyMode::json && result.ok) assembler->onWholeResponse(buffered);
    if (mode == BodyMode::stream || mode == BodyMode::json) {
      if (result.timedOut && !assembler->sawTerminator()) {
        return fail(FailureKind::NETWORK, "the provider's reply stalled: " + result.transportError);
      }
      out.outcome = assembler->finish();
      if (out.outcome.failure) {
        out.outcome.failure->httpStatus = httpStatus;
        if (out.outcome.failure->kind == FailureKind::TRUNCATED && !result.ok &&
            !result.stoppedByHandler) {
          out.outcome.failure->message += " (" + result.transportError + ")";
        }
      }
      return out;
    }
    if (mode == BodyMode::none) {
      return fail(
          FailureKind::BAD_RESPONSE,
          "the provider answered HTTP " + std::to_string(result.status) + " with an empty body");
    }
    std::string type = result.headers.contentType.empty()
                           ? std::string("no content-type")
                           : "content-type " + excerpt(result.headers.contentType, 60);
    return fail(FailureKind::BAD_RESPONSE,
                "the provider answered HTTP " + std::to_string(result.status) + " with " + type +
                    (spec.embedTexts > 0 ? " instead of JSON: " : " instead of an event stream: ") +
                    excerpt(redact(buffered, spec.secret), 120));
  }

  Failure failure = httpFailure(result.status, result.headers, redact(buffered, spec.secret));
  out.outcome.failure = failure;
  if (!isRetryableStatus(result.status)) return out;
  if (attempt >= spec.maxRetries) {
    if (spec.maxRetries > 0) {
      out.outcome.failure->message += " (gave up after " + std::to_string(spec.maxRetries) +
                                      (spec.maxRetries == 1 ? " retry)" : " retries)");
    }
    return out;
  }
  auto asked = parseRetryAfter(result.headers, std::time(nullptr));
  auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(spec.maxRetryWait);
  if (asked && *asked > limit) {
    out.outcome.failure->message += " (the provider asked to wait " + seconds(*asked) +
                                    ", longer than the configured maximum of " + seconds(limit) +
                                    ")";
    return out;
  }
  out.retry = true;
  out.wait = asked ? *asked : std::min(backoffDelay(attempt), limit);
  return out;
}

}  // namespace

Outcome runCall(const CallSpec& spec, HttpSession& http, const std::atomic<bool>& cancelled,
                const TextSink& onText) {
  Outcome outcome;
  for (uint32_t attempt = 0;; ++attempt) {
    Attempt result = attemptOnce(spec, http, cancelled, onText, attempt);
    outcome = std::move(result.outcome);
    if (!result.retry) break;
    if (!http.sleepFor(result.wait, cancelled)) {
      outcome = failedOutcome(FailureKind::CANCELLED, "the call was cancelled");
      break;
    }
  }
  if (outcome.failure) outcome.failure->message = redact(outcome.failure->message, spec.secret);
  return outcome;
}

}  // namespace chitin::model
