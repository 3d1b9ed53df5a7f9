// SPDX-License-Identifier: Apache-2.0
// Killing a sandbox kills everything it started, also while bwrap is still setting it up: by
// spawn::killSandbox, and whoever kills it (the supervisor's own death included), because its
// outer bwrap is the init of a pid namespace of its own (SpawnerSettings::pidNamespacePerSandbox).
// bwrap's child ties itself to its parent's death only just before it execs the worker; a sandbox
// killed before that left the child running (or blocked for ever on a word from its dead parent),
// which happened to most spares killed right after being built.
// Runs in: tests (the real spawner; a stand-in monitor, then real bwraps from the shipped profile)

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "probe-runner.h"
#include "uv-kj-bridge.h"
#include "worker-host.h"

namespace chitin::testing {

namespace {

// A pidfd of `pid`, or -1 when it is gone.
int pidfdOf(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0)); }

// Whether our child `pid` has been reaped: it is no longer a child of ours at all (a zombie would
// be reported here, and reaped).
bool reaped(pid_t pid) {
  siginfo_t info{};
  return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG) < 0 && errno == ECHILD;
}

// Whether the process behind `pidfd` has ended within `seconds` (a pidfd polls readable then).
bool endsWithin(int pidfd, double seconds) {
  pollfd p{pidfd, POLLIN, 0};
  return poll(&p, 1, static_cast<int>(seconds * 1000)) == 1;
}

// The pids of processes whose command line holds `marker`.
std::vector<pid_t> processesWith(const std::string& marker) {
  std::vector<pid_t> out;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = readAll(entry.path().string() + "/cmdline");
    if (cmdline.find(marker) != std::string::npos) out.push_back(std::stoi(name));
  }
  return out;
}

}  // namespace

TEST_CASE("kill: what the sandbox's monitor started before tying it to its own death dies too") {
  // A stand-in for bwrap in its set-up window: it has started a child that nothing ties to its
  // death, and waits. The child must die with the sandbox.
  TempDir dir("chitin-kill");
  std::string script = dir.path() + "/monitor";
  std::string pidFile = dir.path() + "/child.started";
  {
    std::ofstream out(script);
    // The spawner's trial sandbox (it runs /usr/bin/true once) passes; a worker's does not end.
    // Its child's pid is not `$!`: that is the pid in the sandbox's pid namespace, whose init
    // the stand-in is. The test finds it by its command line.
    out << "#!/bin/sh\nfor arg; do [ \"$arg\" = /usr/bin/true ] && exit 0; done\n"
        << "sleep 4247.25 &\ntouch " << pidFile << "\nwait\n";
  }
  REQUIRE(chmod(script.c_str(), 0755) == 0);
  spawn::SpawnerSettings settings = testSpawner().settings();
  settings.bwrapPath = script;
  spawn::SystemSpawnOs os;
  spawn::Spawner spawner(settings, os);
  spawn::SpawnRequest request;
  request.profile = "exec";
  request.vars = {{"WORKSPACE", dir.path()}};
  auto worker = spawner.spawn(request);

  double deadline = monotonicSeconds() + 20;
  std::vector<pid_t> children;
  while ((children = processesWith("4247.25")).empty() && monotonicSeconds() < deadline)
    usleep(2000);
  REQUIRE_MESSAGE(children.size() == 1, "the stand-in monitor did not start its child");
  int childFd = pidfdOf(children[0]);
  REQUIRE(childFd >= 0);
  // Control: the child runs, below the monitor, until the sandbox is killed.
  CHECK_FALSE(endsWithin(childFd, 0.2));

  spawn::killWorker(worker);
  spawn::waitForExit(worker);
  bool ended = endsWithin(childFd, 5);
  if (!ended) syscall(SYS_pidfd_send_signal, childFd, SIGKILL, nullptr, 0);  // not left behind
  close(childFd);
  CHECK_MESSAGE(ended, "the monitor's child outlived the sandbox it belonged to");
}

