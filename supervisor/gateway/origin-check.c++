// SPDX-License-Identifier: Apache-2.0
// Which browser Origins may open the gateway's WebSocket.
// Runs in: supervisor

#include "origin-check.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace chitin::gateway {

std::optional<std::string> OriginCheck::normalize(std::string_view origin) {
  std::string out(origin);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!out.empty() && out.back() == '/') out.pop_back();

  std::string_view rest;
  if (out.rfind("http://", 0) == 0) {
    rest = std::string_view(out).substr(7);
  } else if (out.rfind("https://", 0) == 0) {
    rest = std::string_view(out).substr(8);
  } else {
    return std::nullopt;
  }
  if (rest.empty()) return std::nullopt;
  // Host characters (including [::1] brackets) and an optional :port; nothing that could be
  // a path, query, user-info or wildcard.
  for (char c : rest) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
              c == ':' || c == '[' || c == ']';
    if (!ok) return std::nullopt;
  }
  return out;
}

OriginCheck::OriginCheck(uint16_t port, const std::vector<std::string>& allowedOrigins) {
  std::string suffix = ":" + std::to_string(port);
  allowed_ = {"http://127.0.0.1" + suffix, "http://localhost" + suffix, "http://[::1]" + suffix};
  for (const std::string& entry : allowedOrigins) {
    auto normalized = normalize(entry);
    if (!normalized) {
      throw std::invalid_argument("allowed origin \"" + entry +
                                  "\" is not of the form http(s)://host[:port]");
    }
    allowed_.push_back(*normalized);
  }
}

bool OriginCheck::allowed(std::optional<std::string_view> origin) const {
  if (!origin) return true;
  auto normalized = normalize(*origin);
  if (!normalized) return false;  // includes the opaque origin "null"
  return std::find(allowed_.begin(), allowed_.end(), *normalized) != allowed_.end();
}

std::vector<std::string> OriginCheck::webSocketSources() const {
  std::vector<std::string> out;
  for (const std::string& origin : allowed_) {
    // CSP source expressions cannot name IPv6 literals (Chromium warns and drops them); a page
    // loaded from [::1] is still covered by 'self'.
    if (origin.find("://[") != std::string::npos) continue;
    if (origin.rfind("https://", 0) == 0) {
      out.push_back("wss://" + origin.substr(8));
    } else {
      out.push_back("ws://" + origin.substr(7));
    }
  }
  return out;
}

}  // namespace chitin::gateway
