// SPDX-License-Identifier: Apache-2.0
// Unit tests of the spawner without running anything: profile loading and its error messages,
// the bwrap argv a profile compiles to, the limits flag, and the shipped profiles themselves.
// Runs in: tests

#include <doctest/doctest.h>
#include <kj/debug.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>

#include "fork-server.h"
#include "seccomp-groups.h"
#include "spawner.h"
#include "zygote.h"

namespace chitin::spawn {

namespace {

// Files and executables that exist only in the test's imagination.
class FakeOs final : public SpawnOs {
 public:
  std::map<std::string, std::string> files;
  std::set<std::string> executables;
  std::map<std::string, std::vector<std::string>> dirs;
  bool fileExists(const std::string& path) override { return files.count(path) > 0; }
  bool isExecutable(const std::string& path) override { return executables.count(path) > 0; }
  std::string readFile(const std::string& path) override { return files.at(path); }
  int listings = 0;
  std::vector<std::string> subdirectories(const std::string& path) override {
    ++listings;
    auto it = dirs.find(path);
    return it == dirs.end() ? std::vector<std::string>{} : it->second;
  }
  std::map<std::string, int> plainDirs;  // "root|relative" -> errno (absent: ENOENT)
  int checkPlainDirectory(const std::string& root, const std::string& relative) override {
    auto it = plainDirs.find(root + "|" + relative);
    return it == plainDirs.end() ? ENOENT : it->second;
  }
  std::set<std::string> sockets;
  bool isSocket(const std::string& path) override { return sockets.count(path) > 0; }
};

const char GOOD[] = R"(name: "demo"
description: "a test profile"
worker: "demo"
mount { kind: RO_BIND src: "/usr" dst: "/usr" }
mount { kind: SYMLINK src: "usr/lib" dst: "/lib" }
mount { kind: PROC dst: "/proc" } mount { kind: DEV dst: "/dev" }
mount { kind: TMPFS dst: "/tmp" }
mount { kind: BIND src: "${WORKSPACE}" dst: "/workspace" }
workdir: "/workspace"
syscalls: BASIC_IO
syscalls: MEMORY
syscalls: PROCESS_SELF
limits { memory_bytes: 1000 max_processes: 2 max_open_files: 3 cpu_seconds: 4
         max_file_bytes: 5 wall_clock_seconds: 6 tmpfs_bytes: 7 sandbox_memory_bytes: 8
         cpu_percent: 9 }
)";

std::string loadError(const std::string& text, const std::string& name = "demo") {
  FakeOs os;
  os.files["/p/" + name + ".textproto"] = text;
  try {
    loadProfile(os, "/p", name);
  } catch (const SandboxUnavailable& e) {
    return e.what();
  }
  return "(loaded)";
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  auto pos = text.find(from);
  REQUIRE(pos != std::string::npos);
  return text.replace(pos, from.size(), to);
}

std::string sourceProfileDir() {
  const char* dir = getenv("CHITIN_PROFILE_DIR");
  REQUIRE(dir != nullptr);
  return dir;
}

bool contains(const std::vector<std::string>& argv, const std::vector<std::string>& run) {
  return std::search(argv.begin(), argv.end(), run.begin(), run.end()) != argv.end();
}

}  // namespace

TEST_CASE("profile: a good file loads") {
  FakeOs os;
  os.files["/p/demo.textproto"] = GOOD;
  auto profile = loadProfile(os, "/p", "demo");
  CHECK(profile.name() == "demo");
  CHECK(profile.mount_size() == 6);
  CHECK(profile.limits().wall_clock_seconds() == 6);
}

