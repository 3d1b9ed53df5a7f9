// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about resource limits: a fork bomb, a memory balloon and an endless loop are
// each stopped inside their own sandbox, and another sandbox keeps working meanwhile.
// Runs in: tests (probes run in real sandboxes)

#include <doctest/doctest.h>
#include <poll.h>
#include <time.h>

#include "probe-runner.h"

namespace chitin::testing {

namespace {

int secondsSince(const timespec& start) {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int>(now.tv_sec - start.tv_sec);
}

}  // namespace

TEST_CASE(
    "exec profile: a fork bomb stops at 64 processes (EAGAIN) while another sandbox "
    "still forks") {
  TempDir first("chitin-ws"), second("chitin-ws");
  auto bomb = startProbe({"exec", "exec", "fork-bomb", {}, workspaceVars(first)});
  std::string result = bomb.firstResult(60);
  // RLIMIT_NPROC 64 counts this sandbox's processes (the probe and its children) in the
  // sandbox's own user namespace.
  CHECK(result.rfind("errno=EAGAIN forked=", 0) == 0);
  int forked = std::stoi(result.substr(result.find('=', 7) + 1));
  CHECK(forked >= 50);
  CHECK(forked < 64);
  // The bomb still holds its sandbox full. If the limit counted every process of this user
  // (as it would had it been set on bwrap), this second sandbox could not even start.
  auto other = runProbe({"exec", "exec", "fork", {}, workspaceVars(second)});
  CHECK(other.result == "ok");
  CHECK(bomb.kill().describe() == "killed by signal 9 (SIGKILL)");
}

TEST_CASE("session profile: a memory balloon stops below 512 MiB (ENOMEM)") {
  auto session = runProbe({"session", "session", "balloon"});
  CHECK(session.result.rfind("errno=ENOMEM mib=", 0) == 0);
  int mib = std::stoi(session.result.substr(17));
  CHECK(mib >= 256);
  CHECK(mib < 512);
  // Control: under the exec profile's 1 GiB the same balloon gets past 512 MiB.
  TempDir workspace("chitin-ws");
  auto exec = runProbe({"exec", "exec", "balloon", {}, workspaceVars(workspace)});
  CHECK(exec.result.rfind("errno=ENOMEM mib=", 0) == 0);
  int execMib = std::stoi(exec.result.substr(17));
  CHECK(execMib > 512);
  CHECK(execMib < 1024);
}

TEST_CASE(
    "read profile: an endless loop is killed at the 5 s CPU limit while another sandbox "
    "keeps working") {
  TempDir first("chitin-ws"), second("chitin-ws");
  timespec start;
  clock_gettime(CLOCK_MONOTONIC, &start);
  auto loop = startProbe({"read", "read", "spin", {}, workspaceVars(first)});
  CHECK(loop.firstResult(30) == "ok spinning");
  auto other = runProbe({"read", "read", "noop", {}, workspaceVars(second)});
  CHECK(other.result == "ok");
  // RLIMIT_CPU soft == hard: the kernel sends SIGKILL at the limit.
  CHECK(loop.waitExit(60).describe() == "killed by signal 9 (SIGKILL)");
  int elapsed = secondsSince(start);
  CHECK(elapsed >= 4);
  CHECK(elapsed < 60);
}

TEST_CASE("killWorker (the wall-clock limit) ends every process of the sandbox") {
  TempDir workspace("chitin-ws");
  auto sleeper = startProbe({"exec", "exec", "sleep", {}, workspaceVars(workspace)});
  CHECK(sleeper.worker().wallClockSeconds == 300);
  CHECK(sleeper.firstResult(30) == "ok sleeping");
  CHECK(sleeper.kill().describe() == "killed by signal 9 (SIGKILL)");
  // The probe's stdout closes only when the worker itself has gone too (it holds the pipe).
  CHECK(sleeper.firstResult(5) == "");
}

}  // namespace chitin::testing

namespace chitin::testing {

TEST_CASE(
    "exec profile: /dev/shm, /tmp and HOME stop at 256 MiB (ENOSPC); /dev itself is read-only "
    "(EROFS)") {
  TempDir workspace("chitin-ws");
  // tmpfs pages are not counted by RLIMIT_AS: before the cap, /dev/shm took all it was given
  // (and /dev, a tmpfs too, was writable). Exactly the cap fits.
  for (const char* dir : {"/dev/shm", "/tmp", "/home/sandbox"}) {
    CAPTURE(dir);
    auto fill = runProbe({"exec", "exec", "fill", {dir, "300"}, workspaceVars(workspace)});
    CHECK(fill.result == "errno=ENOSPC mib=256");
  }
  auto dev = runProbe({"exec", "exec", "fill", {"/dev", "1"}, workspaceVars(workspace)});
  CHECK(dev.result == "errno=EROFS mib=0");
  // Control: the same fill into the workspace (a bind of a host directory, no tmpfs) goes past
  // the cap.
  auto control =
      runProbe({"exec", "exec", "fill", {"/workspace", "272"}, workspaceVars(workspace)});
  CHECK(control.result == "ok mib=272");
}

TEST_CASE("write profile: /tmp and /dev/shm stop at 16 MiB (ENOSPC)") {
  TempDir workspace("chitin-ws");
  for (const char* dir : {"/dev/shm", "/tmp"}) {
    CAPTURE(dir);
    auto fill = runProbe({"write", "write", "fill", {dir, "64"}, workspaceVars(workspace)});
    CHECK(fill.result == "errno=ENOSPC mib=16");
  }
}

}  // namespace chitin::testing
