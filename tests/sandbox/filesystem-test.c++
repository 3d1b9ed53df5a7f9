// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about what a worker can see: only its mounts, never the host, $CHITIN_HOME,
// another session's workspace, or the supervisor's process.
// Runs in: tests (probes run in real sandboxes)

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "probe-runner.h"

namespace chitin::testing {

namespace {

const char SECRET[] = "api-key=sk-chitin-test-secret\n";

// A $CHITIN_HOME with a credential, and an agent workspace with a note: two host directories
// side by side under /tmp, as on a real server.
struct Host {
  TempDir home{"chitin-home"};
  TempDir workspace{"chitin-ws"};
  std::string secret;
  Host() {
    mkdir((home.path() + "/credentials").c_str(), 0700);
    secret = home.file("credentials/openai.key", SECRET);
    workspace.file("notes.md", "# notes\n");
  }
  std::map<std::string, std::string> vars() const { return {{"WORKSPACE", workspace.path()}}; }
};

bool startsWith(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

}  // namespace

TEST_CASE("tool workers: $CHITIN_HOME outside the workspace does not exist inside (ENOENT)") {
  Host host;
  // Control: the same probe, same user, no sandbox, reads the credential.
  auto outside = runUnsandboxed("read", {host.secret});
  CHECK(startsWith(outside.result, "ok bytes="));
  for (const char* profile : {"exec", "read", "write", "edit"}) {
    CAPTURE(profile);
    auto inside = runProbe({profile, profile, "read", {host.secret}, host.vars()});
    CHECK(inside.result == "errno=ENOENT");
    CHECK(inside.exit.exitCode == 0);
    // Control: the same worker reads its own workspace.
    auto own = runProbe({profile, profile, "read", {"/workspace/notes.md"}, host.vars()});
    CHECK(own.result == "ok bytes=8 text=# notes\\x0a");
  }
}

TEST_CASE("read profile: another session's workspace is not visible (ENOENT)") {
  Host alice, bob;
  std::string bobsNote = bob.workspace.path() + "/notes.md";
  auto fromAlice = runProbe({"read", "read", "read", {bobsNote}, alice.vars()});
  CHECK(fromAlice.result == "errno=ENOENT");
  // Control: with Bob's workspace mounted, the same file is readable.
  auto fromBob = runProbe({"read", "read", "read", {"/workspace/notes.md"}, bob.vars()});
  CHECK(startsWith(fromBob.result, "ok bytes=8"));
}

TEST_CASE("exec profile: a workspace symlink to a host directory resolves to nothing (ENOENT)") {
  Host host;
  REQUIRE(symlink((host.home.path() + "/credentials").c_str(),
                  (host.workspace.path() + "/escape").c_str()) == 0);
  auto outside = runUnsandboxed("read", {host.workspace.path() + "/escape/openai.key"});
  CHECK(startsWith(outside.result, "ok bytes="));
  auto inside = runProbe({"exec", "exec", "read", {"/workspace/escape/openai.key"}, host.vars()});
  CHECK(inside.result == "errno=ENOENT");
}

TEST_CASE("exec profile: '..' out of /workspace stays inside the sandbox root (ENOENT)") {
  Host host;
  std::string climb = "/../../../.." + host.secret;
  auto outside = runUnsandboxed("read", {host.workspace.path() + climb});
  CHECK(startsWith(outside.result, "ok bytes="));
  auto inside = runProbe({"exec", "exec", "read", {"/workspace" + climb}, host.vars()});
  CHECK(inside.result == "errno=ENOENT");
}

TEST_CASE("exec profile: the supervisor's /proc/<pid>/mem and environ do not exist (ENOENT)") {
  Host host;
  std::string mine = "/proc/" + std::to_string(getpid());
  // Control: outside, the probe (a child of this process, same user) opens our memory; only
  // reading unmapped offset 0 fails.
  auto outside = runUnsandboxed("read", {mine + "/mem"});
  CHECK((startsWith(outside.result, "ok") || outside.result.find("(read)") != std::string::npos));
  for (const char* file : {"/mem", "/environ"}) {
    CAPTURE(file);
    auto inside = runProbe({"exec", "exec", "read", {mine + file}, host.vars()});
    CHECK(inside.result == "errno=ENOENT");
  }
  // Control: the sandbox's /proc works for the worker itself.
  auto self = runProbe({"exec", "exec", "read", {"/proc/self/status"}, host.vars()});
  CHECK(startsWith(self.result, "ok bytes="));
}

TEST_CASE(
    "exec profile: /proc/1 is the worker itself; the supervisor's environment is not "
    "there") {
  Host host;
  // Control: outside, the probe finds meson's variable in this test process's environment.
  std::string mine = "/proc/" + std::to_string(getpid()) + "/environ";
  auto outside = runUnsandboxed("find", {mine, "CHITIN_PROFILE_DIR="});
  CHECK(outside.result == "ok found");
  // Inside, pid 1 is the probe (bwrap --as-pid-1): no other process of the sandbox, no host
  // init, and an environment the spawner emptied.
  auto comm = runProbe({"exec", "exec", "read", {"/proc/1/comm"}, host.vars()});
  CHECK(comm.result == "ok bytes=7 text=worker\\x0a");
  // Started without the worker start-up (kind none: still dumpable) it may read its own
  // environ: empty.
  for (const char* name : {"CHITIN_PROFILE_DIR=", "PATH="}) {
    auto environ = runProbe({"exec", "none", "find", {"/proc/1/environ", name}, host.vars()});
    CHECK(environ.result == "ok absent");
  }
  // A real worker is not dumpable: its /proc/1/environ belongs to root, mode 0400, and even
  // the worker itself cannot open it.
  auto locked =
      runProbe({"exec", "exec", "find", {"/proc/1/environ", "CHITIN_PROFILE_DIR="}, host.vars()});
  CHECK(locked.result == "errno=EACCES");
}

TEST_CASE("session worker: after lockdown any open() kills it (SIGSYS)") {
  auto locked = runProbe({"session", "session", "read", {"/usr/lib/os-release"}});
  CHECK(locked.result == "");
  CHECK(locked.exit.describe() == "killed by signal 31 (SIGSYS)");
  // Control: the same profile with the read kind's lockdown (which keeps FILE_READ) reads the
  // file, so the kill comes from the session lockdown, not from the mounts or the profile.
  auto control = runProbe({"session", "read", "read", {"/usr/lib/os-release"}});
  CHECK(startsWith(control.result, "ok bytes="));
}

TEST_CASE(
    "model worker: host files are invisible ($CHITIN_HOME, /etc/passwd, /home, /etc/hosts, "
    "/etc/resolv.conf: ENOENT)") {
  Host host;
  UnixListener broker;
  auto probe = [&](const std::string& path) {
    ProbeSpec spec{"model", "model", "read", {path}};
    spec.egressSocket = broker.path();
    return runProbe(spec);
  };
  for (const std::string& path : {host.secret, std::string("/etc/passwd"), std::string("/home"),
                                  std::string("/etc/hosts"), std::string("/etc/resolv.conf")}) {
    CAPTURE(path);
    CHECK(probe(path).result == "errno=ENOENT");
    auto outside = runUnsandboxed("read", {path});
    CHECK(outside.result != "errno=ENOENT");
  }
  // Control: what the profile does mount is readable.
  CHECK(startsWith(probe("/etc/ssl/openssl.cnf").result, "ok bytes="));
}

TEST_CASE(
    "read profile: open() for writing kills the worker (SIGSYS); openat2() for writing "
    "fails on the read-only mount (EROFS)") {
  Host host;
  auto denied = runProbe({"read", "read", "write", {"/workspace/new.txt"}, host.vars()});
  CHECK(denied.exit.describe() == "killed by signal 31 (SIGSYS)");
  // openat2's flags are invisible to seccomp; the read-only bind mount is what holds.
  auto mount = runProbe({"read", "read", "openat2-write", {"/workspace/new.txt"}, host.vars()});
  CHECK(mount.result == "errno=EROFS");
  CHECK(access((host.workspace.path() + "/new.txt").c_str(), F_OK) != 0);
  auto viaOpenat2 =
      runProbe({"write", "write", "openat2-write", {"/workspace/two.txt"}, host.vars()});
  CHECK(viaOpenat2.result == "ok");
  // Control: the write profile writes the same file, and it lands in the host workspace.
  auto allowed = runProbe({"write", "write", "write", {"/workspace/new.txt"}, host.vars()});
  CHECK(allowed.result == "ok");
  std::ifstream written(host.workspace.path() + "/new.txt");
  std::string line;
  std::getline(written, line);
  CHECK(line == "probe");
}

}  // namespace chitin::testing
