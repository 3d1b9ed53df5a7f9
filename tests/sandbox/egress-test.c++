// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about egress profiles: the worker reaches its own broker socket at
// /run/chitin/egress.sock (bound read-only), and creates no socket of any network family.
// Runs in: tests (probes run in real sandboxes)

#include <doctest/doctest.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "probe-runner.h"

namespace chitin::testing {

namespace {

const char SIGSYS_EXIT[] = "killed by signal 31 (SIGSYS)";

std::string fixtureDir() {
  const char* dir = getenv("CHITIN_TEST_PROFILE_DIR");
  REQUIRE(dir != nullptr);
  return dir;
}

// A unix socket in a private directory that answers each connection's first read with "pong".
class PongSocket {
 public:
  PongSocket() : dir_("chitin-egress") {
    path_ = dir_.path() + "/w.sock";
    REQUIRE(chmod(dir_.path().c_str(), 0700) == 0);
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path_.size() < sizeof(addr.sun_path));
    memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(listen(fd_, 4) == 0);
    thread_ = std::thread([this] {
      for (;;) {
        int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (conn < 0) return;  // shutdown() below
        char buffer[16];
        if (read(conn, buffer, sizeof(buffer)) > 0 && write(conn, "pong", 4) == 4) accepted_++;
        close(conn);
      }
    });
  }
  ~PongSocket() {
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  const std::string& path() const { return path_; }
  int accepted() const { return accepted_; }

 private:
  TempDir dir_;
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
  std::atomic<int> accepted_{0};
};

ProbeSpec egressProbe(const std::string& socket, const std::string& probe,
                      std::vector<std::string> args) {
  // Kind "none": no worker lockdown, so what stops the probe is the profile's own filter.
  ProbeSpec spec{"egress-fixture", "none", probe, kj::mv(args)};
  spec.profileDir = fixtureDir();
  spec.egressSocket = socket;
  return spec;
}

}  // namespace

TEST_CASE("egress profile: the worker connects to its broker socket at /run/chitin/egress.sock") {
  PongSocket broker;
  auto run = runProbe(egressProbe(broker.path(), "connect-unix", {"/run/chitin/egress.sock"}));
  CHECK(run.result == "ok reply=pong");
  CHECK(run.exit.describe() == "exited with status 0");
  CHECK(broker.accepted() == 1);
  // Control: the host path itself is not visible inside (only the bind is).
  auto host = runProbe(egressProbe(broker.path(), "connect-unix", {broker.path()}));
  CHECK(host.result == "errno=ENOENT (connect)");
}

TEST_CASE("egress profile: socket(AF_INET/AF_INET6/AF_NETLINK/AF_PACKET) kills the worker") {
  PongSocket broker;
  for (int family : {AF_INET, AF_INET6, AF_NETLINK, AF_PACKET}) {
    CAPTURE(family);
    auto inside = runProbe(egressProbe(broker.path(), "socket-family", {std::to_string(family)}));
    CHECK(inside.result == "");
    CHECK(inside.exit.describe() == SIGSYS_EXIT);
    // Control: outside the sandbox the same call returns (a socket, or EPERM for AF_PACKET
    // without CAP_NET_RAW), so the kill is the profile filter's doing.
    auto outside = runUnsandboxed("socket-family", {std::to_string(family)});
    CHECK(outside.exit.describe() == "exited with status 0");
    CHECK(outside.result != "");
  }
  // Control: AF_UNIX is what the profile allows.
  auto unixSocket =
      runProbe(egressProbe(broker.path(), "socket-family", {std::to_string(AF_UNIX)}));
  CHECK(unixSocket.result == "ok");
}

TEST_CASE(
    "egress profile: the spawn is refused without a socket, and so is a socket without egress") {
  ProbeSpec none = egressProbe("", "noop", {});
  CHECK_THROWS_WITH_AS(startProbe(none),
                       "sandbox profile \"egress-fixture\" has egress: true, but the spawn "
                       "request gives no egress socket (the worker would have no way to the "
                       "network)",
                       spawn::SandboxUnavailable);
  PongSocket broker;
  TempDir workspace("chitin-ws");
  ProbeSpec exec{"exec", "exec", "noop", {}, {{"WORKSPACE", workspace.path()}}};
  exec.egressSocket = broker.path();
  CHECK_THROWS_AS(startProbe(exec), spawn::SandboxUnavailable);
}

}  // namespace chitin::testing