namespace {

// A spawner like testSpawner(), its outer bwraps in pid namespaces of their own or not.
spawn::SpawnerSettings spawnerSettings(bool pidNamespace) {
  spawn::SpawnerSettings settings = testSpawner().settings();
  settings.pidNamespacePerSandbox = pidNamespace;
  return settings;
}

spawn::SpawnRequest probeRequest(const std::string& workspace) {
  spawn::SpawnRequest request;
  request.profile = "exec";
  request.vars = {{"WORKSPACE", workspace}};
  request.workerOverride = getenv("CHITIN_PROBE");
  request.workerArgs = {"--probe-kind=exec", "--probe=stderr"};
  return request;
}

// What is left running with `marker` in its command line once the kernel has had 3 s to finish
// the dying, killed (not left for the next test) and said.
std::vector<pid_t> leftRunning(const std::string& marker) {
  std::vector<pid_t> left;
  double deadline = monotonicSeconds() + 3;
  do {
    left = processesWith(marker);
    if (left.empty()) break;
    usleep(20000);
  } while (monotonicSeconds() < deadline);
  for (pid_t pid : left) {
    MESSAGE("left behind: pid ", pid, ": ", readAll("/proc/" + std::to_string(pid) + "/stat"));
    ::kill(pid, SIGKILL);
  }
  return left;
}

// Real sandboxes from the shipped exec profile, each killed at once or a few ms after its spawn
// (measured before the fix: most such kills left bwrap's child running), then reaped. Returns
// what they left running, killed. Each sandbox's workspace path is in every one of its
// processes' command lines. With `loopWatched`, each pidfd is first made non-blocking, as the
// supervisor's libuv watch makes it (uv_poll_init), so the kill and the reap must not rely on
// waitid(P_PIDFD) blocking.
std::vector<pid_t> killedDuringSetup(bool loopWatched, int spawns, bool pidNamespace) {
  TempDir workspace("chitin-kill-ws");
  // Both ways: without a pid namespace of its own, killSandbox()'s kills alone must leave nothing;
  // with one, as the supervisor spawns them, nothing either.
  spawn::SystemSpawnOs os;
  spawn::Spawner spawner(spawnerSettings(pidNamespace), os);
  std::mt19937 random(20261203);
  std::uniform_int_distribution<int> delayUs(0, 4000);
  auto request = probeRequest(workspace.path());
  bool sawOne = false;
  for (int i = 0; i < spawns; ++i) {
    auto worker = spawner.spawn(request);
    if (loopWatched) REQUIRE(fcntl(worker.pidfd.get(), F_SETFL, O_NONBLOCK) == 0);
    if (i == 0) {
      // Control: the scan sees a sandbox. (Polled: exec releases a vfork parent before the new
      // program's command line is in place, so for a moment it reads empty.)
      double deadline = monotonicSeconds() + 5;
      while (!(sawOne = !processesWith(workspace.path()).empty()) && monotonicSeconds() < deadline)
        usleep(1000);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delayUs(random)));
    spawn::killWorker(worker);
    spawn::waitForExit(worker);
  }
  CHECK(sawOne);
  return leftRunning(workspace.path());
}

// Real sandboxes from the shipped exec profile whose outer bwrap alone is SIGKILLed 0-4 ms after
// its spawn by someone else than the supervisor (an administrator, the OOM killer), then reaped.
// Returns what was left running, killed.
std::vector<pid_t> monitorsKilledFromOutside(bool pidNamespace, int spawns) {
  TempDir workspace(pidNamespace ? "chitin-pidns-ws" : "chitin-orphan-ws");
  spawn::SystemSpawnOs os;
  spawn::Spawner spawner(spawnerSettings(pidNamespace), os);
  std::mt19937 random(20261205);
  std::uniform_int_distribution<int> delayUs(0, 4000);
  auto request = probeRequest(workspace.path());
  for (int i = 0; i < spawns; ++i) {
    auto worker = spawner.spawn(request);
    std::this_thread::sleep_for(std::chrono::microseconds(delayUs(random)));
    REQUIRE(syscall(SYS_pidfd_send_signal, worker.pidfd.get(), SIGKILL, nullptr, 0) == 0);
    spawn::waitForExit(worker);
  }
  return leftRunning(workspace.path());
}

