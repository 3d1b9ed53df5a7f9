// SPDX-License-Identifier: Apache-2.0
// The broker's bounds: a tunnel's lifetime, backpressure against a peer that does not read,
// half-close, the end of a worker's endpoint, long socket directories, the audit budget for
// tunnels that reach no host, and the system resolver.
// Runs in: tests

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "audit-log.h"
#include "broker-test-fixture.h"

namespace chitin::egress {

using namespace testing;

TEST_CASE("broker: a tunnel is closed after max_connection_seconds") {
  TestServer echo(TestServer::Mode::ECHO_BACK);
  BrokerSettings settings;
  settings.maxConnectionSeconds = 1;
  Fixture f(settings);
  std::string socket = f.open("w", {rule(local(echo.port()), true)});
  auto tunnel = socksConnect(socket, "127.0.0.1", echo.port());
  REQUIRE(tunnel.reply == 0x00);
  auto started = std::chrono::steady_clock::now();
  CHECK(readAll(tunnel.fd, 5000) == "");  // EOF from the broker, not a timeout
  CHECK(std::chrono::steady_clock::now() - started >= std::chrono::milliseconds(800));
  close(tunnel.fd);
  auto records = f.records(1);
  REQUIRE(records.size() == 1);
  CHECK(records[0].outcome() == "closed: open longer than 1 s");
  CHECK(records[0].duration_ms() >= 900);
}

TEST_CASE(
    "broker: a host that does not read stops the broker reading the worker (bounded memory)") {
  TestServer hold(TestServer::Mode::HOLD);
  BrokerSettings settings;
  settings.highWaterBytes = 256 * 1024;
  Fixture f(settings);
  std::string socket = f.open("w", {rule(local(hold.port()), true)});
  auto tunnel = socksConnect(socket, "127.0.0.1", hold.port());
  REQUIRE(tunnel.reply == 0x00);
  REQUIRE(fcntl(tunnel.fd, F_SETFL, O_NONBLOCK) == 0);
  std::string chunk(64 * 1024, 'x');
  size_t written = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline && written < (256u << 20)) {
    ssize_t n = write(tunnel.fd, chunk.data(), chunk.size());
    if (n > 0) {
      written += n;
      continue;
    }
    pollfd pfd{tunnel.fd, POLLOUT, 0};
    poll(&pfd, 1, 50);
  }
  // Kernel buffers on both hops plus the broker's high-water mark: a few MiB, never the
  // 256 MiB a broker reading without limit would have taken.
  MESSAGE("accepted before the worker's writes stalled: ", written / 1024, " KiB");
  CHECK(written < (32u << 20));
  CHECK(written > settings.highWaterBytes);
  close(tunnel.fd);
}

TEST_CASE("broker: half-close passes through; every byte is counted") {
  TestServer echo(TestServer::Mode::ECHO_BACK);
  Fixture f;
  std::string socket = f.open("w", {rule(local(echo.port()), true)});
  auto tunnel = socksConnect(socket, "127.0.0.1", echo.port());
  REQUIRE(tunnel.reply == 0x00);
  std::string payload(300000, 'p');
  size_t done = 0;
  while (done < payload.size()) {
    ssize_t n = write(tunnel.fd, payload.data() + done, payload.size() - done);
    REQUIRE(n > 0);
    done += n;
    // The echo comes back while we write: drain it so neither side blocks forever.
    if (done < payload.size()) break;
  }
  std::string echoed;
  std::thread writer([&] {
    while (done < payload.size()) {
      ssize_t n = write(tunnel.fd, payload.data() + done, payload.size() - done);
      if (n <= 0) break;
      done += n;
    }
    shutdown(tunnel.fd, SHUT_WR);
  });
  echoed = readAll(tunnel.fd, 5000);
  writer.join();
  CHECK(echoed.size() == payload.size());
  close(tunnel.fd);
  auto records = f.records(1);
  REQUIRE(records.size() == 1);
  CHECK(records[0].outcome() == "ok");
  CHECK(records[0].bytes_up() == payload.size());
  CHECK(records[0].bytes_down() == payload.size());
}

TEST_CASE("broker: closing a worker's endpoint ends its tunnels and removes its socket") {
  TestServer echo(TestServer::Mode::ECHO_BACK);
  Fixture f;
  std::string socket = f.open("w", {rule(local(echo.port()), true)});
  auto tunnel = socksConnect(socket, "127.0.0.1", echo.port());
  REQUIRE(tunnel.reply == 0x00);
  f.closeEndpoint(0);
  CHECK(readAll(tunnel.fd, 3000) == "");
  close(tunnel.fd);
  CHECK(access(socket.c_str(), F_OK) != 0);
  auto records = f.records(1);
  REQUIRE(records.size() == 1);
  CHECK(records[0].outcome() == "closed: the worker's endpoint was closed");
  CHECK(f.tunnels() == 0);
}

