// SPDX-License-Identifier: Apache-2.0
// Tests for the browser Origin check on WebSocket upgrades.
// Runs in: supervisor (tests)

#include "origin-check.h"

#include <doctest/doctest.h>

#include <stdexcept>

namespace chitin::gateway {
namespace {

TEST_CASE("origin check: the gateway's own loopback origins are allowed") {
  OriginCheck check(18789, {});
  CHECK(check.allowed("http://127.0.0.1:18789"));
  CHECK(check.allowed("http://localhost:18789"));
  CHECK(check.allowed("http://[::1]:18789"));
  CHECK(check.allowed("HTTP://LocalHost:18789/"));  // case and one trailing slash do not matter
}

TEST_CASE("origin check: no Origin header (a non-browser client) is allowed") {
  CHECK(OriginCheck(18789, {}).allowed(std::nullopt));
}

TEST_CASE("origin check: other sites, ports, schemes and the opaque origin are refused") {
  OriginCheck check(18789, {});
  CHECK_FALSE(check.allowed("http://evil.example"));
  CHECK_FALSE(check.allowed("http://evil.example:18789"));
  CHECK_FALSE(check.allowed("http://127.0.0.1:18790"));
  CHECK_FALSE(check.allowed("http://127.0.0.1"));
  CHECK_FALSE(check.allowed("https://127.0.0.1:18789"));
  CHECK_FALSE(check.allowed("null"));
  CHECK_FALSE(check.allowed(""));
  CHECK_FALSE(check.allowed("http://127.0.0.1:18789.evil.example"));
  CHECK_FALSE(check.allowed("http://localhost:18789@evil.example"));
  CHECK_FALSE(check.allowed("file://"));
}

TEST_CASE("origin check: configured origins are allowed exactly") {
  OriginCheck check(18789, {"https://chat.example.org", "http://10.0.0.5:18789/"});
  CHECK(check.allowed("https://chat.example.org"));
  CHECK(check.allowed("http://10.0.0.5:18789"));
  CHECK_FALSE(check.allowed("http://chat.example.org"));
  CHECK_FALSE(check.allowed("https://sub.chat.example.org"));
  CHECK_FALSE(check.allowed("https://chat.example.org:8443"));
}

TEST_CASE("origin check: a malformed allowed origin is rejected by name") {
  for (const char* entry : {"chat.example.org", "https://*.example.org", "https://a.example/path",
                            "ftp://a.example", "https://"}) {
    try {
      OriginCheck check(18789, {entry});
      FAIL("accepted ", entry);
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find(entry) != std::string::npos);
    }
  }
}

TEST_CASE("origin check: WebSocket sources mirror the allowed origins") {
  OriginCheck check(8080, {"https://chat.example.org"});
  auto sources = check.webSocketSources();
  CHECK(sources == std::vector<std::string>{"ws://127.0.0.1:8080", "ws://localhost:8080",
                                            "wss://chat.example.org"});
}

}  // namespace
}  // namespace chitin::gateway