// A supervisor SIGKILLed 0-4 ms after it spawned a real sandbox from the shipped exec profile, in
// each of `trials` stand-ins: a child of ours with a spawner of its own, killed once its spawn()
// has returned. Returns what was left running, killed.
std::vector<pid_t> supervisorsKilledDuringSetup(bool pidNamespace, int trials) {
  TempDir workspace(pidNamespace ? "chitin-pidns-sup-ws" : "chitin-orphan-sup-ws");
  std::mt19937 random(20261206);
  std::uniform_int_distribution<int> delayUs(0, 4000);
  auto request = probeRequest(workspace.path());
  auto settings = spawnerSettings(pidNamespace);
  for (int i = 0; i < trials; ++i) {
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    kj::AutoCloseFd readEnd(fds[0]), writeEnd(fds[1]);
    pid_t supervisor = fork();
    REQUIRE(supervisor >= 0);
    if (supervisor == 0) {
      try {
        spawn::SystemSpawnOs os;
        spawn::Spawner spawner(settings, os);
        if (spawner.checkAvailable()) _exit(2);
        auto worker = spawner.spawn(request);
        char byte = 's';
        if (write(writeEnd.get(), &byte, 1) != 1) _exit(3);
        pause();
      } catch (...) {
      }
      _exit(1);
    }
    writeEnd = nullptr;
    char byte = 0;
    bool spawned = read(readEnd.get(), &byte, 1) == 1;
    if (spawned) std::this_thread::sleep_for(std::chrono::microseconds(delayUs(random)));
    ::kill(supervisor, SIGKILL);
    int status = 0;
    REQUIRE(waitpid(supervisor, &status, 0) == supervisor);
    REQUIRE_MESSAGE(spawned, "the stand-in supervisor could not spawn: ", status);
  }
  return leftRunning(workspace.path());
}

// `text`'s words, one space between each.
std::string squeezed(const std::string& text) {
  std::istringstream words(text);
  std::string word, out;
  while (words >> word) out += (out.empty() ? "" : " ") + word;
  return out;
}

}  // namespace

TEST_CASE(
    "kill: the outer bwrap is the init of a pid namespace of its own, in a user namespace that "
    "maps "
    "only the supervisor's ids, and holds no capability") {
  TempDir workspace("chitin-pidns-look");
  for (bool pidNamespace : {false, true}) {
    CAPTURE(pidNamespace);
    spawn::SystemSpawnOs os;
    spawn::Spawner spawner(spawnerSettings(pidNamespace), os);
    auto worker = spawner.spawn(probeRequest(workspace.path()));
    std::string nspid = squeezed(statusField(worker.pid, "NSpid"));
    std::string ownUserNs = std::filesystem::read_symlink("/proc/self/ns/user");
    std::string itsUserNs =
        std::filesystem::read_symlink("/proc/" + std::to_string(worker.pid) + "/ns/user");
    if (pidNamespace) {
      CHECK(nspid == std::to_string(worker.pid) + " 1");
      CHECK(itsUserNs != ownUserNs);
      std::string uid = std::to_string(geteuid()), gid = std::to_string(getegid());
      std::string proc = "/proc/" + std::to_string(worker.pid);
      CHECK(squeezed(readAll(proc + "/uid_map")) == uid + " " + uid + " 1");
      CHECK(squeezed(readAll(proc + "/gid_map")) == gid + " " + gid + " 1");
      CHECK(squeezed(readAll(proc + "/setgroups")) == "deny");
    } else {
      // Control: in our own pid and user namespaces, as bwrap is when started as a plain child.
      CHECK(nspid == std::to_string(worker.pid));
      CHECK(itsUserNs == ownUserNs);
    }
    CHECK(statusField(worker.pid, "CapEff") == "0000000000000000");
    CHECK(statusField(worker.pid, "CapPrm") == "0000000000000000");
    spawn::killWorker(worker);
    spawn::waitForExit(worker);
  }
}

