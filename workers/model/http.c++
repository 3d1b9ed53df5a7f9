// SPDX-License-Identifier: Apache-2.0
// HTTP for the model worker (see http.h).
// Runs in: worker (sandboxed)

#include "http.h"

#include <curl/curl.h>
#include <kj/debug.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "api.h"
#include "untrusted-json.h"

namespace chitin::model {

namespace {

using Clock = std::chrono::steady_clock;

// Upper bound on one poll, so cancellation and the idle timer are checked even if a wakeup
// were lost.
constexpr int MAX_POLL_MS = 1000;

CURLM* asMulti(void* p) { return static_cast<CURLM*>(p); }

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

struct TransferState {
  const BodyHandler& onBody;
  const std::atomic<bool>& cancelled;
  CURL* easy;
  ResponseHeaders headers;
  long status = 0;
  bool stoppedByHandler = false;
  Clock::time_point lastActivity = Clock::now();
};

size_t onHeaderLine(char* data, size_t size, size_t count, void* userdata) {
  auto& state = *static_cast<TransferState*>(userdata);
  size_t length = size * count;
  state.lastActivity = Clock::now();
  std::string_view line = trim(std::string_view(data, length));
  if (line.substr(0, 5) == "HTTP/") {
    state.headers = ResponseHeaders();  // a new response (after 100 Continue): start over
    return length;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return length;
  std::string_view name = trim(line.substr(0, colon));
  std::string value(trim(line.substr(colon + 1)));
  if (equalsIgnoreCase(name, "content-type")) {
    state.headers.contentType = std::move(value);
  } else if (equalsIgnoreCase(name, "retry-after")) {
    state.headers.retryAfter = std::move(value);
  } else if (equalsIgnoreCase(name, "retry-after-ms")) {
    state.headers.retryAfterMs = std::move(value);
  } else if (equalsIgnoreCase(name, "x-request-id") || equalsIgnoreCase(name, "request-id")) {
    state.headers.requestId = std::move(value);
  } else if (equalsIgnoreCase(name, "location")) {
    state.headers.location = std::move(value);
  }
  return length;
}

size_t onBodyBytes(char* data, size_t size, size_t count, void* userdata) {
  auto& state = *static_cast<TransferState*>(userdata);
  size_t length = size * count;
  if (state.cancelled.load()) return 0;  // any other count than `length` aborts the transfer
  if (state.status == 0) curl_easy_getinfo(state.easy, CURLINFO_RESPONSE_CODE, &state.status);
  bool keepGoing = state.onBody(state.status, state.headers, std::string_view(data, length));
  // The handler may have waited for the RPC side to take text (backpressure); that is not
  // the server being idle.
  state.lastActivity = Clock::now();
  if (!keepGoing) {
    state.stoppedByHandler = true;
    return 0;
  }
  return length;
}

template <typename T>
void setOption(CURL* easy, CURLoption option, T value) {
  CURLcode code = curl_easy_setopt(easy, option, value);
  KJ_ASSERT(code == CURLE_OK, "curl_easy_setopt failed", option, curl_easy_strerror(code));
}

}  // namespace

void initHttpGlobal() {
  CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
  KJ_REQUIRE(code == CURLE_OK, "curl_global_init failed", curl_easy_strerror(code));
}

HttpSession::HttpSession(std::string egressSocket)
    : multi_(curl_multi_init()),
      // socks5h: the broker, not this worker, resolves the provider's name; TLS stays end to
      // end (curl tunnels through the SOCKS connection and verifies the provider's cert).
      proxy_(egressSocket.empty() ? "" : "socks5h://localhost" + egressSocket) {
  KJ_REQUIRE(multi_ != nullptr, "curl_multi_init failed");
}

HttpSession::~HttpSession() { curl_multi_cleanup(asMulti(multi_)); }

void HttpSession::wakeup() { curl_multi_wakeup(asMulti(multi_)); }

PostResult HttpSession::post(const PostRequest& request, const BodyHandler& onBody,
                             const std::atomic<bool>& cancelled) {
  PostResult result;
  // Declared before the handle, so it outlives every use libcurl may make of it.
  char errorBuffer[CURL_ERROR_SIZE] = {0};
  CURL* easy = curl_easy_init();
  KJ_REQUIRE(easy != nullptr, "curl_easy_init failed");
  KJ_DEFER(curl_easy_cleanup(easy));

  curl_slist* headerList = nullptr;
  KJ_DEFER(curl_slist_free_all(headerList));
  for (auto& header : request.headers) {
    curl_slist* next = curl_slist_append(headerList, header.c_str());
    KJ_REQUIRE(next != nullptr, "curl_slist_append failed");
    headerList = next;
  }
  // No "Expect: 100-continue" round trip before large bodies.
  curl_slist* next = curl_slist_append(headerList, "Expect:");
  KJ_REQUIRE(next != nullptr, "curl_slist_append failed");
  headerList = next;

  TransferState state{onBody, cancelled, easy};
  setOption(easy, CURLOPT_URL, request.url.c_str());
  setOption(easy, CURLOPT_POST, 1L);
  setOption(easy, CURLOPT_POSTFIELDS, request.body.data());
  setOption(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  setOption(easy, CURLOPT_HTTPHEADER, headerList);
  // The key rides in a header; following a redirect could hand it to another host.
  setOption(easy, CURLOPT_FOLLOWLOCATION, 0L);
  setOption(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  // The egress broker, or none; never a proxy from the environment (not configuration).
  setOption(easy, CURLOPT_PROXY, proxy_.c_str());
  setOption(easy, CURLOPT_NOSIGNAL, 1L);
  setOption(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  setOption(easy, CURLOPT_CONNECTTIMEOUT, static_cast<long>(request.idleTimeout.count()));
  setOption(easy, CURLOPT_USERAGENT, "chitin-model-worker");
  setOption(easy, CURLOPT_ERRORBUFFER, errorBuffer);
  setOption(easy, CURLOPT_HEADERFUNCTION, onHeaderLine);
  setOption(easy, CURLOPT_HEADERDATA, &state);
  setOption(easy, CURLOPT_WRITEFUNCTION, onBodyBytes);
  setOption(easy, CURLOPT_WRITEDATA, &state);

  CURLM* multi = asMulti(multi_);
  KJ_ASSERT(curl_multi_add_handle(multi, easy) == CURLM_OK);
  KJ_DEFER(curl_multi_remove_handle(multi, easy));

  CURLcode code = CURLE_OK;
  bool finished = false;
  for (;;) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi, &running);
    KJ_ASSERT(mc == CURLM_OK, "curl_multi_perform failed", curl_multi_strerror(mc));
    int queued = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &queued)) {
      if (message->msg == CURLMSG_DONE && message->easy_handle == easy) {
        code = message->data.result;
        finished = true;
      }
    }
    if (finished) break;
    if (cancelled.load()) {
      result.cancelled = true;
      break;
    }
    auto idle = Clock::now() - state.lastActivity;
    if (idle >= request.idleTimeout) {
      result.timedOut = true;
      break;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(request.idleTimeout - idle);
    int timeoutMs = static_cast<int>(std::min<int64_t>(MAX_POLL_MS, left.count() + 1));
    mc = curl_multi_poll(multi, nullptr, 0, timeoutMs, nullptr);
    KJ_ASSERT(mc == CURLM_OK, "curl_multi_poll failed", curl_multi_strerror(mc));
  }

  if (state.status == 0) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &state.status);
  result.status = state.status;
  result.headers = std::move(state.headers);
  result.stoppedByHandler = state.stoppedByHandler;
  if (cancelled.load()) result.cancelled = true;
  result.ok = finished && code == CURLE_OK;
  if (result.timedOut) {
    result.transportError =
        "no data from the provider for " + std::to_string(request.idleTimeout.count()) + " s";
  } else if (finished && code != CURLE_OK) {
    result.transportError =
        errorBuffer[0] != '\0' ? std::string(errorBuffer) : std::string(curl_easy_strerror(code));
  }
  return result;
}

bool HttpSession::sleepFor(std::chrono::milliseconds delay, const std::atomic<bool>& cancelled) {
  auto deadline = Clock::now() + delay;
  while (!cancelled.load()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return true;
    int timeoutMs = static_cast<int>(std::min<int64_t>(MAX_POLL_MS, left.count()));
    // With no transfers attached this only waits: for the timeout or for wakeup().
    CURLMcode mc = curl_multi_poll(asMulti(multi_), nullptr, 0, timeoutMs, nullptr);
    KJ_ASSERT(mc == CURLM_OK, "curl_multi_poll failed", curl_multi_strerror(mc));
  }
  return false;
}

bool isRetryableStatus(long status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504 ||
         status == 529;
}

std::optional<std::chrono::milliseconds> parseRetryAfter(const ResponseHeaders& headers,
                                                         std::time_t now) {
  // A day is far more than any sane wait; capping keeps the arithmetic in range.
  constexpr double MAX_MS = 86400.0 * 1000.0;
  std::string_view ms = trim(headers.retryAfterMs);
  if (!ms.empty()) {
    std::string text(ms);
    char* end = nullptr;
    double value = std::strtod(text.c_str(), &end);
    if (end == text.c_str() + text.size() && std::isfinite(value) && value >= 0) {
      return std::chrono::milliseconds(static_cast<int64_t>(std::ceil(std::min(value, MAX_MS))));
    }
  }
  std::string_view after = trim(headers.retryAfter);
  if (after.empty()) return std::nullopt;
  if (std::all_of(after.begin(), after.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    double seconds =
        after.size() > 9 ? MAX_MS / 1000 : std::strtod(std::string(after).c_str(), nullptr);
    return std::chrono::milliseconds(static_cast<int64_t>(std::min(seconds * 1000, MAX_MS)));
  }
  std::time_t when = curl_getdate(std::string(after).c_str(), nullptr);
  if (when == -1) return std::nullopt;
  double seconds = std::max(0.0, std::difftime(when, now));
  return std::chrono::milliseconds(static_cast<int64_t>(std::min(seconds * 1000, MAX_MS)));
}

std::chrono::milliseconds backoffDelay(uint32_t attempt) {
  return std::chrono::milliseconds(500) * (int64_t{1} << std::min<uint32_t>(attempt, 16));
}

Failure httpFailure(long status, const ResponseHeaders& headers, std::string_view body) {
  FailureKind kind;
  if (status == 401 || status == 403) {
    kind = FailureKind::UNAUTHORIZED;
  } else if (status == 429) {
    kind = FailureKind::RATE_LIMITED;
  } else if (status >= 500) {
    kind = FailureKind::SERVER_ERROR;
  } else if (status >= 400) {
    kind = FailureKind::BAD_REQUEST;
  } else {
    kind = FailureKind::BAD_RESPONSE;
  }
  uint16_t code = static_cast<uint16_t>(std::clamp<long>(status, 0, 65535));

  if (status >= 300 && status < 400) {
    return Failure{kind,
                   "the provider answered HTTP " + std::to_string(status) + " redirecting to " +
                       excerpt(headers.location, 200) +
                       "; redirects are not followed, so check the provider's baseUrl",
                   code};
  }

  std::string detail;
  if (auto json = parseUntrustedJson(body)) {
    if (const Json* error = member(*json, "error")) {
      if (error->is_string()) {
        detail = error->get<std::string>();  // Ollama, llama.cpp
      } else {
        detail = textMember(*error, "message");
        std::string type = textMember(*error, "type");
        if (!type.empty()) detail = detail.empty() ? type : type + ": " + detail;
      }
    }
    if (detail.empty()) detail = textMember(*json, "message");  // vLLM {"object":"error",...}
    if (detail.empty()) detail = textMember(*json, "detail");   // FastAPI-based servers
  }
  if (detail.empty()) {
    std::string_view text = trim(body);
    detail = text.empty() ? std::string("no error details")
                          : "a " +
                                (headers.contentType.empty() ? std::string("untyped")
                                                             : excerpt(headers.contentType, 60)) +
                                " body: " + excerpt(text, 120);
  }
  std::string message =
      "the provider answered HTTP " + std::to_string(status) + ": " + excerpt(detail, 400);
  if (!headers.requestId.empty()) message += " (request id " + excerpt(headers.requestId, 80) + ")";
  return Failure{kind, std::move(message), code};
}

std::string redact(std::string text, std::string_view secret) {
  if (secret.empty()) return text;
  for (size_t at = text.find(secret); at != std::string::npos; at = text.find(secret, at + 10)) {
    text.replace(at, secret.size(), "[redacted]");
  }
  return text;
}

}  // namespace chitin::model