TEST_CASE("profile: errors name file:line:column and what was expected") {
  CHECK(loadError(replaced(GOOD, "dst: \"/proc\"", "dts: \"/proc\"")) ==
        "/p/demo.textproto:6:23: Message type \"chitin.config.Mount\" has no field named "
        "\"dts\".");
  // protobuf reports a bad enum value at the token after it.
  CHECK(loadError(replaced(GOOD, "syscalls: MEMORY", "syscalls: MEMORIES")) ==
        "/p/demo.textproto:12:1: Unknown enumeration value of \"MEMORIES\" for field "
        "\"syscalls\".");
  CHECK(loadError(replaced(GOOD, "worker: \"demo\"", "worker: \"demo\" worker: \"x\"")) ==
        "/p/demo.textproto:3:22: Non-repeated field \"worker\" is specified multiple times.");
  CHECK(loadError(replaced(GOOD, "name: \"demo\"", "name: \"other\"")) ==
        "/p/demo.textproto:1:1: profile name \"other\" must equal the file name \"demo\"");
  CHECK(loadError(replaced(GOOD, "${WORKSPACE}", "${HOME}")) ==
        "/p/demo.textproto:8:20: unknown variable ${HOME} (known: ${WORKSPACE}, ${STATE_DIR}, "
        "${SKILLS}, ${WORKER_DIR})");
  CHECK(loadError(replaced(GOOD, "src: \"/usr\"", "src: \"/usr/../etc\"")) ==
        "/p/demo.textproto:4:23: bind src must be an absolute path without '.', '..' or '//', "
        "got \"/usr/../etc\"");
  CHECK(loadError(replaced(GOOD, "cpu_seconds: 4", "")) ==
        "/p/demo.textproto:13:1: limits.cpu_seconds must be set (> 0); only wall_clock_seconds "
        "may be 0 (none)");
  CHECK(loadError(replaced(GOOD, "syscalls: BASIC_IO", "syscalls: BASIC_IO network: true")) ==
        "/p/demo.textproto:10:20: network: true needs the NETWORK syscall group");
  // A rule about a repeated field as a whole points at its first element (found by fuzzing:
  // this used to throw protobuf's FatalException instead of SandboxUnavailable).
  CHECK(loadError(replaced(GOOD, "syscalls: BASIC_IO", "syscalls: BASIC_IO syscalls: NETWORK")) ==
        "/p/demo.textproto:10:1: the NETWORK group is useless without network: true or egress: "
        "true (the sandbox has only loopback)");
  CHECK(loadError(GOOD + std::string("errno_syscalls: \"openat\"\n")) ==
        "/p/demo.textproto:16:1: \"openat\" is already allowed by a syscall group or the "
        "bootstrap set");
  CHECK(loadError(GOOD + std::string("errno_syscalls: \"no_such_call\"\n")) ==
        "/p/demo.textproto:16:1: unknown syscall \"no_such_call\" (names as in seccomp, e.g. "
        "\"clone3\")");
  CHECK(loadError(GOOD, "../etc") ==
        "sandbox profile name \"../etc\" is not valid (expected [a-z0-9_-]+, e.g. \"exec\")");
  FakeOs empty;
  CHECK_THROWS_WITH_AS(loadProfile(empty, "/p", "demo"),
                       "sandbox profile \"demo\" not found: /p/demo.textproto does not exist",
                       SandboxUnavailable);
}

TEST_CASE("argv: a profile without network unshares everything and loads the filter from fd 4") {
  FakeOs os;
  os.files["/p/demo.textproto"] = GOOD;
  os.executables.insert("/w/session/chitin-worker-demo");
  os.dirs["/w"] = {"exec", "session"};
  Spawner spawner({"/usr/bin/bwrap", "/p", "/w"}, os);
  auto profile = loadProfile(os, "/p", "demo");
  SpawnRequest request;
  request.profile = "demo";
  request.vars = {{"WORKSPACE", "/home/u/.chitin/workspace/main"}};
  request.workerArgs = {"--verbose"};
  auto argv = spawner.compileArgv(profile, request, 4);
  std::vector<std::string> expected = {"/usr/bin/bwrap",
                                       "--unshare-all",
                                       "--unshare-user",
                                       "--disable-userns",
                                       "--die-with-parent",
                                       "--new-session",
                                       "--cap-drop",
                                       "ALL",
                                       "--clearenv",
                                       "--hostname",
                                       "chitin-sandbox",
                                       "--setenv",
                                       "GNUTLS_NO_IMPLICIT_INIT",
                                       "1",
                                       "--as-pid-1",
                                       "--seccomp",
                                       "4",
                                       "--ro-bind",
                                       "/usr",
                                       "/usr",
                                       "--symlink",
                                       "usr/lib",
                                       "/lib",
                                       "--proc",
                                       "/proc",
                                       "--dev",
                                       "/dev",
                                       "--size",
                                       "7",
                                       "--tmpfs",
                                       "/dev/shm",
                                       "--remount-ro",
                                       "/dev",
                                       "--size",
                                       "7",
                                       "--tmpfs",
                                       "/tmp",
                                       "--bind",
                                       "/home/u/.chitin/workspace/main",
                                       "/workspace",
                                       "--ro-bind",
                                       "/w/session/chitin-worker-demo",
                                       "/run/chitin/worker",
                                       "--chdir",
                                       "/workspace",
                                       "--",
                                       "/run/chitin/worker",
                                       "--chitin-limits=as=1000,nproc=2,nofile=3,cpu=4,fsize=5",
                                       "--verbose"};
  CHECK(argv == expected);
  CHECK(std::count(argv.begin(), argv.end(), "--share-net") == 0);
}

TEST_CASE("argv: network: true adds --share-net; the worker dir is searched first") {
  FakeOs os;
  std::string text = replaced(GOOD, "syscalls: BASIC_IO", "syscalls: BASIC_IO syscalls: NETWORK");
  os.files["/p/demo.textproto"] = text + "network: true\n";
  os.executables.insert("/w/chitin-worker-demo");
  os.executables.insert("/w/nested/chitin-worker-demo");
  os.dirs["/w"] = {"nested"};
  Spawner spawner({"/usr/bin/bwrap", "/p", "/w"}, os);
  auto profile = loadProfile(os, "/p", "demo");
  SpawnRequest request;
  request.vars = {{"WORKSPACE", "/srv/ws"}};
  auto argv = spawner.compileArgv(profile, request, 4);
  CHECK(contains(argv, {"--unshare-all", "--unshare-user", "--share-net", "--disable-userns"}));
  CHECK(contains(argv, {"--ro-bind", "/w/chitin-worker-demo", "/run/chitin/worker"}));
}