TEST_CASE("broker: a socket directory too long for sun_path is bound through /proc/self/fd") {
  TestServer echo(TestServer::Mode::ECHO_BACK);
  TempDir base;
  std::string dir = base.path() + "/" + std::string(100, 'd');
  REQUIRE(mkdir(dir.c_str(), 0700) == 0);
  Fixture f({}, dir + "/egress");
  std::string socket = f.open("w", {rule(local(echo.port()), true)});
  CHECK(socket.size() > 108);
  struct stat st;
  REQUIRE(lstat(socket.c_str(), &st) == 0);
  CHECK(S_ISSOCK(st.st_mode));
  // A client reaches it the same way (a worker reaches its bind mount by a short path).
  int dirFd = open((dir + "/egress").c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(dirFd >= 0);
  std::string shortPath =
      "/proc/self/fd/" + std::to_string(dirFd) + socket.substr(socket.rfind('/'));
  auto tunnel = socksConnect(shortPath, "127.0.0.1", echo.port());
  CHECK(tunnel.reply == 0x00);
  close(tunnel.fd);
  close(dirFd);
  // A directory anyone else could enter is refused.
  std::string open = base.path() + "/open";
  REQUIRE(mkdir(open.c_str(), 0755) == 0);
  REQUIRE(chmod(open.c_str(), 0755) == 0);
  LoopThread loop;
  ScriptedResolver resolver(loop.loop());
  BrokerSettings settings;
  settings.socketDir = open;
  CHECK_THROWS(loop.run([&] { Broker broker(loop.loop(), settings, resolver, *f.log); }));
}

TEST_CASE("broker: tunnels that reach no host are audited up to a budget a minute, then counted") {
  TestServer echo(TestServer::Mode::ECHO_BACK);
  BrokerSettings settings;
  settings.failureAuditsPerMinute = 3;
  Fixture f(settings);
  std::string socket = f.open("w", {rule(local(echo.port()), true)});
  for (int i = 0; i < 6; i++) {
    auto r = socksConnect(socket, "example.com", 443);
    CHECK(r.reply == 0x02);
    close(r.fd);
  }
  for (int i = 0; i < 2; i++) close(connectUnix(socket));  // hung up mid-handshake
  CHECK(f.records(3).size() == 3);
  // A tunnel that reached its host is always recorded.
  auto ok = socksConnect(socket, "127.0.0.1", echo.port());
  CHECK(ok.reply == 0x00);
  close(ok.fd);
  CHECK(f.records(4).size() == 4);
  f.closeEndpoint(0);
  auto records = f.records(5);
  REQUIRE(records.size() == 5);
  CHECK(records[3].outcome() == "ok");
  CHECK(records[4].outcome() ==
        "not recorded one by one: 5 more connections that reached no host (over the per-minute "
        "audit budget)");
}

TEST_CASE("broker: the system resolver answers from /etc/hosts (localhost) on the loop") {
  TestServer echo(TestServer::Mode::ECHO_BACK);
  TempDir home;
  auto log = audit::AuditLog::open(home.path() + "/audit");
  LoopThread loop;
  SystemResolver resolver(loop.loop());
  std::unique_ptr<Broker> broker;
  std::unique_ptr<Endpoint> endpoint;
  BrokerSettings settings;
  settings.socketDir = home.path() + "/egress";
  loop.run([&] {
    broker = std::make_unique<Broker>(loop.loop(), settings, resolver, *log);
    endpoint = broker->open("w", {rule("localhost:" + std::to_string(echo.port()), true),
                                  rule("no-such-host.invalid:80")});
  });
  auto tunnel = socksConnect(endpoint->socketPath(), "localhost", echo.port());
  // localhost may come first as ::1, where nothing listens: the next address is tried.
  CHECK(tunnel.reply == 0x00);
  close(tunnel.fd);
  auto missing = socksConnect(endpoint->socketPath(), "no-such-host.invalid", 80);
  CHECK(missing.reply == 0x04);
  close(missing.fd);
  loop.run([&] {
    endpoint.reset();
    broker.reset();
  });
}

}  // namespace chitin::egress
