// SPDX-License-Identifier: Apache-2.0
// GatewayClient against an independent fake gateway (cli/testdata/fake_gateway.py).
// Runs in: test harness

#include "gateway-client.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "fake-gateway-fixture.h"

namespace chitin::cli {
namespace {

using testing::FakeGateway;
using Kind = GatewayError::Kind;

ClientOptions options(std::string token = "secret-token") {
  ClientOptions o;
  o.token = std::move(token);
  o.user = "alice";
  return o;
}

// Runs `f`, which must throw GatewayError, and returns it.
template <typename F>
GatewayError expectError(F&& f) {
  try {
    f();
  } catch (const GatewayError& e) {
    return e;
  }
  FAIL("expected a GatewayError");
  throw std::logic_error("unreachable");
}

TEST_CASE("gateway URL: defaults, IPv6 and what is rejected") {
  GatewayUrl url = GatewayUrl::parse("ws://127.0.0.1:18789");
  CHECK(url.host == "127.0.0.1");
  CHECK(url.port == 18789);
  CHECK(url.path == "/ws");
  url = GatewayUrl::parse("ws://[::1]:9000/custom");
  CHECK(url.host == "::1");
  CHECK(url.port == 9000);
  CHECK(url.path == "/custom");
  CHECK(GatewayUrl::parse("ws://localhost/").port == 18789);
  for (const char* bad : {"http://127.0.0.1:1", "127.0.0.1:18789", "ws://:80", "ws://h:0",
                          "ws://h:65536", "ws://h:12x", "ws://[::1:80", "ws://u:p@h:1"}) {
    CAPTURE(bad);
    CHECK_THROWS_AS(GatewayUrl::parse(bad), std::invalid_argument);
  }
  try {
    GatewayUrl::parse("wss://example.org");
    FAIL("wss:// accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("wss:// is not supported") != std::string::npos);
  }
}

TEST_CASE("gateway client: handshake, connect and a request") {
  FakeGateway fake;
  {
    GatewayClient client(GatewayUrl::parse(fake.url()), options());
    CHECK(client.hello().value("protocol", 0) == 1);
    Response health = client.request("health", nlohmann::json::object());
    CHECK(health.ok);
    CHECK(health.payload.value("version", "") == "0.1.0-fake");
    Response unknown = client.request("no.such.method", nlohmann::json::object());
    CHECK_FALSE(unknown.ok);
    CHECK(unknown.errorCode == "NOT_FOUND");
  }
  std::string log = fake.log();
  CHECK(log.find("\"method\": \"connect\"") != std::string::npos);
  CHECK(log.find("\"user\": \"alice\"") != std::string::npos);
  CHECK(log.find("violation") == std::string::npos);  // masking, nonce, key: all as the RFC says
  CHECK(fake.waitForLog("{\"close\": \"03e8\"}"));    // the destructor closed with 1000
}

TEST_CASE("gateway client: a wrong token is REJECTED with the server's code and message") {
  FakeGateway fake;
  GatewayError e =
      expectError([&] { GatewayClient(GatewayUrl::parse(fake.url()), options("nope")); });
  CHECK(e.kind() == Kind::REJECTED);
  CHECK(e.code() == "UNAUTHORIZED");
  CHECK(std::string(e.what()) == "invalid gateway token");
}

TEST_CASE("gateway client: nothing listening is UNREACHABLE (connection refused)") {
  std::string url = "ws://127.0.0.1:" + std::to_string(testing::closedPort());
  GatewayError e = expectError([&] { GatewayClient(GatewayUrl::parse(url), options()); });
  CHECK(e.kind() == Kind::UNREACHABLE);
  CHECK(std::string(e.what()).find("refused") != std::string::npos);
}

TEST_CASE("gateway client: a listener that never answers times out within the connect timeout") {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  REQUIRE(listen(fd, 4) == 0);  // the kernel completes the TCP handshake; nobody reads
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ClientOptions o = options();
  o.connectTimeoutMs = 200;
  auto start = std::chrono::steady_clock::now();
  GatewayError e = expectError([&] {
    GatewayClient(GatewayUrl::parse("ws://127.0.0.1:" + std::to_string(ntohs(addr.sin_port))), o);
  });
  auto elapsed = std::chrono::steady_clock::now() - start;
  close(fd);
  CHECK(e.kind() == Kind::TIMEOUT);
  CHECK(elapsed >= std::chrono::milliseconds(190));
  CHECK(elapsed < std::chrono::milliseconds(2000));
}

TEST_CASE("gateway client: a wrong Sec-WebSocket-Accept is a PROTOCOL error") {
  FakeGateway fake({"--mode", "bad-accept"});
  GatewayError e = expectError([&] { GatewayClient(GatewayUrl::parse(fake.url()), options()); });
  CHECK(e.kind() == Kind::PROTOCOL);
  CHECK(std::string(e.what()).find("Sec-WebSocket-Accept") != std::string::npos);
}

TEST_CASE("gateway client: an HTTP answer other than 101 is UNREACHABLE and quoted") {
  FakeGateway fake({"--mode", "http-404"});
  GatewayError e = expectError([&] { GatewayClient(GatewayUrl::parse(fake.url()), options()); });
  CHECK(e.kind() == Kind::UNREACHABLE);
  CHECK(std::string(e.what()).find("HTTP/1.1 404 Not Found") != std::string::npos);
}

TEST_CASE("gateway client: fragmented messages are reassembled and pings answered mid-message") {
  FakeGateway fake;
  GatewayClient client(GatewayUrl::parse(fake.url()), options());
  std::vector<std::string> deltas;
  std::vector<std::string> names;
  client.setEventHandler([&](const Event& e) {
    names.push_back(e.name);
    if (e.name == "agent" && e.payload.value("stream", "") == "assistant")
      deltas.push_back(e.payload.value("delta", ""));
  });
  std::string id = client.send("agent", {{"message", "hello"}});
  std::optional<Response> accepted = client.waitFor(id, 5000);
  REQUIRE(accepted);
  CHECK(accepted->payload.value("status", "") == "accepted");
  std::optional<Response> final = client.waitFor(id, 5000);
  REQUIRE(final);
  CHECK(final->payload.value("status", "") == "ok");  // the fake says "error" without our pong
  CHECK(deltas == std::vector<std::string>{"Let me look.", "NOT OURS", "Found 2 files."});
  CHECK(std::find(names.begin(), names.end(), "presence") != names.end());
}

TEST_CASE("gateway client: 16- and 64-bit frame lengths") {
  FakeGateway fake;
  GatewayClient client(GatewayUrl::parse(fake.url()), options());
  std::string delta;
  client.setEventHandler([&](const Event& e) { delta += e.payload.value("delta", ""); });
  std::string id = client.send("agent", {{"message", "big"}});
  REQUIRE(client.waitFor(id, 5000));
  std::optional<Response> final = client.waitFor(id, 5000);
  REQUIRE(final);
  CHECK(delta == std::string(300, 'y'));
  CHECK(final->payload.value("reply", "") == std::string(70000, 'x'));
  // And our own long frame (126-length form, masked) reaches the fake intact.
  std::string longMessage(1000, 'z');
  Response echo = client.request("agent", {{"message", longMessage}});
  CHECK(echo.payload.value("runId", "") == "run-" + longMessage);
}

TEST_CASE("gateway client: a readable wake fd interrupts a wait; the connection stays usable") {
  FakeGateway fake;
  GatewayClient client(GatewayUrl::parse(fake.url()), options());
  int pipeFds[2];
  REQUIRE(pipe2(pipeFds, O_NONBLOCK | O_CLOEXEC) == 0);
  client.setWakeFd(pipeFds[0]);
  std::string id = client.send("agent", {{"message", "slow"}});
  std::optional<Response> accepted = client.waitFor(id, 5000);
  REQUIRE(accepted);
  REQUIRE(write(pipeFds[1], "x", 1) == 1);
  CHECK_FALSE(client.waitFor(id, 5000).has_value());
  client.send("agent.abort", {{"runId", accepted->payload.value("runId", "")}});
  std::optional<Response> final = client.waitFor(id, 5000);
  REQUIRE(final);
  CHECK(final->payload.value("status", "") == "aborted");
  close(pipeFds[0]);
  close(pipeFds[1]);
}

TEST_CASE("gateway client: a dropped connection is CONNECTION_LOST") {
  FakeGateway fake;
  GatewayClient client(GatewayUrl::parse(fake.url()), options());
  std::string id = client.send("agent", {{"message", "drop"}});
  REQUIRE(client.waitFor(id, 5000));
  GatewayError e = expectError([&] { client.waitFor(id, 5000); });
  CHECK(e.kind() == Kind::CONNECTION_LOST);
}

}  // namespace
}  // namespace chitin::cli