TEST_CASE(
    "argv: a worker found in a folder of the worker dir is not looked for again, unless it "
    "has gone") {
  FakeOs os;
  os.files["/p/demo.textproto"] = GOOD;
  os.executables.insert("/w/nested/chitin-worker-demo");
  os.dirs["/w"] = {"nested", "other"};
  Spawner spawner({"/usr/bin/bwrap", "/p", "/w"}, os);
  auto profile = loadProfile(os, "/p", "demo");
  SpawnRequest request;
  request.vars = {{"WORKSPACE", "/srv/ws"}};
  for (int i = 0; i < 3; ++i) {
    auto argv = spawner.compileArgv(profile, request, 4);
    CHECK(contains(argv, {"--ro-bind", "/w/nested/chitin-worker-demo", "/run/chitin/worker"}));
  }
  CHECK(os.listings == 1);
  // Moved to another folder: found there, after one more listing.
  os.executables.erase("/w/nested/chitin-worker-demo");
  os.executables.insert("/w/other/chitin-worker-demo");
  auto argv = spawner.compileArgv(profile, request, 4);
  CHECK(contains(argv, {"--ro-bind", "/w/other/chitin-worker-demo", "/run/chitin/worker"}));
  CHECK(os.listings == 2);
  // Installed directly in the worker dir: that one comes first, as always.
  os.executables.insert("/w/chitin-worker-demo");
  argv = spawner.compileArgv(profile, request, 4);
  CHECK(contains(argv, {"--ro-bind", "/w/chitin-worker-demo", "/run/chitin/worker"}));
  // Gone everywhere: refused, as before.
  os.executables.clear();
  CHECK_THROWS_AS(spawner.compileArgv(profile, request, 4), SandboxUnavailable);
}

TEST_CASE("argv: missing or bad variables, unknown workers and stray limits are refused") {
  FakeOs os;
  os.files["/p/demo.textproto"] = GOOD;
  os.executables.insert("/w/chitin-worker-demo");
  Spawner spawner({"/usr/bin/bwrap", "/p", "/w"}, os);
  auto profile = loadProfile(os, "/p", "demo");
  SpawnRequest request;
  CHECK_THROWS_WITH_AS(spawner.compileArgv(profile, request, 4),
                       "sandbox profile \"demo\" mounts ${WORKSPACE} but the spawn request gives "
                       "no value for it",
                       SandboxUnavailable);
  for (const char* bad : {"relative", "/", "/a/../b", "/a//b", "/a/"}) {
    CAPTURE(bad);
    request.vars = {{"WORKSPACE", bad}};
    CHECK_THROWS_AS(spawner.compileArgv(profile, request, 4), SandboxUnavailable);
  }
  request.vars = {{"WORKSPACE", "/srv/ws"}, {"HOME", "/root"}};
  CHECK_THROWS_WITH_AS(spawner.compileArgv(profile, request, 4),
                       "unknown sandbox variable \"HOME\" (known: WORKSPACE, STATE_DIR, SKILLS)",
                       SandboxUnavailable);
  request.vars = {{"WORKSPACE", "/srv/ws"}};
  request.workerArgs = {"--chitin-limits=as=1"};
  CHECK_THROWS(spawner.compileArgv(profile, request, 4));
  request.workerArgs = {};
  CHECK_THROWS(spawner.compileArgv(profile, request, 3));  // fd 3 is the socket
  request.workerOverride = "relative/probe";
  CHECK_THROWS_AS(spawner.compileArgv(profile, request, 4), SandboxUnavailable);
  Spawner noWorkers({"/usr/bin/bwrap", "/p", "/empty"}, os);
  request.workerOverride.reset();
  CHECK_THROWS_WITH_AS(noWorkers.compileArgv(profile, request, 4),
                       "worker executable chitin-worker-demo not found in /empty or the folders "
                       "directly inside it (is it built and installed?)",
                       SandboxUnavailable);
}

TEST_CASE("argv: ${WORKER_DIR} is the folder the worker was found in, never the request's") {
  FakeOs os;
  os.files["/p/demo.textproto"] =
      replaced(GOOD, "workdir:",
               "mount { kind: RO_BIND src: \"${WORKER_DIR}/bridge\" dst: \"/opt/b\" }\nworkdir:");
  os.executables.insert("/w/channel/chitin-worker-demo");
  os.dirs["/w"] = {"channel"};
  Spawner spawner({"/usr/bin/bwrap", "/p", "/w"}, os);
  auto profile = loadProfile(os, "/p", "demo");
  SpawnRequest request;
  request.vars = {{"WORKSPACE", "/srv/ws"}};
  auto argv = spawner.compileArgv(profile, request, 4);
  CHECK(contains(argv, {"--ro-bind", "/w/channel/bridge", "/opt/b"}));
  CHECK(contains(argv, {"--ro-bind", "/w/channel/chitin-worker-demo"}));
  request.vars = {{"WORKSPACE", "/srv/ws"}, {"WORKER_DIR", "/etc"}};
  CHECK_THROWS_WITH_AS(spawner.compileArgv(profile, request, 4),
                       "unknown sandbox variable \"WORKER_DIR\" (known: WORKSPACE, STATE_DIR, SKILLS)",
                       SandboxUnavailable);
}

