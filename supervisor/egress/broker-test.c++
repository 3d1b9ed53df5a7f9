// SPDX-License-Identifier: Apache-2.0
// The broker end to end on a real loop: workers' clients (libcurl with socks5h over the unix
// socket, a raw client, Python's socket module) against local servers; every refusal answered
// with its reply code, audited, and nothing connected.
// Runs in: tests

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <memory>

#include "audit-log.h"
#include "broker-test-fixture.h"

namespace chitin::egress {

using namespace testing;

TEST_CASE("broker: libcurl (socks5h over the unix socket) reaches the host the owner named") {
  TestServer http(TestServer::Mode::HTTP_HELLO);
  Fixture f;
  f.resolver.script("fake-model.test", {{"127.0.0.1"}});
  std::string socket =
      f.open("model", {rule(local(http.port()), true),
                       rule("fake-model.test:" + std::to_string(http.port()), true)});
  auto byAddress = curlGet(socket, "http://127.0.0.1:" + std::to_string(http.port()) + "/v1");
  CHECK(byAddress.curlCode == 0);
  CHECK(byAddress.status == 200);
  CHECK(byAddress.body == "hello");
  auto byName = curlGet(socket, "http://fake-model.test:" + std::to_string(http.port()) + "/");
  CHECK(byName.body == "hello");
  CHECK(f.resolver.lookups("fake-model.test") == 1);  // the broker resolved it, not curl

  auto records = f.records(2);
  REQUIRE(records.size() == 2);
  CHECK(records[0].worker() == "model");
  CHECK(records[0].host() == "127.0.0.1");
  CHECK(records[0].port() == http.port());
  CHECK(records[0].address() == local(http.port()));
  CHECK(records[0].outcome() == "ok");
  CHECK(records[0].bytes_up() > 20);
  CHECK(records[0].bytes_down() == 62);  // the whole response
  CHECK(records[1].host() == "fake-model.test");
  CHECK(records[1].address() == local(http.port()));
  CHECK(f.tunnels() == 0);
  // The socket: in the private directory, mode 0600.
  struct stat st;
  REQUIRE(stat(socket.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(stat((f.home.path() + "/egress").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
}

TEST_CASE("broker: a host outside the allowlist is refused (0x02), audited, and nothing connects") {
  TestServer allowed(TestServer::Mode::ECHO_BACK);
  TestServer other(TestServer::Mode::ECHO_BACK);
  Fixture f;
  std::string socket = f.open("channel:telegram:default", {rule(local(allowed.port()), true)});
  auto refused = socksConnect(socket, "127.0.0.1", other.port());
  CHECK(refused.reply == 0x02);
  CHECK(readAll(refused.fd, 3000) == "");  // then closed
  close(refused.fd);
  auto wrongPort = curlGet(socket, "http://127.0.0.1:" + std::to_string(other.port()) + "/");
  CHECK(wrongPort.curlCode != 0);
  CHECK(wrongPort.error == "Can't complete SOCKS5 connection to 127.0.0.1. (2)");
  CHECK(other.accepted() == 0);
  // Control: the allowed one connects and echoes.
  auto ok = socksConnect(socket, "127.0.0.1", allowed.port());
  CHECK(ok.reply == 0x00);
  CHECK(write(ok.fd, "ping", 4) == 4);
  shutdown(ok.fd, SHUT_WR);
  CHECK(readAll(ok.fd, 3000) == "ping");
  close(ok.fd);
  auto records = f.records(3);
  REQUIRE(records.size() == 3);
  CHECK(records[0].worker() == "channel:telegram:default");
  CHECK(records[0].outcome() == "refused: not in the allowlist");
  CHECK(records[0].address() == "");
  CHECK(records[1].outcome() == "refused: not in the allowlist");
  CHECK(records[2].outcome() == "ok");
  CHECK(records[2].bytes_up() == 4);
  CHECK(records[2].bytes_down() == 4);
}

TEST_CASE("broker: a name resolving to a private address is refused unless the owner allowed it") {
  TestServer echo(TestServer::Mode::ECHO_BACK);
  std::string port = std::to_string(echo.port());
  Fixture f;
  f.resolver.script("internal.test", {{"127.0.0.1"}});
  f.resolver.script("mixed.test", {{"93.184.216.34", "10.0.0.1"}});
  f.resolver.script("zero.test", {{"0.0.0.0"}});
  f.resolver.script("mapped.test", {{"::ffff:127.0.0.1"}});
  std::string socket = f.open("w", {rule("internal.test:" + port), rule("mixed.test:" + port),
                                    rule("zero.test:" + port, true), rule("mapped.test:" + port)});
  for (const char* host : {"internal.test", "mixed.test", "zero.test", "mapped.test"}) {
    CAPTURE(host);
    auto r = socksConnect(socket, host, echo.port());
    CHECK(r.reply == 0x02);
    close(r.fd);
  }
  CHECK(echo.accepted() == 0);
  auto records = f.records(4);
  REQUIRE(records.size() == 4);
  CHECK(records[0].outcome() ==
        "refused: resolves to 127.0.0.1:" + port + ", loopback (127.0.0.0/8)");
  CHECK(records[0].address() == "127.0.0.1:" + port);
  CHECK(records[1].outcome() == "refused: resolves to 10.0.0.1:" + port + ", private (10.0.0.0/8)");
  CHECK(records[2].outcome() ==
        "refused: resolves to 0.0.0.0:" + port + ", \"this network\" (0.0.0.0/8) (never allowed)");
  CHECK(records[3].outcome() ==
        "refused: resolves to [::ffff:127.0.0.1]:" + port + ", loopback (127.0.0.0/8)");
  // Control: listed in egress.allow_private, the same name connects.
  config::EgressConfig egress;
  egress.add_allow_private("internal.test:" + port);
  Rule allowed = ownerRule(rule("internal.test:" + port), egress);
  REQUIRE(allowed.privateOk);
  std::string second = f.open("w2", {allowed});
  auto ok = socksConnect(second, "internal.test", echo.port());
  CHECK(ok.reply == 0x00);
  close(ok.fd);
}

TEST_CASE("broker: DNS rebinding: one lookup per tunnel, to the address that was checked") {
  TestServer echo(TestServer::Mode::ECHO_BACK);  // on 127.0.0.1 only
  std::string port = std::to_string(echo.port());
  BrokerSettings settings;
  settings.connectTimeoutMs = 500;
  Fixture f(settings);
  // First answer public (checked, passes; unreachable here or not, it is not our server), the
  // second private: the tunnel never goes to the private one.
  f.resolver.script("rebind.test", {{"8.8.8.8"}, {"127.0.0.1"}});
  // The owner allowed this one privately: each tunnel connects where its own lookup said.
  f.resolver.script("flip.test", {{"127.0.0.1"}, {"127.0.0.2"}});
  std::string socket = f.open("w", {rule("rebind.test:" + port), rule("flip.test:" + port, true)});
  auto first = socksConnect(socket, "rebind.test", echo.port());
  CHECK(first.reply != 0x00);  // 8.8.8.8 is not our server: unreachable, refused or timed out
  close(first.fd);
  auto second = socksConnect(socket, "rebind.test", echo.port());
  CHECK(second.reply == 0x02);
  close(second.fd);
  CHECK(echo.accepted() == 0);
  CHECK(f.resolver.lookups("rebind.test") == 2);

  auto a = socksConnect(socket, "flip.test", echo.port());
  CHECK(a.reply == 0x00);
  close(a.fd);
  f.records(3);  // a's tunnel has ended
  auto b = socksConnect(socket, "flip.test", echo.port());
  CHECK(b.reply == 0x05);  // 127.0.0.2: nothing listens there
  close(b.fd);
  CHECK(f.resolver.lookups("flip.test") == 2);
  auto records = f.records(4);
  REQUIRE(records.size() == 4);
  CHECK(records[0].address() == "8.8.8.8:" + port);
  CHECK(records[1].address() == "127.0.0.1:" + port);
  CHECK(records[1].outcome().rfind("refused: resolves to 127.0.0.1", 0) == 0);
  CHECK(records[2].address() == "127.0.0.1:" + port);
  CHECK(records[3].address() == "127.0.0.2:" + port);
  CHECK(records[3].outcome() == "error: connection refused");
}

TEST_CASE("broker: the gateway's own port is refused on every host, even a privateOk rule") {
  TestServer gateway(TestServer::Mode::ECHO_BACK);
  Fixture f;
  f.loop.run([&] { f.broker->setGatewayPort(gateway.port()); });
  f.resolver.script("localhost", {{"127.0.0.1"}});
  std::string socket = f.open("model", {rule(local(gateway.port()), true),
                                        rule("localhost:" + std::to_string(gateway.port()), true)});
  for (const char* host : {"127.0.0.1", "localhost"}) {
    auto r = socksConnect(socket, host, gateway.port());
    CHECK(r.reply == 0x02);
    close(r.fd);
  }
  CHECK(gateway.accepted() == 0);
  auto records = f.records(2);
  REQUIRE(records.size() == 2);
  CHECK(records[0].outcome() == "refused: the gateway's own port");
}

TEST_CASE("broker: Python's raw socket gets the RFC reply codes: 0xff, 0x07, 0x08, 0x02, 0x00") {
  TestServer echo(TestServer::Mode::ECHO_BACK);
  Fixture f;
  std::string socket = f.open("w", {rule(local(echo.port()), true)});
  std::string command = std::string("/usr/bin/python3 ") + CHITIN_SOCKS_CLIENT_PY + " " + socket +
                        " " + std::to_string(echo.port());
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  CHECK(pclose(pipe) == 0);
  CHECK(out ==
        "auth-only: 05ff\n"
        "bind: 0507\n"
        "udp-associate: 0507\n"
        "atyp-5: 0508\n"
        "ipv6-not-allowed: 0502\n"
        "domain-not-allowed: 0502\n"
        "connect-ipv4: 0500 echo=hello through the broker\n");
  auto records = f.records(7);
  CHECK(records.size() == 7);
}

TEST_CASE("broker: at most max_connections_per_worker tunnels at once, per worker") {
  TestServer echo(TestServer::Mode::ECHO_BACK);
  BrokerSettings settings;
  settings.maxConnectionsPerWorker = 2;
  Fixture f(settings);
  std::string a = f.open("a", {rule(local(echo.port()), true)});
  std::string b = f.open("b", {rule(local(echo.port()), true)});
  auto one = socksConnect(a, "127.0.0.1", echo.port());
  auto two = socksConnect(a, "127.0.0.1", echo.port());
  CHECK(one.reply == 0x00);
  CHECK(two.reply == 0x00);
  auto three = socksConnect(a, "127.0.0.1", echo.port());
  CHECK(three.reply == -1);  // closed before any reply
  // Another worker is not affected.
  auto other = socksConnect(b, "127.0.0.1", echo.port());
  CHECK(other.reply == 0x00);
  for (int fd : {one.fd, two.fd, three.fd, other.fd}) close(fd);
  auto records = f.records(4);
  bool capped = false;
  for (auto& r : records)
    capped = capped || r.outcome() == "refused: more than 2 connections at once";
  CHECK(capped);
}

TEST_CASE("broker: the handshake, the lookup and the connect each have a deadline") {
  TestServer queue(TestServer::Mode::FULL_QUEUE);
  BrokerSettings settings;
  settings.handshakeTimeoutMs = 300;
  settings.connectTimeoutMs = 300;
  Fixture f(settings);
  f.resolver.script("slow.test", {{"never"}});
  std::string socket = f.open("w", {rule("slow.test:80"), rule(local(queue.port()), true)});
  // Silent after connecting: closed at the handshake deadline.
  int silent = connectUnix(socket);
  auto started = std::chrono::steady_clock::now();
  CHECK(readAll(silent, 5000) == "");
  auto waited = std::chrono::steady_clock::now() - started;
  CHECK(waited >= std::chrono::milliseconds(250));
  CHECK(waited < std::chrono::milliseconds(3000));
  close(silent);
  auto unresolved = socksConnect(socket, "slow.test", 80);
  CHECK(unresolved.reply == 0x04);
  close(unresolved.fd);
  // A listener whose queue is full never completes the handshake: the connect times out.
  std::vector<int> fillers;
  for (int i = 0; i < 4; i++) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(queue.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    fillers.push_back(fd);
  }
  auto stuck = socksConnect(socket, "127.0.0.1", queue.port());
  CHECK(stuck.reply == 0x04);
  close(stuck.fd);
  for (int fd : fillers) close(fd);
  auto records = f.records(3);
  REQUIRE(records.size() == 3);
  CHECK(records[0].outcome() == "timeout: no complete SOCKS5 request within 300 ms");
  CHECK(records[1].outcome() == "timeout: resolving the name");
  CHECK(records[2].outcome() == "timeout: connecting (over 300 ms)");
}

}  // namespace chitin::egress
