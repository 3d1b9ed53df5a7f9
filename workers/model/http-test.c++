// SPDX-License-Identifier: Apache-2.0
// Tests for the HTTP rules: retry-after parsing, retryable statuses, backoff, error summaries
// and key redaction.
// Runs in: worker (sandboxed) -- test code, runs unconfined.

#include "http.h"

#include <doctest/doctest.h>

namespace chitin::model {
namespace {

using std::chrono::milliseconds;

// 2015-10-21T07:28:00Z, the date in RFC 9110's own Retry-After example.
constexpr std::time_t OCT_21_2015 = 1445412480;

ResponseHeaders retryHeaders(std::string after, std::string afterMs = "") {
  ResponseHeaders headers;
  headers.retryAfter = std::move(after);
  headers.retryAfterMs = std::move(afterMs);
  return headers;
}

TEST_CASE("http: Retry-After in seconds") {
  CHECK(parseRetryAfter(retryHeaders("1"), 0) == milliseconds(1000));
  CHECK(parseRetryAfter(retryHeaders(" 30 "), 0) == milliseconds(30000));
  CHECK(parseRetryAfter(retryHeaders("0"), 0) == milliseconds(0));
}

TEST_CASE("http: Retry-After as an HTTP-date is relative to now, never negative") {
  CHECK(parseRetryAfter(retryHeaders("Wed, 21 Oct 2015 07:28:00 GMT"), OCT_21_2015 - 5) ==
        milliseconds(5000));
  CHECK(parseRetryAfter(retryHeaders("Wed, 21 Oct 2015 07:28:00 GMT"), OCT_21_2015 + 60) ==
        milliseconds(0));
}

TEST_CASE("http: retry-after-ms wins, fractional values round up") {
  CHECK(parseRetryAfter(retryHeaders("9", "1500"), 0) == milliseconds(1500));
  CHECK(parseRetryAfter(retryHeaders("", "250.2"), 0) == milliseconds(251));
  // An unusable retry-after-ms falls back to Retry-After.
  CHECK(parseRetryAfter(retryHeaders("2", "-5"), 0) == milliseconds(2000));
  CHECK(parseRetryAfter(retryHeaders("2", "soon"), 0) == milliseconds(2000));
}

TEST_CASE("http: absent or unparsable Retry-After gives no wait") {
  CHECK(parseRetryAfter(retryHeaders(""), 0) == std::nullopt);
  CHECK(parseRetryAfter(retryHeaders("later please"), 0) == std::nullopt);
  CHECK(parseRetryAfter(retryHeaders("-1"), 0) == std::nullopt);
}

TEST_CASE("http: huge Retry-After values are capped instead of overflowing") {
  auto wait = parseRetryAfter(retryHeaders("99999999999999999999"), 0);
  REQUIRE(wait);
  CHECK(*wait == milliseconds(86400000));
}

TEST_CASE("http: only 429 and 5xx overload statuses are retried") {
  for (long status : {429L, 500L, 502L, 503L, 504L, 529L}) CHECK(isRetryableStatus(status));
  for (long status : {200L, 400L, 401L, 403L, 404L, 413L, 501L})
    CHECK_FALSE(isRetryableStatus(status));
}

TEST_CASE("http: backoff doubles from 0.5 s") {
  CHECK(backoffDelay(0) == milliseconds(500));
  CHECK(backoffDelay(1) == milliseconds(1000));
  CHECK(backoffDelay(3) == milliseconds(4000));
}

TEST_CASE("http: an OpenAI/Anthropic error body is summarised with its type and message") {
  ResponseHeaders headers;
  headers.requestId = "req_42";
  auto failure = httpFailure(
      401, headers, R"({"error":{"message":"invalid x-api-key","type":"authentication_error"}})");
  CHECK(failure.kind == FailureKind::UNAUTHORIZED);
  CHECK(failure.httpStatus == 401);
  CHECK(failure.message ==
        "the provider answered HTTP 401: authentication_error: invalid x-api-key (request id "
        "req_42)");

  CHECK(httpFailure(429, {}, "{}").kind == FailureKind::RATE_LIMITED);
  CHECK(httpFailure(529, {}, "").kind == FailureKind::SERVER_ERROR);
  CHECK(httpFailure(400, {}, "").kind == FailureKind::BAD_REQUEST);
  CHECK(httpFailure(403, {}, "").kind == FailureKind::UNAUTHORIZED);
}

TEST_CASE("http: Ollama, vLLM and HTML error bodies are summarised too") {
  CHECK(httpFailure(404, {}, R"({"error":"model 'x' not found"})").message ==
        "the provider answered HTTP 404: model 'x' not found");
  CHECK(httpFailure(400, {}, R"({"object":"error","message":"too long","code":400})").message ==
        "the provider answered HTTP 400: too long");
  ResponseHeaders html;
  html.contentType = "text/html";
  auto failure = httpFailure(502, html, "<html><title>502 Bad Gateway</title></html>\n");
  CHECK(failure.message ==
        "the provider answered HTTP 502: a text/html body: <html><title>502 Bad "
        "Gateway</title></html>");
  CHECK(httpFailure(500, {}, "").message == "the provider answered HTTP 500: no error details");
}

TEST_CASE("http: a redirect is reported, not followed") {
  ResponseHeaders headers;
  headers.location = "https://elsewhere.example/v1";
  auto failure = httpFailure(301, headers, "");
  CHECK(failure.kind == FailureKind::BAD_RESPONSE);
  CHECK(failure.message.find("https://elsewhere.example/v1") != std::string::npos);
  CHECK(failure.message.find("not followed") != std::string::npos);
}

TEST_CASE("http: redact removes every occurrence of the secret") {
  CHECK(redact("key sk-123 and sk-123sk-123", "sk-123") ==
        "key [redacted] and [redacted][redacted]");
  CHECK(redact("nothing here", "") == "nothing here");
}

}  // namespace
}  // namespace chitin::model