TEST_CASE("argv: an optional mount whose variable the request does not give is left out") {
  FakeOs os;
  os.files["/p/demo.textproto"] = replaced(
      GOOD, "workdir:", "mount { kind: RO_BIND_TRY src: \"${SKILLS}\" dst: \"/skills\" }\nworkdir:");
  os.executables.insert("/w/chitin-worker-demo");
  Spawner spawner({"/usr/bin/bwrap", "/p", "/w"}, os);
  auto profile = loadProfile(os, "/p", "demo");
  SpawnRequest request;
  request.vars = {{"WORKSPACE", "/srv/ws"}};
  auto without = spawner.compileArgv(profile, request, 4);
  CHECK(std::find(without.begin(), without.end(), "/skills") == without.end());
  request.vars["SKILLS"] = "/h/skills";
  CHECK(contains(spawner.compileArgv(profile, request, 4), {"--ro-bind-try", "/h/skills", "/skills"}));
  request.vars["SKILLS"] = "/h/../etc";  // given, it is checked like any other
  CHECK_THROWS_AS(spawner.compileArgv(profile, request, 4), SandboxUnavailable);
}

TEST_CASE("argv: each hidden directory gets an empty read-only tmpfs, and the worker is told") {
  FakeOs os;
  os.files["/p/demo.textproto"] = GOOD;
  os.executables.insert("/w/chitin-worker-demo");
  os.plainDirs["/srv/ws|downloads"] = 0;
  os.plainDirs["/srv/ws|inbox/new"] = 0;
  Spawner spawner({"/usr/bin/bwrap", "/p", "/w"}, os);
  auto profile = loadProfile(os, "/p", "demo");
  SpawnRequest request;
  request.vars = {{"WORKSPACE", "/srv/ws"}};
  request.hide = {"/workspace/downloads", "/workspace/inbox/new"};
  auto argv = spawner.compileArgv(profile, request, 4);
  CHECK(contains(argv, {"--bind",
                        "/srv/ws",
                        "/workspace",
                        "--perms",
                        "0555",
                        "--size",
                        "4096",
                        "--tmpfs",
                        "/workspace/downloads",
                        "--remount-ro",
                        "/workspace/downloads",
                        "--perms",
                        "0555",
                        "--size",
                        "4096",
                        "--tmpfs",
                        "/workspace/inbox/new",
                        "--remount-ro",
                        "/workspace/inbox/new",
                        "--ro-bind"}));
  CHECK(contains(argv,
                 {"--chitin-limits=as=1000,nproc=2,nofile=3,cpu=4,fsize=5",
                  "--chitin-hidden=/workspace/downloads", "--chitin-hidden=/workspace/inbox/new"}));
  // The reviewer's view shows them too.
  std::string text = spawner.explain("demo", request.vars, request.hide);
  CHECK(text.find("--tmpfs /workspace/downloads \\\n    --remount-ro /workspace/downloads") !=
        std::string::npos);
  CHECK(text.find("hidden directories (each an empty read-only tmpfs; the worker checks them "
                  "before it serves): /workspace/downloads /workspace/inbox/new") !=
        std::string::npos);
}

TEST_CASE(
    "argv: a hidden path that is unclean, not beneath a bind, nested or not a plain "
    "directory is refused") {
  FakeOs os;
  os.files["/p/demo.textproto"] = GOOD;
  os.executables.insert("/w/chitin-worker-demo");
  os.plainDirs["/srv/ws|downloads"] = 0;
  os.plainDirs["/srv/ws|downloads/a"] = 0;
  os.plainDirs["/srv/ws|link"] = ELOOP;
  os.plainDirs["/srv/ws|notes.md"] = ENOTDIR;
  Spawner spawner({"/usr/bin/bwrap", "/p", "/w"}, os);
  auto profile = loadProfile(os, "/p", "demo");
  struct Case {
    std::vector<std::string> hide;
    const char* why;
  };
  const Case cases[] = {
      {{"workspace/downloads"},
       "expected an absolute path inside the sandbox without '.', '..' or '//'"},
      {{"/workspace/../etc"},
       "expected an absolute path inside the sandbox without '.', '..' or '//'"},
      {{"/workspace"}, "it is not beneath a BIND or RO_BIND mount of the profile"},
      {{"/tmp/x"}, "it is not beneath a BIND or RO_BIND mount of the profile"},
      {{"/proc/1"}, "it is not beneath a BIND or RO_BIND mount of the profile"},
      {{"/workspace/downloads", "/workspace/downloads/a"},
       "it is named twice or nested in \"/workspace/downloads\""},
      {{"/workspace/link"}, "it is a symlink or lies behind one"},
      {{"/workspace/notes.md"}, "it is not a directory"},
      {{"/workspace/missing"},
       "it does not exist (create it first; nothing is created on the host)"},
  };
  for (auto& c : cases) {
    CAPTURE(c.hide.back());
    SpawnRequest request;
    request.vars = {{"WORKSPACE", "/srv/ws"}};
    request.hide = c.hide;
    CHECK_THROWS_WITH_AS(
        spawner.compileArgv(profile, request, 4),
        ("cannot hide \"" + c.hide.back() + "\" from the demo worker: " + c.why).c_str(),
        SandboxUnavailable);
  }
  SpawnRequest smuggled;
  smuggled.vars = {{"WORKSPACE", "/srv/ws"}};
  smuggled.workerArgs = {"--chitin-hidden=/workspace"};
  CHECK_THROWS(spawner.compileArgv(profile, smuggled, 4));
}

