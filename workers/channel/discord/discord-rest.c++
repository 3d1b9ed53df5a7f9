// SPDX-License-Identifier: Apache-2.0
// Discord's REST API with its rate-limit buckets (see discord-rest.h).
// Runs in: worker (sandboxed)

#include "discord-rest.h"

#include <cmath>
#include <cstdlib>

#include "utf8.h"

namespace chitin::channel::discord {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto CALL_BUDGET = std::chrono::seconds(60);
constexpr int MAX_ATTEMPTS = 8;
constexpr size_t MAX_BUCKETS = 1024;
const char* USER_AGENT = "User-Agent: DiscordBot (https://github.com/chitin-assistant, 0.1)";

// Seconds as Discord writes them ("0.351", "1"), as a wait; nullopt when absent or nonsense.
std::optional<milliseconds> seconds(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double s = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end != '\0' || !std::isfinite(s) || s < 0) return std::nullopt;
  return milliseconds(static_cast<int64_t>(std::min(s, 3600.0) * 1000.0 + 0.5));
}

template <typename Error>
Error failure(const HttpResponse& response) {
  std::string what = "Discord answered " + std::to_string(response.status);
  int64_t code = 0;
  auto body = parsePlatformJson(response.body);
  if (body) {
    std::string message = textField(*body, "message");
    if (!message.empty()) what += ": " + clipUtf8(message, 200);
    code = intField(*body, "code").value_or(0);
    if (code != 0) what += " (code " + std::to_string(code) + ")";
  }
  if (response.status == 401) what += " - the bot token was refused";
  return Error(what, response.status, code);
}

}  // namespace

Rest::Rest(std::string apiRoot, std::string token, const std::string& egressSocket, Host& host)
    : apiRoot_(std::move(apiRoot)), token_(std::move(token)), host_(host), http_(egressSocket) {}

void Rest::interrupt() { http_.interrupt(); }

void Rest::waitFor(Clock::time_point until, Clock::time_point deadline, const std::string& route) {
  auto now = Clock::now();
  if (until <= now) return;
  if (until > deadline) {
    auto wait = std::chrono::duration_cast<std::chrono::seconds>(until - now).count() + 1;
    throw ChannelError("Discord rate limit on " + route + ": " + std::to_string(wait) +
                       " s more to wait than a send may take");
  }
  // Rounded up, plus a margin: Discord's reset times are rounded to the millisecond, and
  // arriving a hair early earns the 429 the wait was for.
  if (!host_.sleepFor(std::chrono::ceil<milliseconds>(until - now) + milliseconds(50))) {
    throw ChannelError("the worker is stopping");
  }
}

void Rest::learn(const HttpResponse& response, Bucket& bucket) {
  std::string remaining = response.header("x-ratelimit-remaining");
  auto resetAfter = seconds(response.header("x-ratelimit-reset-after"));
  if (remaining.empty() || !resetAfter) return;
  char* end = nullptr;
  long left = std::strtol(remaining.c_str(), &end, 10);
  if (*end != '\0' || left < 0) return;
  bucket.remaining = left;
  bucket.resetAt = Clock::now() + *resetAfter;
}

Json Rest::call(const std::string& method, const std::string& path, const std::string& route,
                const Json* body, std::vector<HttpPart> multipart) {
  HttpRequest request;
  request.method = method;
  request.url = apiRoot_ + path;
  request.headers = {"Authorization: Bot " + token_, USER_AGENT};
  if (!multipart.empty()) {
    request.multipart = std::move(multipart);
  } else if (body != nullptr) {
    request.headers.push_back("Content-Type: application/json");
    request.body = body->dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  auto deadline = Clock::now() + CALL_BUDGET;
  if (buckets_.size() > MAX_BUCKETS) buckets_.clear();  // at worst one avoidable 429 each
  Bucket& bucket = buckets_[route];
  for (int attempt = 1;; ++attempt) {
    waitFor(globalUntil_, deadline, route);
    if (bucket.remaining == 0) waitFor(bucket.resetAt, deadline, route);
    HttpResponse response = http_.perform(request);
    learn(response, bucket);
    if (response.status == 429 && attempt < MAX_ATTEMPTS) {
      auto parsed = parsePlatformJson(response.body);
      std::optional<milliseconds> wait;
      bool global = response.header("x-ratelimit-global") == "true";
      if (parsed) {
        if (auto s = numberField(*parsed, "retry_after"); s && std::isfinite(*s) && *s >= 0) {
          wait = milliseconds(static_cast<int64_t>(std::min(*s, 3600.0) * 1000.0 + 0.5));
        }
        global = global || boolField(*parsed, "global");
      }
      if (!wait) wait = retryAfter(response, milliseconds(1000), std::chrono::hours(1));
      auto until = Clock::now() + *wait;
      if (global) {
        globalUntil_ = until;
      } else {
        bucket.remaining = 0;
        bucket.resetAt = until;
      }
      continue;
    }
    // A gateway or load-balancer hiccup; Discord's own errors are 4xx with a JSON body.
    if ((response.status == 502 || response.status == 503 || response.status == 504) &&
        attempt < 3) {
      waitFor(Clock::now() + milliseconds(500 * attempt), deadline, route);
      continue;
    }
    if (response.status == 401) throw failure<TokenRefused>(response);
    if (response.status >= 400 || response.status < 200) throw failure<ApiError>(response);
    if (response.status == 204 || response.body.empty()) return Json();
    auto parsed = parsePlatformJson(response.body);
    if (!parsed) throw ChannelError("Discord answered " + route + " with a body that is not JSON");
    return *parsed;
  }
}

HttpResponse Rest::download(const std::string& url, size_t maxBytes) {
  HttpRequest request;
  request.url = url;
  request.headers = {USER_AGENT};
  request.maxResponseBytes = maxBytes;
  request.timeout = std::chrono::seconds(120);
  return http_.perform(request);
}

}  // namespace chitin::channel::discord
