// SPDX-License-Identifier: Apache-2.0
// Tests of the WebSocket client against an independent server (python3-websockets) and a raw
// one that breaks RFC 6455 on purpose (tests/fakes/ws_test_server.py).
// Runs in: tests

#include "ws-client.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "platform.h"
#include "test-process.h"

namespace chitin::channel {
namespace {

using namespace std::chrono_literals;
using testing::requireEnv;
using testing::TestProcess;

struct Servers {
  Servers() : process({requireEnv("CHITIN_PYTHON"), requireEnv("CHITIN_WS_TEST_SERVER")}) {
    std::istringstream ports(process.firstLine());
    ports >> real >> raw;
    REQUIRE(real != 0);
    REQUIRE(raw != 0);
  }
  std::string url(bool isRaw, const std::string& path) const {
    return "ws://127.0.0.1:" + std::to_string(isRaw ? raw : real) + path;
  }
  TestProcess process;
  int real = 0, raw = 0;
};

Servers& servers() {
  static Servers s;  // one server process for the whole file: it starts in ~150 ms
  return s;
}

std::unique_ptr<WebSocket> open(const std::string& url, WebSocketOptions options = {}) {
  return WebSocket::connect(url, options);
}

WebSocket::Message next(WebSocket& ws) {
  auto m = ws.receive(5s);
  REQUIRE_MESSAGE(m.has_value(), "no message within 5 s");
  return *m;
}

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const ChannelError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_CASE("websocket URL: scheme, host, port and target are parsed; junk is refused by name") {
  auto u = parseWebSocketUrl("wss://gateway.discord.gg/?v=10&encoding=json");
  CHECK(u.tls);
  CHECK(u.host == "gateway.discord.gg");
  CHECK(u.port == 443);
  CHECK(u.target == "/?v=10&encoding=json");
  u = parseWebSocketUrl("ws://[::1]:8080?x=1");
  CHECK(!u.tls);
  CHECK(u.host == "::1");
  CHECK(u.port == 8080);
  CHECK(u.target == "/?x=1");
  CHECK(parseWebSocketUrl("ws://h").target == "/");
  CHECK(errorOf([] { parseWebSocketUrl("https://x/"); }).find("expected ws:// or wss://") !=
        std::string::npos);
  CHECK(errorOf([] { parseWebSocketUrl("wss://user:pw@x/"); }).find("user info") !=
        std::string::npos);
  CHECK(errorOf([] { parseWebSocketUrl("wss://x:99999/"); }).find("port") != std::string::npos);
  CHECK(errorOf([] { parseWebSocketUrl("wss://x:/"); }).find("port") != std::string::npos);
  CHECK(errorOf([] { parseWebSocketUrl("wss:///p"); }).find("no host") != std::string::npos);
  CHECK(errorOf([] { parseWebSocketUrl("wss://x/a b"); }).find("space") != std::string::npos);
}

TEST_CASE("websocket: text and binary of every length class round-trip through a real server") {
  auto ws = open(servers().url(false, "/echo"));
  for (size_t n : {0u, 5u, 125u, 126u, 65535u, 65536u, 300000u}) {
    std::string text(n, 'a');
    if (n > 3) text.replace(0, 3, "✓");
    ws->sendText(text);
    auto m = next(*ws);
    CHECK(m.kind == WebSocket::Kind::TEXT);
    CHECK(m.data == text);
  }
  std::string bytes("\x00\xff\x80 binary", 10);
  ws->sendBinary(bytes);
  auto m = next(*ws);
  CHECK(m.kind == WebSocket::Kind::BINARY);
  CHECK(m.data == bytes);
  // A close we start: the server answers with our code.
  ws->close(WS_NORMAL, "bye");
  CHECK(next(*ws).kind == WebSocket::Kind::CLOSED);
}

TEST_CASE("websocket: the handshake asks for no extension and carries our headers") {
  WebSocketOptions options;
  options.headers = {"Authorization: Bearer test"};
  auto ws = open(servers().url(false, "/headers"), options);
  auto headers = nlohmann::json::parse(next(*ws).data);
  CHECK(!headers.contains("sec-websocket-extensions"));
  CHECK(headers["authorization"] == "Bearer test");
  CHECK(headers["sec-websocket-version"] == "13");
  CHECK(headers["host"] == "127.0.0.1:" + std::to_string(servers().real));
  options.headers = {"X-Evil: a\r\nInjected: b"};
  CHECK(errorOf([&] { open(servers().url(false, "/headers"), options); }).find("line break") !=
        std::string::npos);
}

TEST_CASE("websocket: a fragmented text message arrives whole, then the next one") {
  auto ws = open(servers().url(false, "/fragments"));
  CHECK(next(*ws).data == "frag-1 frag-2 frag-3 ✓");
  CHECK(next(*ws).data == "done");
}

TEST_CASE("websocket: a server ping is answered with a pong") {
  auto ws = open(servers().url(false, "/ping"));
  CHECK(next(*ws).data == "pong ok");
}

TEST_CASE("websocket: the server's close code and reason are reported, and answered") {
  auto ws = open(servers().url(false, "/echo"));
  ws->sendText("close 4004 Authentication failed.");
  auto m = next(*ws);
  CHECK(m.kind == WebSocket::Kind::CLOSED);
  CHECK(m.closeCode == 4004);
  CHECK(m.closeReason == "Authentication failed.");
  CHECK(next(*ws).kind == WebSocket::Kind::CLOSED);  // and stays closed
}

TEST_CASE("websocket: a message over the size bound closes with 1009 before it is buffered") {
  WebSocketOptions options;
  options.maxMessageBytes = 1000;
  auto ws = open(servers().url(false, "/big?n=1000"), options);
  CHECK(next(*ws).data.size() == 1000);
  ws = open(servers().url(false, "/big?n=1001"), options);
  CHECK(errorOf([&] { ws->receive(5s); }).find("over the 1000-byte bound") != std::string::npos);
}

TEST_CASE("websocket: a wrong Sec-WebSocket-Accept, an unoffered extension or a refusal fail") {
  CHECK(errorOf([] {
          open(servers().url(true, "/bad-accept"));
        }).find("Sec-WebSocket-Accept does not match") != std::string::npos);
  CHECK(errorOf([] { open(servers().url(true, "/extension")); }).find("extension") !=
        std::string::npos);
  CHECK(errorOf([] {
          open(servers().url(true, "/refuse"));
        }).find("\"HTTP/1.1 401 Unauthorized\"") != std::string::npos);
}

TEST_CASE("websocket: a frame sent with the 101 response is not lost") {
  auto ws = open(servers().url(true, "/early"));
  CHECK(next(*ws).data == "hi");
}

TEST_CASE("websocket: masked, RSV and non-UTF-8 frames from the server are protocol errors") {
  CHECK(errorOf([] { open(servers().url(true, "/masked"))->receive(5s); }).find("masked") !=
        std::string::npos);
  CHECK(errorOf([] { open(servers().url(true, "/rsv"))->receive(5s); }).find("RSV") !=
        std::string::npos);
  CHECK(errorOf([] { open(servers().url(true, "/bad-utf8"))->receive(5s); }).find("not UTF-8") !=
        std::string::npos);
  CHECK(errorOf([] {
          open(servers().url(true, "/bad-close"))->receive(5s);
        }).find("close frame with code 1005") != std::string::npos);
  // Each was answered with the RFC's close code before the connection was dropped.
  nlohmann::json closes;
  for (int i = 0; i < 50 && closes.size() < 4; ++i) {
    closes = nlohmann::json::parse(next(*open(servers().url(false, "/closes"))).data);
    if (closes.size() < 4) std::this_thread::sleep_for(20ms);
  }
  CHECK(closes["/masked"] == WS_PROTOCOL_ERROR);
  CHECK(closes["/rsv"] == WS_PROTOCOL_ERROR);
  CHECK(closes["/bad-utf8"] == WS_INVALID_DATA);
  CHECK(closes["/bad-close"] == WS_PROTOCOL_ERROR);
}

TEST_CASE("websocket: a ping between two fragments is answered and the message assembled") {
  auto ws = open(servers().url(true, "/interleave"));
  CHECK(next(*ws).data == "ab");
  CHECK(next(*ws).data == "pong:mid");
}

TEST_CASE("websocket: a timeout mid-frame keeps the partial frame for the next receive") {
  auto ws = open(servers().url(true, "/slow"));
  CHECK(!ws->receive(100ms).has_value());
  CHECK(next(*ws).data == "slow");
}

TEST_CASE("websocket: a TCP close without a close frame is reported as 1006") {
  auto ws = open(servers().url(true, "/vanish"));
  auto m = next(*ws);
  CHECK(m.kind == WebSocket::Kind::CLOSED);
  CHECK(m.closeCode == WS_ABNORMAL);
}

TEST_CASE("websocket: a raw close frame's code and reason are read") {
  auto ws = open(servers().url(true, "/close"));
  auto m = next(*ws);
  CHECK(m.closeCode == 4004);
  CHECK(m.closeReason == "Authentication failed.");
}

TEST_CASE("websocket: wss:// through TLS, verified against the CA and the host name") {
  std::string dir = testing::makeTempDir();
  std::string cert = dir + "/cert.pem", key = dir + "/key.pem";
  std::string command =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost -keyout " +
      key + " -out " + cert + " 2>/dev/null";
  REQUIRE(std::system(command.c_str()) == 0);
  {
    TestProcess server(
        {requireEnv("CHITIN_PYTHON"), requireEnv("CHITIN_WS_TEST_SERVER"), "--tls", cert, key});
    std::istringstream ports(server.firstLine());
    int port = 0;
    ports >> port;
    WebSocketOptions options;
    options.caFile = cert;
    auto ws = open("wss://localhost:" + std::to_string(port) + "/echo", options);
    ws->sendText("over TLS ✓");
    CHECK(next(*ws).data == "over TLS ✓");
    ws->close(WS_NORMAL, "");
    // The same server under a name its certificate does not carry is refused.
    CHECK(errorOf([&] {
            open("wss://127.0.0.1:" + std::to_string(port) + "/echo", options);
          }).find("TLS") != std::string::npos);
    // And without the test CA, against the system store.
    CHECK(errorOf([&] { open("wss://localhost:" + std::to_string(port) + "/echo"); }).find("TLS") !=
          std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("websocket: interrupt() from another thread ends a blocked receive at once") {
  auto ws = open(servers().url(false, "/echo"));
  auto start = std::chrono::steady_clock::now();
  std::thread stopper([&] {
    std::this_thread::sleep_for(100ms);
    ws->interrupt();
  });
  CHECK_THROWS_AS(ws->receive(10s), StreamInterrupted);
  stopper.join();
  CHECK(std::chrono::steady_clock::now() - start < 2s);
}

}  // namespace
}  // namespace chitin::channel