TEST_CASE("host check of hidden directories: no symlink anywhere, nothing created") {
  char pattern[] = "/tmp/chitin-hide-XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  std::string root = pattern;
  REQUIRE(mkdir((root + "/downloads").c_str(), 0755) == 0);
  REQUIRE(mkdir((root + "/downloads/sub").c_str(), 0755) == 0);
  REQUIRE(symlink("downloads", (root + "/dl").c_str()) == 0);
  REQUIRE(symlink("/tmp", (root + "/out").c_str()) == 0);
  { std::ofstream(root + "/file") << "x"; }
  SystemSpawnOs os;
  CHECK(os.checkPlainDirectory(root, "downloads") == 0);
  CHECK(os.checkPlainDirectory(root, "downloads/sub") == 0);
  CHECK(os.checkPlainDirectory(root, "dl") == ELOOP);
  CHECK(os.checkPlainDirectory(root, "dl/sub") == ELOOP);
  CHECK(os.checkPlainDirectory(root, "out") == ELOOP);
  CHECK(os.checkPlainDirectory(root, "file") == ENOTDIR);
  CHECK(os.checkPlainDirectory(root, "missing") == ENOENT);
  CHECK(os.checkPlainDirectory(root, "../tmp") == EXDEV);  // RESOLVE_BENEATH
  CHECK(access((root + "/missing").c_str(), F_OK) != 0);
  for (const char* name : {"/downloads/sub", "/downloads", "/dl", "/out", "/file"}) {
    std::string path = root + name;
    if (unlink(path.c_str()) != 0) rmdir(path.c_str());
  }
  rmdir(root.c_str());
}

TEST_CASE("profile: egress needs UNIX_IPC and excludes network: true") {
  std::string unixIpc =
      replaced(GOOD, "syscalls: BASIC_IO", "syscalls: BASIC_IO syscalls: UNIX_IPC");
  CHECK(loadError(unixIpc + "egress: true\n") == "(loaded)");
  CHECK(loadError(GOOD + std::string("egress: true\n")) ==
        "/p/demo.textproto:16:1: egress: true needs the UNIX_IPC syscall group (socket(AF_UNIX) "
        "and connect to the broker's socket)");
  std::string both =
      replaced(unixIpc, "syscalls: BASIC_IO", "syscalls: BASIC_IO syscalls: NETWORK");
  CHECK(loadError(both + "network: true\negress: true\n") ==
        "/p/demo.textproto:17:1: egress: true and network: true exclude each other (an egress "
        "worker reaches the network only through the broker's socket)");
}

TEST_CASE("profile: fork_server only where every mount is shared read-only or renewed") {
  // GOOD binds the workspace read-write: one worker could change it for the others.
  CHECK(loadError(GOOD + std::string("fork_server: true\n")) ==
        "/p/demo.textproto:16:1: fork_server: true allows no BIND or DIR mount (its workers "
        "share the zygote's mounts; only read-only binds, symlinks, proc, tmpfs and dev)");
  std::string readOnly = replaced(GOOD, "kind: BIND src", "kind: RO_BIND src");
  CHECK(loadError(readOnly + "fork_server: true\n") == "(loaded)");
  CHECK(loadError(readOnly + "mount { kind: DIR dst: \"/x\" }\nfork_server: true\n")
            .find("allows no BIND or DIR mount") != std::string::npos);
  std::string networked =
      replaced(readOnly, "syscalls: BASIC_IO", "syscalls: BASIC_IO syscalls: NETWORK");
  CHECK(loadError(networked + "network: true\nfork_server: true\n") ==
        "/p/demo.textproto:17:1: fork_server: true excludes network: true and egress: true (each "
        "forked worker has a network namespace of its own with nothing in it)");
}

TEST_CASE("argv: a fork_server profile's workers get the zygote's malloc settings, others none") {
  FakeOs os;
  std::string readOnly = replaced(GOOD, "kind: BIND src", "kind: RO_BIND src");
  os.executables.insert("/w/chitin-worker-demo");
  os.dirs["/w"] = {};
  Spawner spawner({"/usr/bin/bwrap", "/p", "/w"}, os);
  SpawnRequest request;
  request.vars = {{"WORKSPACE", "/srv/ws"}};
  const std::vector<std::string> tunables = {"--setenv", "GLIBC_TUNABLES",
                                             zygote::ZYGOTE_MALLOC_TUNABLES};
  os.files["/p/demo.textproto"] = readOnly + "fork_server: true\n";
  CHECK(contains(spawner.compileArgv(loadProfile(os, "/p", "demo"), request, 4), tunables));
  // The control: the same profile without fork_server leaves glibc's defaults.
  os.files["/p/demo.textproto"] = readOnly;
  CHECK_FALSE(contains(spawner.compileArgv(loadProfile(os, "/p", "demo"), request, 4), tunables));
}

