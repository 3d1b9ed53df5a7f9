// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about system calls: no network without the grant, no kernel attack surface
// (ptrace, mount, namespaces, keyrings, bpf), no terminal injection.
// Runs in: tests (probes run in real sandboxes)

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe-runner.h"

namespace chitin::testing {

namespace {

const char SIGSYS_EXIT[] = "killed by signal 31 (SIGSYS)";

// `probe` is killed by the exec profile's filter, and the same probe outside any sandbox
// returns normally (its arguments are harmless), so the kill is the filter's doing.
void expectKilledOnlyInside(const std::string& probe) {
  TempDir workspace("chitin-ws");
  auto inside = runProbe({"exec", "exec", probe, {}, {{"WORKSPACE", workspace.path()}}});
  CHECK(inside.result == "");
  CHECK(inside.exit.describe() == SIGSYS_EXIT);
  auto outside = runUnsandboxed(probe);
  CHECK(outside.exit.describe() == "exited with status 0");
  CHECK(outside.result != "");
}

}  // namespace

TEST_CASE("exec profile: socket(AF_INET, SOCK_STREAM) kills the worker (SIGSYS)") {
  expectKilledOnlyInside("socket-tcp");
}

TEST_CASE("exec profile: socket(AF_INET, SOCK_DGRAM) kills the worker (SIGSYS)") {
  expectKilledOnlyInside("socket-udp");
}

TEST_CASE(
    "exec and model profiles: connect() to a 127.0.0.1 listener is impossible (no profile "
    "shares the host network)") {
  TcpListener listener;
  TempDir workspace("chitin-ws");
  UnixListener broker;
  std::vector<std::string> target{"127.0.0.1", std::to_string(listener.port)};
  auto exec = runProbe({"exec", "exec", "connect", target, {{"WORKSPACE", workspace.path()}}});
  CHECK(exec.exit.describe() == SIGSYS_EXIT);
  ProbeSpec model{"model", "model", "connect", target};
  model.egressSocket = broker.path();
  CHECK(runProbe(model).exit.describe() == SIGSYS_EXIT);
  // Control: the same probe outside any sandbox connects.
  CHECK(runUnsandboxed("connect", target).result == "ok");
}

TEST_CASE("exec and model profiles: resolving a name is impossible (no /etc/hosts, no DNS)") {
  TempDir workspace("chitin-ws");
  UnixListener broker;
  auto exec =
      runProbe({"exec", "exec", "resolve", {"localhost"}, {{"WORKSPACE", workspace.path()}}});
  CHECK(exec.exit.describe() == SIGSYS_EXIT);
  // The model worker leaves names to the egress broker (socks5h): nothing to read, and the
  // DNS socket it would open kills it.
  ProbeSpec model{"model", "model", "resolve", {"localhost"}};
  model.egressSocket = broker.path();
  auto inModel = runProbe(model);
  CHECK(inModel.exit.describe() == SIGSYS_EXIT);
  // Control: the same probe outside any sandbox resolves it from /etc/hosts.
  CHECK(runUnsandboxed("resolve", {"localhost"}).result == "ok addr=127.0.0.1");
}

TEST_CASE("exec profile: ptrace() kills the worker (SIGSYS)") { expectKilledOnlyInside("ptrace"); }

TEST_CASE("exec profile: mount() kills the worker (SIGSYS)") { expectKilledOnlyInside("mount"); }

TEST_CASE("exec profile: unshare() kills the worker (SIGSYS)") {
  expectKilledOnlyInside("unshare");
}

TEST_CASE("exec profile: keyctl() kills the worker (SIGSYS)") { expectKilledOnlyInside("keyctl"); }

TEST_CASE("exec profile: bpf() kills the worker (SIGSYS)") { expectKilledOnlyInside("bpf"); }

TEST_CASE("exec profile: ioctl(TIOCSTI) kills the worker (SIGSYS)") {
  expectKilledOnlyInside("tiocsti");
}

TEST_CASE("exec profile: clone(CLONE_NEWUSER) kills the worker; a plain fork() works") {
  expectKilledOnlyInside("clone-newuser");
  TempDir workspace("chitin-ws");
  auto fork = runProbe({"exec", "exec", "fork", {}, {{"WORKSPACE", workspace.path()}}});
  CHECK(fork.result == "ok");
}

}  // namespace chitin::testing