TEST_CASE(
    "kill: sandboxes whose outer bwrap is killed from outside during its set-up leave nothing "
    "running: it is the init of their pid namespace") {
  // Control: with bwrap in our own pid namespace, such kills leave bwrap's child running,
  // reparented to pid 1 and blocked for ever on a word from its dead parent (measured: 7-9 of 60).
  CHECK_FALSE(monitorsKilledFromOutside(false, 60).empty());
  CHECK(monitorsKilledFromOutside(true, 40).empty());
}

TEST_CASE(
    "kill: a supervisor killed during bwrap's set-up leaves nothing of the sandbox running: its "
    "outer bwrap dies with it, and the pid namespace with its init") {
  // Control: the outer bwrap's parent-death signal takes it, but not its child, as above.
  CHECK_FALSE(supervisorsKilledDuringSetup(false, 60).empty());
  CHECK(supervisorsKilledDuringSetup(true, 40).empty());
}

TEST_CASE("kill: real sandboxes killed 0-4 ms into bwrap's set-up leave no process behind") {
  CHECK(killedDuringSetup(false, 40, false).empty());
  CHECK(killedDuringSetup(false, 40, true).empty());
}

TEST_CASE("kill: the same with pidfds an event loop made non-blocking, as the supervisor's are") {
  // waitid(P_PIDFD) on a non-blocking pidfd returns EAGAIN at once: the kill did not wait for
  // bwrap to stop before listing its children (a child cloned after the list outlived it,
  // blocked for ever on a word from its dead parent), and waitForExit() failed.
  CHECK(killedDuringSetup(true, 60, false).empty());
  CHECK(killedDuringSetup(true, 40, true).empty());
}

