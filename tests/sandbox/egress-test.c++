// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about egress profiles (the model's): the worker reaches its own broker socket
// at /run/chitin/egress.sock (bound read-only), and creates no socket of any network family.
// Runs in: tests (probes run in real sandboxes)

#include <doctest/doctest.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include "broker-test-fixture.h"
#include "probe-runner.h"

namespace chitin::testing {

namespace {

const char SIGSYS_EXIT[] = "killed by signal 31 (SIGSYS)";

ProbeSpec modelProbe(const std::string& socket, const std::string& kind, const std::string& probe,
                     std::vector<std::string> args) {
  ProbeSpec spec{"model", kind, probe, kj::mv(args)};
  spec.egressSocket = socket;
  return spec;
}

}  // namespace

TEST_CASE("model profile: the worker connects to its broker socket at /run/chitin/egress.sock") {
  UnixListener broker;
  // After the model lockdown, as the worker itself would.
  auto run =
      runProbe(modelProbe(broker.path(), "model", "connect-unix", {"/run/chitin/egress.sock"}));
  CHECK(run.result == "ok reply=pong");
  CHECK(run.exit.describe() == "exited with status 0");
  CHECK(broker.answered() == 1);
  // Control: the host path itself is not visible inside (only the bind is).
  auto host = runProbe(modelProbe(broker.path(), "model", "connect-unix", {broker.path()}));
  CHECK(host.result == "errno=ENOENT (connect)");
}

TEST_CASE("model profile: socket(AF_INET/AF_INET6/AF_NETLINK/AF_PACKET) kills the worker") {
  UnixListener broker;
  for (int family : {AF_INET, AF_INET6, AF_NETLINK, AF_PACKET}) {
    CAPTURE(family);
    // Kind "none": no worker lockdown, so what stops the probe is the profile's own filter.
    auto inside =
        runProbe(modelProbe(broker.path(), "none", "socket-family", {std::to_string(family)}));
    CHECK(inside.result == "");
    CHECK(inside.exit.describe() == SIGSYS_EXIT);
    // Control: outside the sandbox the same call returns (a socket, or an errno for AF_PACKET
    // without CAP_NET_RAW), so the kill is the profile filter's doing.
    auto outside = runUnsandboxed("socket-family", {std::to_string(family)});
    CHECK(outside.exit.describe() == "exited with status 0");
    CHECK(outside.result != "");
  }
  // Control: AF_UNIX is what the profile allows.
  auto unixSocket =
      runProbe(modelProbe(broker.path(), "none", "socket-family", {std::to_string(AF_UNIX)}));
  CHECK(unixSocket.result == "ok");
}

TEST_CASE("web-fetch profile: only the broker socket; no TCP socket, no home, no credentials") {
  UnixListener broker;
  auto spec = [&](const std::string& kind, const std::string& probe,
                  std::vector<std::string> args) {
    ProbeSpec s{"web-fetch", kind, probe, kj::mv(args)};
    s.egressSocket = broker.path();
    return s;
  };
  auto reached = runProbe(spec("web-fetch", "connect-unix", {"/run/chitin/egress.sock"}));
  CHECK(reached.result == "ok reply=pong");
  // Under the profile's own filter alone (kind "none"), a TCP socket kills the worker; outside
  // the sandbox the same call succeeds (the control).
  auto tcp = runProbe(spec("none", "socket-family", {std::to_string(AF_INET)}));
  CHECK(tcp.exit.describe() == SIGSYS_EXIT);
  CHECK(runUnsandboxed("socket-family", {std::to_string(AF_INET)}).result != "");
  // Nothing of the host's but /usr, the CA store and the socket: the service user's
  // credentials directory and /etc/passwd are not there; the CA store is (the control).
  CHECK(runProbe(spec("web-fetch", "read", {"/etc/passwd"})).result == "errno=ENOENT");
  CHECK(runProbe(spec("web-fetch", "read", {"/workspace/AGENTS.md"})).result == "errno=ENOENT");
  CHECK(runUnsandboxed("read", {"/etc/passwd"}).result.rfind("ok", 0) == 0);
  CHECK(runProbe(spec("web-fetch", "read", {"/etc/ssl/openssl.cnf"})).result.rfind("ok", 0) == 0);
}

TEST_CASE("model profile: the spawn is refused without a socket; exec refuses one") {
  CHECK_THROWS_WITH_AS(startProbe(modelProbe("", "model", "noop", {})),
                       "sandbox profile \"model\" has egress: true, but the spawn request gives no "
                       "egress socket (the worker would have no way to the network)",
                       spawn::SandboxUnavailable);
  UnixListener broker;
  TempDir workspace("chitin-ws");
  ProbeSpec exec{"exec", "exec", "noop", {}, {{"WORKSPACE", workspace.path()}}};
  exec.egressSocket = broker.path();
  CHECK_THROWS_WITH_AS(startProbe(exec),
                       ("sandbox profile \"exec\" has no egress: true, but the spawn request "
                        "gives it an egress socket (" +
                        broker.path() + ")")
                           .c_str(),
                       spawn::SandboxUnavailable);
}

TEST_CASE(
    "model worker through the real broker: its provider is reached; any other host, a name "
    "resolving to the metadata address and the gateway's port are refused and audited") {
  egress::testing::TestServer provider(egress::testing::TestServer::Mode::ECHO_BACK);
  egress::testing::TestServer other(egress::testing::TestServer::Mode::ECHO_BACK);
  egress::testing::TestServer gateway(egress::testing::TestServer::Mode::ECHO_BACK);
  egress::testing::Fixture broker;
  broker.loop.run([&] { broker.broker->setGatewayPort(gateway.port()); });
  broker.resolver.script("metadata.test", {{"169.254.169.254"}});
  // What ModelHost opens for base_url http://127.0.0.1:<port>, plus a name the owner allowed
  // without allowing a private address for it, plus (wrongly) the gateway's own address.
  std::string provider127 = "127.0.0.1:" + std::to_string(provider.port());
  std::string socket = broker.open(
      "model", {egress::parseRule(provider127, "test", true),
                egress::parseRule("metadata.test:80", "test", false),
                egress::parseRule("127.0.0.1:" + std::to_string(gateway.port()), "test", true)});
  auto connectFromWorker = [&](const std::string& host, uint16_t port) {
    // After the model lockdown, exactly as a compromised model worker would try it.
    return runProbe(modelProbe(socket, "model", "socks-connect",
                               {"/run/chitin/egress.sock", host, std::to_string(port)}))
        .result;
  };
  // Control: its own provider works.
  CHECK(connectFromWorker("127.0.0.1", provider.port()) == "ok reply=0 echo=ping");
  CHECK(connectFromWorker("127.0.0.1", other.port()) == "ok reply=2");
  CHECK(connectFromWorker("localhost", provider.port()) == "ok reply=2");  // not the name allowed
  CHECK(connectFromWorker("metadata.test", 80) == "ok reply=2");
  CHECK(connectFromWorker("127.0.0.1", gateway.port()) == "ok reply=2");
  CHECK(other.accepted() == 0);
  CHECK(gateway.accepted() == 0);
  auto records = broker.records(5);
  REQUIRE(records.size() == 5);
  CHECK(records[0].worker() == "model");
  CHECK(records[0].outcome() == "ok");
  CHECK(records[0].address() == provider127);
  CHECK(records[1].outcome() == "refused: not in the allowlist");
  CHECK(records[2].outcome() == "refused: not in the allowlist");
  CHECK(records[3].outcome() ==
        "refused: resolves to 169.254.169.254:80, cloud metadata (169.254.169.254)");
  CHECK(records[4].outcome() == "refused: the gateway's own port");
}

}  // namespace chitin::testing