TEST_CASE("zygote set-up: every writable mount renewed, the limits and the filter whole") {
  SystemSpawnOs os;
  auto profile = loadProfile(os, sourceProfileDir(), "session");
  REQUIRE(profile.fork_server());
  std::string bpf = compileSeccomp(profile);
  std::string message = zygoteSetup(profile, bpf);
  REQUIRE(message.size() == sizeof(zygote::Setup) + bpf.size());
  zygote::Setup setup;
  memcpy(&setup, message.data(), sizeof(setup));
  CHECK(setup.type == zygote::Type::SETUP);
  std::vector<std::string> renewed;
  for (uint32_t i = 0; i < setup.renewalCount; i++) {
    const auto& r = setup.renewals[i];
    renewed.push_back(std::to_string(static_cast<int>(r.kind)) + ":" + r.path + ":" +
                      std::to_string(r.sizeBytes));
  }
  // The session profile: proc, dev (its /dev/shm and devpts), tmpfs /tmp, each tmpfs capped.
  std::string cap = std::to_string(profile.limits().tmpfs_bytes());
  CHECK(renewed == std::vector<std::string>{"1:/proc:0", "2:/dev/shm:" + cap, "3:/dev/pts:0",
                                            "2:/tmp:" + cap});
  CHECK(std::string(setup.limits) == limitsFlag(profile.limits()));
  CHECK(setup.filterBytes == bpf.size());
  CHECK(message.substr(sizeof(setup)) == bpf);
  // What a zygote cannot renew for each worker is refused, not shared.
  auto withBind = profile;
  auto* bind = withBind.add_mount();
  bind->set_kind(config::Mount::BIND);
  bind->set_src("/srv");
  bind->set_dst("/srv");
  CHECK_THROWS_WITH_AS(zygoteSetup(withBind, bpf),
                       "sandbox profile \"session\" has a mount a zygote cannot renew for each "
                       "worker",
                       SandboxUnavailable);
  auto crowded = profile;
  for (int i = 0; i < 8; i++) {
    auto* tmp = crowded.add_mount();
    tmp->set_kind(config::Mount::TMPFS);
    tmp->set_dst("/t" + std::to_string(i));
  }
  CHECK_THROWS_AS(zygoteSetup(crowded, bpf), SandboxUnavailable);
  CHECK_THROWS_AS(zygoteSetup(profile, ""), SandboxUnavailable);
}

TEST_CASE(
    "argv: an egress profile binds exactly the request's socket, read-only, and fails closed") {
  FakeOs os;
  std::string unixIpc =
      replaced(GOOD, "syscalls: BASIC_IO", "syscalls: BASIC_IO syscalls: UNIX_IPC");
  os.files["/p/demo.textproto"] = unixIpc + "egress: true\n";
  os.files["/p/plain.textproto"] = replaced(GOOD, "name: \"demo\"", "name: \"plain\"");
  os.executables.insert("/w/chitin-worker-demo");
  os.sockets.insert("/run/u/egress/w1.sock");
  os.files["/run/u/egress/file"] = "";
  Spawner spawner({"/usr/bin/bwrap", "/p", "/w"}, os);
  auto profile = loadProfile(os, "/p", "demo");
  SpawnRequest request;
  request.vars = {{"WORKSPACE", "/srv/ws"}};
  request.egressSocket = "/run/u/egress/w1.sock";
  auto argv = spawner.compileArgv(profile, request, 4);
  CHECK(contains(argv, {"--ro-bind", "/run/u/egress/w1.sock", "/run/chitin/egress.sock",
                        "--ro-bind", "/w/chitin-worker-demo", "/run/chitin/worker"}));
  // The worker is told where its socket is, by the spawner only.
  CHECK(argv.back() == "--chitin-egress=/run/chitin/egress.sock");
  request.workerArgs = {"--chitin-egress=/tmp/elsewhere.sock"};
  CHECK_THROWS(spawner.compileArgv(profile, request, 4));
  request.workerArgs = {};
  CHECK(std::count(argv.begin(), argv.end(), "--share-net") == 0);

  request.egressSocket = "";
  CHECK_THROWS_WITH_AS(spawner.compileArgv(profile, request, 4),
                       "sandbox profile \"demo\" has egress: true, but the spawn request gives "
                       "no egress socket (the worker would have no way to the network)",
                       SandboxUnavailable);
  for (const char* bad : {"relative.sock", "/run/u/../egress/w1.sock", "/run/u//egress/w1.sock"}) {
    CAPTURE(bad);
    request.egressSocket = bad;
    CHECK_THROWS_WITH_AS(spawner.compileArgv(profile, request, 4),
                         ("egress socket must be an absolute path without '.', '..' or '//', "
                          "got \"" +
                          std::string(bad) + "\"")
                             .c_str(),
                         SandboxUnavailable);
  }
  for (const char* notSocket : {"/run/u/egress/missing.sock", "/run/u/egress/file"}) {
    CAPTURE(notSocket);
    request.egressSocket = notSocket;
    CHECK_THROWS_WITH_AS(spawner.compileArgv(profile, request, 4),
                         ("egress socket " + std::string(notSocket) +
                          " is not a unix socket (missing, a symlink, or another file)")
                             .c_str(),
                         SandboxUnavailable);
  }

  // A socket handed to a profile without egress is refused too.
  os.executables.insert("/w/chitin-worker-demo");
  auto plain = loadProfile(os, "/p", "plain");
  request.egressSocket = "/run/u/egress/w1.sock";
  CHECK_THROWS_WITH_AS(spawner.compileArgv(plain, request, 4),
                       "sandbox profile \"plain\" has no egress: true, but the spawn request "
                       "gives it an egress socket (/run/u/egress/w1.sock)",
                       SandboxUnavailable);
  request.egressSocket = "";
  auto plainArgv = spawner.compileArgv(plain, request, 4);
  CHECK(std::count_if(plainArgv.begin(), plainArgv.end(), [](const std::string& a) {
          return a.rfind("--chitin-egress=", 0) == 0;
        }) == 0);

  // The reviewer's view names the mount with a placeholder for the per-worker socket.
  std::string text = spawner.explain("demo", {{"WORKSPACE", "/srv/ws"}});
  CHECK(text.find("--ro-bind '${EGRESS_SOCKET}' /run/chitin/egress.sock") != std::string::npos);
  CHECK(text.find("egress: through the supervisor's broker only: the worker's own socket at "
                  "/run/chitin/egress.sock") != std::string::npos);
  CHECK(spawner.explain("plain").find("egress: none") != std::string::npos);
}