TEST_CASE("kill: a worker host that ends its worker reaps the sandbox's monitor") {
  // WorkerHost watches the pidfd on the libuv loop, which makes it non-blocking; its end()
  // reaped through it with waitid(P_PIDFD) and got EAGAIN, so each ended tool worker left its
  // outer bwrap a zombie of the supervisor's for as long as the gateway ran.
  TempDir workspace("chitin-kill-host");
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  std::vector<pid_t> monitors;
  {
    auto io = kj::setupAsyncIo();
    UvKjBridge bridge(&loop, io);
    spawn::SpawnRequest request;
    request.profile = "exec";
    request.vars = {{"WORKSPACE", workspace.path()}};
    request.workerOverride = getenv("CHITIN_PROBE");
    request.workerArgs = {"--probe-kind=exec", "--probe=stderr"};
    for (int i = 0; i < 3; ++i) {
      WorkerHost host(&loop, io, testSpawner().spawn(request), "probe worker");
      // Control: a running monitor is our child, not yet waitable.
      siginfo_t info{};
      REQUIRE(waitid(P_PID, static_cast<id_t>(host.pid()), &info, WEXITED | WNOHANG | WNOWAIT) ==
              0);
      CHECK(info.si_pid == 0);
      monitors.push_back(host.pid());
      CHECK(host.end().empty());
    }
    bridge.close();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  for (pid_t pid : monitors) {
    CHECK_MESSAGE(reaped(pid), "the monitor of an ended worker, pid ", pid, ", was left a zombie");
  }
}

TEST_CASE(
    "kill: a worker host ended on the event loop: the loop runs on while the sandbox is torn "
    "down, and nothing of the sandbox runs once it resolves") {
  // endAsync() is end() with its waits (the pid namespace's teardown, a millisecond or more, and
  // the monitor's exit) on the loop: end() held the whole supervisor that long per tool call.
  TempDir workspace("chitin-kill-async");
  const std::string marker = "4247.61";
  const std::string lingering = std::string("sleep\0", 6) + marker;  // in its own session
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    auto io = kj::setupAsyncIo();
    UvKjBridge bridge(&loop, io);
    spawn::SpawnRequest request;
    request.profile = "exec";
    request.vars = {{"WORKSPACE", workspace.path()}};
    request.workerOverride = getenv("CHITIN_PROBE");
    request.workerArgs = {"--probe-kind=exec", "--probe=bash",
                          "--probe-arg=setsid sleep " + marker + " & exec sleep 4247.62"};
    auto host = kj::heap<WorkerHost>(&loop, io, testSpawner().spawn(request), "probe worker");
    pid_t monitor = host->pid();
    // Control: what the sandbox left running in a session of its own runs (once setsid has
    // become the sleep).
    auto sleeping = [&]() {
      for (pid_t pid : processesWith(lingering)) {
        if (readAll("/proc/" + std::to_string(pid) + "/comm") == "sleep\n") return pid;
      }
      return pid_t{-1};
    };
    double deadline = monotonicSeconds() + 10;
    while (sleeping() < 0 && monotonicSeconds() < deadline) usleep(2000);
    pid_t sleep = sleeping();
    REQUIRE_MESSAGE(sleep > 0, "the sandbox did not start its sleep");
    int sleepFd = pidfdOf(sleep);
    REQUIRE(sleepFd >= 0);
    KJ_DEFER(close(sleepFd));

    bool done = false;
    std::string notGone = "unresolved";
    std::vector<pid_t> leftAtEnd;
    bool monitorReaped = false;
    bool sleepGone = false;
    auto ending = host->endAsync()
                      .then([&](std::string why) {
                        // At the moment it resolves, not a grace period later.
                        sleepGone = endsWithin(sleepFd, 0);
                        leftAtEnd = processesWith(marker);
                        monitorReaped = reaped(monitor);
                        notGone = why;
                        done = true;
                      })
                      .eagerlyEvaluate(nullptr);
    // end() had the sandbox gone before it returned; endAsync() returns first.
    CHECK_FALSE(host->exited());
    int turns = 0;
    while (turns++ < 1000) {
      bridge.pump();
      if (done) break;
      uv_run(&loop, UV_RUN_ONCE);
    }
    REQUIRE(done);
    CHECK(notGone == "");
    CHECK(host->exited());
    CHECK_MESSAGE(monitorReaped, "the monitor ", monitor, " was not reaped when endAsync resolved");
    for (pid_t pid : leftAtEnd) {
      MESSAGE("running when endAsync resolved: pid ", pid, ": ",
              readAll("/proc/" + std::to_string(pid) + "/stat"));
      ::kill(pid, SIGKILL);
    }
    CHECK(leftAtEnd.empty());
    CHECK_MESSAGE(sleepGone, "what the sandbox left running had not exited when endAsync resolved");
    ending = nullptr;
    host = nullptr;
    bridge.close();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
}

TEST_CASE("kill: workers handed to WorkerEndings are gone and reaped once it is empty; endNow() "
          "ends the rest at once") {
  TempDir workspace("chitin-kill-endings");
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  std::vector<pid_t> monitors;
  {
    auto io = kj::setupAsyncIo();
    UvKjBridge bridge(&loop, io);
    spawn::SpawnRequest request;
    request.profile = "exec";
    request.vars = {{"WORKSPACE", workspace.path()}};
    request.workerOverride = getenv("CHITIN_PROBE");
    request.workerArgs = {"--probe-kind=exec", "--probe=sleep"};
    WorkerEndings endings;
    for (int i = 0; i < 3; ++i) {
      auto host = kj::heap<WorkerHost>(&loop, io, testSpawner().spawn(request), "probe worker");
      monitors.push_back(host->pid());
      endings.add(kj::mv(host));
    }
    // Handed over, not ended yet: the loop has not run.
    CHECK_FALSE(endings.empty());
    CHECK_FALSE(reaped(monitors[0]));
    int turns = 0;
    while (turns++ < 1000) {
      bridge.pump();
      if (endings.empty()) break;
      uv_run(&loop, UV_RUN_ONCE);
    }
    REQUIRE(endings.empty());
    for (pid_t pid : monitors) CHECK_MESSAGE(reaped(pid), "monitor ", pid, " not reaped");
    CHECK(processesWith(workspace.path()).empty());

    // endNow(): what is still being ended is ended before it returns.
    auto host = kj::heap<WorkerHost>(&loop, io, testSpawner().spawn(request), "probe worker");
    pid_t last = host->pid();
    endings.add(kj::mv(host));
    endings.endNow();
    CHECK(endings.empty());
    CHECK(reaped(last));
    CHECK(processesWith(workspace.path()).empty());
    bridge.close();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
}

}  // namespace chitin::testing
