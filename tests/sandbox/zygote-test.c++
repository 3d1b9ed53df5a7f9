// SPDX-License-Identifier: Apache-2.0
// Workers forked by a zygote (common/zygote.h) from the shipped session profile, which says
// `fork_server: true`: each is alone in namespaces of its own with its own /proc and /tmp, keeps
// no capability, runs under the profile's filter, and its end (a seccomp kill included) is
// reported as a bwrap'ed worker's is. Each denial beside the control that shows what it denies.
// Runs in: tests (real sandboxes from the real spawner)

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "fork-server.h"
#include "probe-runner.h"

namespace chitin::testing {

namespace {

std::string nsOf(pid_t pid, const char* ns) {
  char target[64] = {};
  std::string path = "/proc/" + std::to_string(pid) + "/ns/" + ns;
  ssize_t n = readlink(path.c_str(), target, sizeof(target) - 1);
  REQUIRE_MESSAGE(n > 0, path);
  return std::string(target, n);
}

pid_t parentOf(pid_t pid) {
  std::string stat = readAll("/proc/" + std::to_string(pid) + "/stat");
  size_t close = stat.rfind(')');
  REQUIRE(close != std::string::npos);
  return static_cast<pid_t>(std::stol(stat.substr(close + 4)));
}

const char* const OWN_NAMESPACES[] = {"pid", "mnt", "net", "ipc", "uts", "cgroup"};

// Where cgroup limits are in force, every worker is spawned by bwrap (each sandbox's cgroup must
// hold it from its first page): there is no zygote to test.
bool zygotesUsedHere() {
  if (!testSpawner().cgroupStatus().inForce) return true;
  MESSAGE("cgroup limits are in force here: workers are spawned by bwrap, no zygote; skipped");
  return false;
}

}  // namespace

TEST_CASE("zygote: session workers are forked by one zygote, each in namespaces of its own") {
  if (!zygotesUsedHere()) return;
  auto a = startProbe({"session", "session", "sleep"});
  auto b = startProbe({"session", "session", "sleep"});
  CHECK(a.firstResult(30) == "ok sleeping");
  CHECK(b.firstResult(30) == "ok sleeping");
  // Forked, not bwrap'ed: the zygote is their parent and reports their end.
  REQUIRE(a.worker().reporter != nullptr);
  REQUIRE(b.worker().reporter != nullptr);
  CHECK(a.worker().reporter == b.worker().reporter);
  pid_t zygote = parentOf(a.worker().pid);
  CHECK(parentOf(b.worker().pid) == zygote);
  CHECK(readAll("/proc/" + std::to_string(zygote) + "/cmdline").find("--chitin-zygote") !=
        std::string::npos);
  for (const char* ns : OWN_NAMESPACES) {
    CAPTURE(ns);
    CHECK(nsOf(a.worker().pid, ns) != nsOf(b.worker().pid, ns));
    CHECK(nsOf(a.worker().pid, ns) != nsOf(zygote, ns));
  }
  // The control: what they are meant to share, they share (the zygote's user namespace; each is
  // uid-mapped as the zygote is, and rlimits are per process).
  CHECK(nsOf(a.worker().pid, "user") == nsOf(zygote, "user"));
  // No capability is left to them, not even in the bounding set; the zygote (their control)
  // holds CAP_SYS_ADMIN and CAP_SETPCAP, in its own user namespace only.
  CHECK(statusField(zygote, "CapEff") == "0000000000200100");
  for (auto* probe : {&a, &b}) {
    pid_t pid = probe->worker().pid;
    CHECK(statusField(pid, "CapEff") == "0000000000000000");
    CHECK(statusField(pid, "CapPrm") == "0000000000000000");
    CHECK(statusField(pid, "CapInh") == "0000000000000000");
    CHECK(statusField(pid, "CapAmb") == "0000000000000000");
    CHECK(statusField(pid, "CapBnd") == "0000000000000000");
    CHECK(statusField(pid, "NoNewPrivs") == "1");
    // The zygote's filter, the profile's, the kind's lockdown.
    CHECK(statusField(pid, "Seccomp_filters") == "3");
    CHECK(statusField(pid, "Seccomp_filters") != statusField(zygote, "Seccomp_filters"));
  }
  MESSAGE("private memory of a forked worker, idle: ",
          rollupKb(a.worker().pid, "Private_Dirty") + rollupKb(a.worker().pid, "Private_Clean"),
          " KiB; of its zygote: ",
          rollupKb(zygote, "Private_Dirty") + rollupKb(zygote, "Private_Clean"), " KiB");
  // Killing one leaves the other serving; its end is reported.
  auto end = a.kill();
  CHECK(end.signal == SIGKILL);
  CHECK(kill(b.worker().pid, 0) == 0);
  b.kill();
}

TEST_CASE("zygote: a forked worker sees no other process, and has its own /proc and /tmp") {
  if (!zygotesUsedHere()) return;
  // Two workers of one zygote (the same probe: a zygote's workers run with its argv), the second
  // started while the first runs, so that it has a sibling to look for.
  const std::vector<std::string> paths = {"/tmp", "/dev/shm", "/proc", "/dev/pts", "/usr"};
  auto first = startProbe({"session", "read", "census", paths});
  std::string one = first.firstResult(30);
  auto second = startProbe({"session", "read", "census", paths});
  std::string two = second.firstResult(30);
  MESSAGE(one);
  MESSAGE(two);
  REQUIRE(parentOf(first.worker().pid) == parentOf(second.worker().pid));
  // Itself as pid 1 (the control: its /proc works and shows it), and nothing else: neither the
  // zygote nor its sibling has a pid in its namespace.
  CHECK(one.rfind("ok pids=1 ", 0) == 0);
  CHECK(two.rfind("ok pids=1 ", 0) == 0);
  // /tmp, /dev/shm, /proc and devpts are instances of its own; /usr is the one read-only bind
  // all share (the control: the same probe finds the same device where sharing is meant).
  auto field = [](const std::string& line, const std::string& path) {
    size_t at = line.find(" " + path + "=");
    REQUIRE(at != std::string::npos);
    size_t start = at + path.size() + 2;
    return line.substr(start, line.find(' ', start) - start);
  };
  for (const auto& path : paths) {
    CAPTURE(path);
    CHECK(field(one, path).rfind("errno", 0) != 0);
    if (path == "/usr") {
      CHECK(field(one, path) == field(two, path));
    } else {
      CHECK(field(one, path) != field(two, path));
    }
  }
  first.kill();
  second.kill();
}

TEST_CASE("zygote: the profile's filter holds in a forked worker, and its kill is reported") {
  if (!zygotesUsedHere()) return;
  // mount: the zygote's own filter allows it (its workers mount their /proc with it); the
  // session profile's filter, which each worker loads before it serves, kills on it.
  auto run = runProbe({"session", "session", "mount"});
  CHECK(run.result == "");
  CHECK(run.exit.signal == SIGSYS);
  // The control: a probe that breaks no rule exits 0, reported the same way.
  auto control = runProbe({"session", "session", "noop"});
  CHECK(control.result == "ok");
  CHECK(control.exit.exitCode == 0);
  CHECK(control.exit.signal == 0);
}

TEST_CASE("zygote: its end takes every worker it forked; the next spawn starts a new one") {
  if (!zygotesUsedHere()) return;
  auto a = startProbe({"session", "session", "sleep"});
  auto b = startProbe({"session", "session", "sleep"});
  CHECK(a.firstResult(30) == "ok sleeping");
  CHECK(b.firstResult(30) == "ok sleeping");
  pid_t zygote = parentOf(a.worker().pid);
  auto server = std::dynamic_pointer_cast<spawn::ForkServer>(a.worker().reporter);
  REQUIRE(server != nullptr);
  REQUIRE(server->zygotePid() > 0);
  // Its outer bwrap is the spawner's child; killing it kills the zygote (--die-with-parent),
  // which is pid 1 of its workers' sandbox.
  REQUIRE(kill(server->zygotePid(), SIGKILL) == 0);
  auto endA = a.waitExit(10);
  auto endB = b.waitExit(10);
  CHECK(endA.signal == SIGKILL);
  CHECK(endB.signal == SIGKILL);
  // The zygote itself is gone too (or a zombie until its new parent reaps it).
  auto gone = [zygote]() {
    std::string stat = readAll("/proc/" + std::to_string(zygote) + "/stat");
    size_t close = stat.rfind(')');
    return close == std::string::npos || stat.compare(close + 2, 1, "Z") == 0;
  };
  double until = monotonicSeconds() + 5;
  while (!gone() && monotonicSeconds() < until) usleep(10000);
  CHECK(gone());
  // A new zygote serves the next worker.
  auto c = runProbe({"session", "session", "noop"});
  CHECK(c.result == "ok");
  CHECK(c.exit.exitCode == 0);
}

}  // namespace chitin::testing

