// SPDX-License-Identifier: Apache-2.0
// HTTP for the model worker: one libcurl POST at a time with a streaming body callback, an
// interruptible wait, and the rules for retrying and for describing a provider's error.
// Runs in: worker (sandboxed)
//
// An HttpSession is used by one transfer thread; only `wakeup()` may be called from another
// thread (the RPC thread cancelling the call), which makes a running post() or sleepFor()
// return promptly instead of at the next timeout.

#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "outcome.h"

namespace chitin::model {

// Must run once, before any thread starts and before the seccomp lockdown: OpenSSL and the
// resolver read their configuration here.
void initHttpGlobal();

// The response headers that decide what happens next.
struct ResponseHeaders {
  std::string contentType;
  std::string retryAfter;    // Retry-After: delta-seconds or an HTTP-date
  std::string retryAfterMs;  // retry-after-ms (OpenAI): milliseconds, possibly fractional
  std::string requestId;     // x-request-id / request-id, quoted in error messages
  std::string location;      // a redirect target (redirects are never followed)
};

struct PostRequest {
  std::string url;
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  // No byte for this long (connecting, waiting for headers, or mid-stream) aborts the post.
  std::chrono::seconds idleTimeout{120};
};

struct PostResult {
  long status = 0;  // 0 when no response arrived
  ResponseHeaders headers;
  bool ok = false;  // the transfer completed without a transport error
  bool stoppedByHandler = false;
  bool timedOut = false;
  bool cancelled = false;
  std::string transportError;  // libcurl's description when !ok
};

// Receives the body as it arrives; the status and headers are final by then. Return false to
// stop the transfer (enough seen, or a limit was hit).
using BodyHandler =
    std::function<bool(long status, const ResponseHeaders& headers, std::string_view bytes)>;

class HttpSession {
 public:
  // `egressSocket`: the supervisor's egress broker (a SOCKS5 unix socket; the broker resolves
  // names and decides where the worker may go); "" = direct connections (unit tests outside a
  // sandbox; inside one there is no other way out).
  explicit HttpSession(std::string egressSocket = "");
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  // Runs one POST to completion. Never follows redirects; only http and https.
  PostResult post(const PostRequest& request, const BodyHandler& onBody,
                  const std::atomic<bool>& cancelled);

  // Waits `delay` unless `cancelled` becomes true first. Returns false if cancelled.
  bool sleepFor(std::chrono::milliseconds delay, const std::atomic<bool>& cancelled);

  // Thread-safe: interrupts a post() or sleepFor() so it re-checks `cancelled`.
  void wakeup();

 private:
  void* multi_;        // CURLM*, kept opaque so this header does not pull in curl.h
  std::string proxy_;  // CURLOPT_PROXY: "" or "socks5h://localhost<egress socket>"
};

// 429, 500, 502, 503, 504 and 529 (Anthropic's "overloaded") are worth retrying.
bool isRetryableStatus(long status);

// How long the server asked us to wait: retry-after-ms wins, then Retry-After as seconds or
// as an HTTP-date relative to `now`. nullopt when absent or unparsable.
std::optional<std::chrono::milliseconds> parseRetryAfter(const ResponseHeaders& headers,
                                                         std::time_t now);

// Exponential backoff when the server names no wait: 0.5 s, 1 s, 2 s, ... for attempt 0, 1, 2.
std::chrono::milliseconds backoffDelay(uint32_t attempt);

// A user-facing failure for a non-2xx reply: the kind from the status, the message from the
// provider's error body (`{"error":{"message",...}}`, `{"error":"..."}`, vLLM's
// `{"object":"error","message"}`) or a note about the body it sent instead.
Failure httpFailure(long status, const ResponseHeaders& headers, std::string_view body);

// `text` with every occurrence of `secret` replaced. Empty secrets change nothing.
std::string redact(std::string text, std::string_view secret);

}  // namespace chitin::model
