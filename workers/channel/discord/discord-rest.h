// SPDX-License-Identifier: Apache-2.0
// Discord's REST API (v10) for one thread: the bot token, per-route rate-limit buckets and
// 429s waited out, errors in Discord's words.
// Runs in: worker (sandboxed)
//
// Discord limits each route (per major parameter: the channel) and the bot as a whole. Every
// answer says what is left (X-RateLimit-Remaining) and when it refills (X-RateLimit-Reset-After,
// seconds as a float); a bucket at zero is waited out before the next request instead of
// earning a 429. A 429 still comes with retry_after (float seconds) and `global`; it is waited
// out and the request repeated, within one minute per call (then ChannelError).

#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "http-client.h"
#include "json-fields.h"
#include "platform.h"

namespace chitin::channel::discord {

// Discord's answer to a failed call: the HTTP status and Discord's JSON error code (10003
// Unknown Channel, 50013 Missing Permissions, ...; 0 when it gave none).
class ApiError : public ChannelError {
 public:
  ApiError(const std::string& what, long status, int64_t code)
      : ChannelError(what), status_(status), code_(code) {}
  long status() const { return status_; }
  int64_t code() const { return code_; }

 private:
  long status_;
  int64_t code_;
};

// A 401: the token is wrong or was reset. Retrying cannot fix it.
class TokenRefused : public ApiError {
 public:
  using ApiError::ApiError;
};

inline constexpr int64_t UNKNOWN_CHANNEL = 10003;

class Rest {
 public:
  Rest(std::string apiRoot, std::string token, const std::string& egressSocket, Host& host);

  // `route` names the rate-limit bucket: the method, the path template and the major id, e.g.
  // "POST /channels/123/messages". `path` is appended to apiRoot. Returns the parsed body (null
  // for 204). Throws ApiError with Discord's message and code for a 4xx/5xx (TokenRefused for
  // a 401), ChannelError when the rate limit would take longer than a call may wait.
  Json call(const std::string& method, const std::string& path, const std::string& route,
            const Json* body = nullptr, std::vector<HttpPart> multipart = {});

  // A GET of a URL outside the API (an attachment on the CDN), without the token.
  HttpResponse download(const std::string& url, size_t maxBytes);

  void interrupt();

 private:
  struct Bucket {
    long remaining = -1;  // unknown until Discord says
    std::chrono::steady_clock::time_point resetAt;
  };
  void waitFor(std::chrono::steady_clock::time_point until,
               std::chrono::steady_clock::time_point deadline, const std::string& route);
  void learn(const HttpResponse& response, Bucket& bucket);

  std::string apiRoot_, token_;
  Host& host_;
  HttpClient http_;
  std::map<std::string, Bucket> buckets_;  // by route; forgotten when there are too many
  std::chrono::steady_clock::time_point globalUntil_{};
};

}  // namespace chitin::channel::discord