namespace chitin::testing {

TEST_CASE("zygote: a forked worker's malloc frees at once, and a sealed heap has no hole") {
  if (!zygotesUsedHere()) return;
  // No per-thread cache and no fast bins in a worker the zygote forked (ZYGOTE_MALLOC_TUNABLES):
  // a freed chunk is free at once, and an idle worker's malloc_trim gives back every whole free
  // page. The control: the same probe outside any sandbox, with glibc's defaults, finds the chunk
  // kept in the cache.
  CHECK(runProbe({"session", "session", "malloc"}).result == "ok cached=0 fast=0");
  CHECK(runUnsandboxed("malloc").result == "ok cached=1 fast=0");
  // zygote::sealHeap() (what the zygote does once before its first fork) leaves no free chunk
  // below the top; the control: freeing the chunks left between makes holes the probe sees again.
  // Both ways of glibc's, the zygote's and its defaults.
  for (const std::string& result :
       {runProbe({"session", "session", "seal"}).result, runUnsandboxed("seal").result}) {
    CAPTURE(result);
    auto field = [&result](const std::string& name) {
      size_t at = result.find(" " + name + "=");
      REQUIRE(at != std::string::npos);
      return std::stoul(result.substr(at + name.size() + 2));
    };
    CHECK(field("before") > 4096);
    CHECK(field("after") < 32);
    CHECK(field("again") > 4096);
  }
}

TEST_CASE("zygote: one that cannot serve is said, and bwrap spawns the workers meanwhile") {
  if (!zygotesUsedHere()) return;
  // A "worker" that is no zygote: /usr/bin/true exits as soon as bwrap starts it.
  std::vector<std::string> said;
  spawn::SystemSpawnOs os;
  auto settings = testSpawner().settings();
  settings.warn = [&said](const std::string& message) { said.push_back(message); };
  spawn::Spawner spawner(settings, os);
  spawn::SpawnRequest request;
  request.profile = "session";
  request.workerOverride = "/usr/bin/true";
  auto first = spawner.spawn(request);
  // Spawned all the same, by bwrap: the supervisor's own child, no zygote's.
  CHECK(first.reporter == nullptr);
  CHECK(spawn::waitForExit(first).exitCode == 0);
  REQUIRE(said.size() == 1);
  CHECK(said[0].find("zygote") != std::string::npos);
  CHECK(said[0].find("spawned by bwrap") != std::string::npos);
  // Not tried again at once: the next spawn goes to bwrap without another attempt.
  auto second = spawner.spawn(request);
  CHECK(second.reporter == nullptr);
  CHECK(spawn::waitForExit(second).exitCode == 0);
  CHECK(said.size() == 1);
  CHECK(spawner.forkServerOf(request) == nullptr);
  // The control: the shipped session worker's zygote serves (a forked worker, nothing said).
  spawn::SpawnRequest real;
  real.profile = "session";
  auto forked = spawner.spawn(real);
  CHECK(forked.reporter != nullptr);
  CHECK(said.size() == 1);
  spawn::killWorker(forked);
  CHECK(spawn::waitForExit(forked).signal == SIGKILL);
}

}  // namespace chitin::testing