TEST_CASE("host check of the egress socket: a real unix socket, never a symlink to one") {
  char pattern[] = "/tmp/chitin-egress-XXXXXX";
  REQUIRE(mkdtemp(pattern) != nullptr);
  std::string root = pattern;
  std::string path = root + "/w.sock";
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  REQUIRE(symlink(path.c_str(), (root + "/link.sock").c_str()) == 0);
  { std::ofstream(root + "/file") << "x"; }
  SystemSpawnOs os;
  CHECK(os.isSocket(path));
  CHECK_FALSE(os.isSocket(root + "/link.sock"));
  CHECK_FALSE(os.isSocket(root + "/file"));
  CHECK_FALSE(os.isSocket(root + "/missing"));
  close(fd);
  for (const char* name : {"/w.sock", "/link.sock", "/file"}) unlink((root + name).c_str());
  rmdir(root.c_str());
}

TEST_CASE("spawn refuses to run a worker as uid 0") {
  FakeOs os;
  Spawner spawner({"/usr/bin/bwrap", "/p", "/w"}, os);
  SpawnRequest request;
  request.profile = "demo";
  if (geteuid() == 0) {
    CHECK_THROWS_WITH_AS(spawner.spawn(request),
                         "chitin never runs workers as uid 0; start as a normal user or use "
                         "--user",
                         SandboxUnavailable);
    CHECK(*spawner.checkAvailable() ==
          "chitin never runs workers as uid 0; start as a normal user or use --user");
  } else {
    // Not root: the refusal is exercised by `sudo meson test`; check the missing-bwrap path.
    Spawner noBwrap({"/nonexistent/bwrap", "/p", "/w"}, os);
    CHECK(*noBwrap.checkAvailable() ==
          "bubblewrap is not installed (no executable /nonexistent/bwrap): apt-get install "
          "bubblewrap");
  }
}

TEST_CASE("shipped profiles: all load, compile, and match their worker kind's lockdown") {
  SystemSpawnOs os;
  std::string dir = sourceProfileDir();
  for (const char* name : {"session", "model", "exec", "read", "write", "edit", "channel-telegram",
                           "channel-irc", "channel-email", "channel-signal", "channel-whatsapp",
                           "channel-discord", "channel-slack"}) {
    CAPTURE(name);
    auto profile = loadProfile(os, dir, name);
    CHECK(profile.worker() == name);
    CHECK(compileSeccomp(profile).size() % 8 == 0);  // whole sock_filter instructions
    // Stacked filters intersect: a lockdown group the profile lacks would be dead weight and
    // a sign the two tables drifted apart.
    auto& lockdown = KJ_ASSERT_NONNULL(seccomp::lockdownFor(name));
    std::set<int> profileGroups(profile.syscalls().begin(), profile.syscalls().end());
    for (auto group : lockdown.groups) {
      CAPTURE(seccomp::groupName(group).cStr());
      CHECK(profileGroups.count(static_cast<int>(group)) == 1);
    }
    std::set<std::string> lockdownErrno;
    for (auto syscall : lockdown.errnoSyscalls) lockdownErrno.insert(syscall);
    for (auto& syscall : profile.errno_syscalls()) CHECK(lockdownErrno.count(syscall) == 1);
    // Every exception to the default carries a `# why:` comment: count them.
    std::ifstream in(dir + "/" + name + ".textproto");
    std::stringstream text;
    text << in.rdbuf();
    CHECK(text.str().find("# why:") != std::string::npos);
  }
}

