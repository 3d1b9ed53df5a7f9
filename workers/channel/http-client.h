// SPDX-License-Identifier: Apache-2.0
// One HTTP(S) request at a time through the egress broker, for the channel platforms that
// speak JSON over HTTP (Telegram, Discord's and Slack's REST, signal-cli).
// Runs in: worker (sandboxed)
//
// libcurl, with CURLOPT_PROXY "socks5h://localhost/run/chitin/egress.sock": the broker resolves
// the name and checks the address, TLS stays end to end. Redirects are never followed (a
// platform API does not redirect; following one would be a second, undecided destination).
// An HttpClient belongs to one thread; interrupt() may be called from another.

#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace chitin::channel {

struct HttpPart {  // one part of a multipart/form-data body
  std::string name;
  std::string data;
  std::string fileName;  // set for a file part
  std::string contentType;
};

struct HttpRequest {
  std::string method = "GET";  // GET, POST, PUT, DELETE, PATCH
  std::string url;
  std::vector<std::string> headers;          // "Name: value"
  std::string body;                          // sent as is (set Content-Type in headers)
  std::vector<HttpPart> multipart;           // if non-empty: multipart/form-data instead of body
  std::chrono::milliseconds timeout{30000};  // the whole request
  size_t maxResponseBytes = 8u << 20;        // longer bodies fail the request
  // Streaming responses (SSE): called with each piece of the body as it arrives; return false
  // to stop. When set, `body` in the response stays empty and timeout is the idle timeout.
  std::function<bool(std::string_view)> onBody;
};

struct HttpResponse {
  long status = 0;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string header(std::string_view name) const;  // "" when absent; `name` lower-case
};

class HttpClient {
 public:
  // `egressSocket` "" = direct (tests outside a sandbox). `caFile` "" = the system CA store.
  explicit HttpClient(std::string egressSocket, std::string caFile = "");
  ~HttpClient();

  // Throws ChannelError on a transport failure (naming the host, never the URL's path, which
  // may hold a token: Telegram puts it there); HTTP error statuses are returned, not thrown.
  // Throws StreamInterrupted after interrupt().
  HttpResponse perform(const HttpRequest& request);

  // From any thread: aborts a running perform() and every later one.
  void interrupt();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date), clamped to
// [0, cap]; `fallback` when absent or unparseable.
std::chrono::milliseconds retryAfter(const HttpResponse& response,
                                     std::chrono::milliseconds fallback,
                                     std::chrono::milliseconds cap = std::chrono::seconds(60));

}  // namespace chitin::channel
