// SPDX-License-Identifier: Apache-2.0
// Which browser Origins may open the gateway's WebSocket: the gateway's own loopback origins
// plus the configured allowedOrigins, compared exactly (scheme, host and port).
// Runs in: supervisor
//
// A page on any other site could otherwise script a WebSocket to 127.0.0.1 and try tokens;
// the token is still required for everyone, this only narrows who may try from a browser.

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chitin::gateway {

class OriginCheck {
 public:
  // Throws std::invalid_argument naming the entry if an allowed origin is not of the form
  // scheme://host[:port] with scheme http or https (no path, no wildcard).
  OriginCheck(uint16_t port, const std::vector<std::string>& allowedOrigins);

  // `origin` is the request's Origin header, or nullopt when there is none (non-browser
  // clients, which still need the token).
  bool allowed(std::optional<std::string_view> origin) const;

  // ws:// and wss:// forms of the allowed origins, for the page's connect-src (IPv6 literals
  // left out: CSP cannot express them).
  std::vector<std::string> webSocketSources() const;

  // Lower-cases and strips one trailing slash; nullopt if `origin` is not scheme://host[:port].
  static std::optional<std::string> normalize(std::string_view origin);

 private:
  std::vector<std::string> allowed_;
};

}  // namespace chitin::gateway