TEST_CASE("explain: prints the exact argv, each group's syscalls, the default and the limits") {
  SystemSpawnOs os;
  Spawner spawner({"/usr/bin/bwrap", sourceProfileDir(), "/nonexistent-workers"}, os);
  std::string text = spawner.explain("exec");
  CHECK(text.find("--unshare-all \\\n    --unshare-user \\\n    --disable-userns") !=
        std::string::npos);
  CHECK(text.find("--bind '${WORKSPACE}' /workspace") != std::string::npos);
  CHECK(text.find("/nonexistent-workers/chitin-worker-exec (not found)") != std::string::npos);
  CHECK(text.find("kill the process: SIGSYS") != std::string::npos);
  CHECK(text.find("  PROCESS_SPAWN:\n    clone(no namespace flags), clone3 -> ENOSYS, fork,") !=
        std::string::npos);
  CHECK(text.find("ioctl(TCGETS)") != std::string::npos);
  CHECK(text.find("TIOCSTI") == std::string::npos);
  CHECK(text.find("--share-net") == std::string::npos);
  CHECK(text.find("processes and threads: 64") != std::string::npos);
  CHECK(text.find("wall clock: 300 s") != std::string::npos);
  std::string withVars = spawner.explain("exec", {{"WORKSPACE", "/srv/ws"}});
  CHECK(withVars.find("--bind /srv/ws /workspace") != std::string::npos);
  // No shipped profile shares the host network: the model reaches its provider through the
  // egress broker's socket.
  std::string model = spawner.explain("model");
  CHECK(model.find("--share-net") == std::string::npos);
  CHECK(model.find("--ro-bind '${EGRESS_SOCKET}' /run/chitin/egress.sock") != std::string::npos);
}

TEST_CASE("worker exit: describe() names the signal; the limits flag spells every key") {
  CHECK(WorkerExit{-1, 31}.describe() == "killed by signal 31 (SIGSYS)");
  CHECK(WorkerExit{0, 0}.describe() == "exited with status 0");
  CHECK(limitsFlag([] {
          config::Limits limits;
          limits.set_memory_bytes(1);
          limits.set_max_processes(2);
          limits.set_max_open_files(3);
          limits.set_cpu_seconds(4);
          limits.set_max_file_bytes(5);
          return limits;
        }()) == "--chitin-limits=as=1,nproc=2,nofile=3,cpu=4,fsize=5");
}

// A stand-in for a sandbox without bwrap: `outer` (stopped and enumerated as the outer bwrap
// is) with one child that holds `touchMiB` of written memory, so that its exit takes a while.
struct FakeSandbox {
  pid_t outer = -1;
  pid_t inner = -1;
  int pidfd = -1;

  explicit FakeSandbox(size_t touchMiB) {
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    outer = fork();
    REQUIRE(outer >= 0);
    if (outer == 0) {
      pid_t child = fork();
      if (child == 0) {
        size_t size = touchMiB << 20;
        void* memory = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (memory == MAP_FAILED) _exit(1);
        pid_t self = getpid();
        if (write(ready[1], &self, sizeof(self)) != sizeof(self)) _exit(1);
        for (;;) pause();
      }
      for (;;) pause();
    }
    close(ready[1]);
    REQUIRE(read(ready[0], &inner, sizeof(inner)) == sizeof(inner));
    close(ready[0]);
    pidfd = static_cast<int>(syscall(SYS_pidfd_open, outer, 0));
    REQUIRE(pidfd >= 0);
  }
  ~FakeSandbox() {
    ::kill(inner, SIGKILL);
    ::kill(outer, SIGKILL);
    waitpid(outer, nullptr, 0);
    close(pidfd);
  }
  // Whether the child still runs (neither gone nor a zombie waiting for its stopped parent).
  bool innerRuns() const {
    std::ifstream in("/proc/" + std::to_string(inner) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t close = stat.rfind(')');
    return close != std::string::npos && stat.size() > close + 2 && stat[close + 2] != 'Z';
  }
};

TEST_CASE("killSandbox: returns once what the sandbox ran has exited, and says when it cannot") {
  SUBCASE("control: a child that exits in time is gone on return, and 0 is returned") {
    FakeSandbox sandbox(1);
    CHECK(killSandbox(sandbox.pidfd, sandbox.outer) == 0);
    CHECK_FALSE(sandbox.innerRuns());
  }
  SUBCASE("a child still exiting when the bound runs out is reported, not passed over") {
    // 256 MiB to give back: its exit takes far longer than a bound of 0 ms.
    FakeSandbox sandbox(256);
    CHECK(killSandbox(sandbox.pidfd, sandbox.outer, 0) == ETIMEDOUT);
  }
}

}  // namespace chitin::spawn
