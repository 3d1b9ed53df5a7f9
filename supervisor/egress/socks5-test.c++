// SPDX-License-Identifier: Apache-2.0
// The SOCKS5 handshake parser: the RFC's messages in any chunking, each unsupported request
// answered with its reply code, and nothing read past the request.
// Runs in: tests

#include <doctest/doctest.h>

#include "socks5.h"

namespace chitin::egress::socks5 {

namespace {

std::string bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out += static_cast<char>(v);
  return out;
}

struct Run {
  std::string sent;
  bool close = false;
  std::optional<Request> request;
  std::string error;
  std::string rest;
};

// Feeds `input` in chunks of `chunk` bytes, as a socket might deliver it.
Run feedAll(const std::string& input, size_t chunk) {
  Handshake handshake;
  Run run;
  size_t at = 0;
  while (at < input.size() && !handshake.finished()) {
    std::string piece = input.substr(at, chunk);
    std::string_view view(piece);
    auto step = handshake.feed(view);
    at += piece.size() - view.size();
    run.sent += step.send;
    run.close = step.close;
    if (step.request) run.request = step.request;
    run.error = step.error;
  }
  run.rest = input.substr(at);
  return run;
}

const std::string GREETING = bytes({5, 1, 0});
const std::string CHOSEN = bytes({5, 0});

}  // namespace

TEST_CASE("socks5: CONNECT by domain, IPv4 and IPv6, in any chunking; the payload is left over") {
  std::string domain = GREETING + bytes({5, 1, 0, 3, 11}) + "example.com" + bytes({1, 187});
  std::string v4 = GREETING + bytes({5, 1, 0, 1, 93, 184, 216, 34, 0, 80});
  std::string v6 = GREETING + bytes({5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0,    0,
                                     0, 0, 0, 0, 0,    0,    0,    0,    1, 0x1f, 0x90});
  for (size_t chunk : {size_t(1), size_t(2), size_t(3), size_t(7), size_t(1000)}) {
    CAPTURE(chunk);
    auto d = feedAll(domain + "GET /", chunk);
    REQUIRE(d.request);
    CHECK(d.sent == CHOSEN);
    CHECK(d.request->type == AddressType::DOMAIN);
    CHECK(d.request->host == "example.com");
    CHECK(d.request->port == 443);
    CHECK(d.rest == "GET /");
    auto a = feedAll(v4, chunk);
    REQUIRE(a.request);
    CHECK(a.request->host == "93.184.216.34");
    CHECK(a.request->port == 80);
    auto b = feedAll(v6, chunk);
    REQUIRE(b.request);
    CHECK(b.request->host == "2001:db8::1");
    CHECK(b.request->port == 8080);
  }
  // Several methods offered, no-auth among them.
  auto many = feedAll(bytes({5, 3, 2, 1, 0}) + bytes({5, 1, 0, 1, 1, 2, 3, 4, 0, 1}), 1);
  CHECK(many.sent == CHOSEN);
  CHECK(many.request);
}

TEST_CASE("socks5: each unsupported request gets the RFC's reply code, then the connection ends") {
  auto bind = feedAll(GREETING + bytes({5, 2, 0, 1, 1, 2, 3, 4, 0, 80}), 3);
  CHECK(bind.close);
  CHECK(bind.sent == CHOSEN + reply(Reply::COMMAND_NOT_SUPPORTED));
  CHECK(bind.error == "SOCKS5 command 2 (only CONNECT is supported)");
  auto udp = feedAll(GREETING + bytes({5, 3, 0, 1, 1, 2, 3, 4, 0, 80}), 100);
  CHECK(udp.sent == CHOSEN + reply(Reply::COMMAND_NOT_SUPPORTED));
  auto atyp = feedAll(GREETING + bytes({5, 1, 0, 5, 1, 2, 3, 4, 0, 80}), 100);
  CHECK(atyp.sent == CHOSEN + reply(Reply::ADDRESS_TYPE_NOT_SUPPORTED));
  CHECK(atyp.error == "SOCKS5 address type 5");
  auto empty = feedAll(GREETING + bytes({5, 1, 0, 3, 0, 0, 80}), 100);
  CHECK(empty.sent == CHOSEN + reply(Reply::NOT_ALLOWED));
  auto auth = feedAll(bytes({5, 1, 2}), 100);
  CHECK(auth.close);
  CHECK(auth.sent == bytes({5, 0xff}));
  auto none = feedAll(bytes({5, 0}), 100);
  CHECK(none.sent == bytes({5, 0xff}));
  auto socks4 = feedAll(bytes({4, 1, 0, 80, 1, 2, 3, 4, 0}), 100);
  CHECK(socks4.close);
  CHECK(socks4.sent.empty());
  CHECK(socks4.error == "not SOCKS5 (first byte 4)");
  auto http = feedAll("GET / HTTP/1.1\r\n", 100);
  CHECK(http.error == "not SOCKS5 (first byte 71)");
  auto version = feedAll(GREETING + bytes({4, 1, 0, 1, 1, 2, 3, 4, 0, 80}), 100);
  CHECK(version.sent == CHOSEN + reply(Reply::GENERAL_FAILURE));
  CHECK(reply(Reply::SUCCEEDED) == bytes({5, 0, 0, 1, 0, 0, 0, 0, 0, 0}));
}

TEST_CASE("socks5: an incomplete handshake waits; the parser never holds more than a message") {
  Handshake handshake;
  std::string partial = GREETING + bytes({5, 1, 0, 3, 200}) + std::string(100, 'a');
  std::string_view view(partial);
  auto step = handshake.feed(view);
  CHECK(view.empty());
  CHECK_FALSE(step.close);
  CHECK_FALSE(step.request);
  CHECK_FALSE(handshake.finished());
  // A 255-byte domain, the longest there is, completes it.
  Handshake longest;
  std::string full = GREETING + bytes({5, 1, 0, 3, 255}) + std::string(255, 'b') + bytes({0, 80});
  CHECK(full.size() <= MAX_HANDSHAKE_BYTES);
  std::string_view all(full);
  auto done = longest.feed(all);
  REQUIRE(done.request);
  CHECK(done.request->host.size() == 255);
  CHECK_THROWS(longest.feed(all));
}

}  // namespace chitin::egress::socks5
