// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about reaching the supervisor through what a worker inherits: its stdout and
// stderr are a pipe of its own (never the supervisor's stderr, which may be the gateway's log),
// the commands it runs cannot open its /proc/1/fd, environ or mem, and what /proc shows of the
// host is the documented minimum.
// Runs in: tests (probes run in real sandboxes)

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

#include "probe-runner.h"

namespace chitin::testing {

namespace {

std::string identity(int fd) {
  struct stat st;
  REQUIRE(fstat(fd, &st) == 0);
  return "ok dev=" + std::to_string(st.st_dev) + " ino=" + std::to_string(st.st_ino);
}

// Each check prints "ok:WHAT" or "no:WHAT"; the probe joins lines with '|'.
const char PROC1_CHECKS[] =
    "x() { if eval \"$1\" >/dev/null 2>&1; then echo \"ok:$1\"; else echo \"no:$1\"; fi; }; "
    "x 'ls /proc/1/fd'; x 'readlink /proc/1/fd/1'; x 'exec 9</proc/1/fd/2'; "
    "x 'exec 9</proc/1/environ'; x 'exec 9</proc/1/mem'; x 'exec 9</proc/1/maps'; "
    "x 'readlink /proc/1/cwd'; x 'readlink /proc/1/exe'";

const char* const PROC1_NAMES[] = {
    "ls /proc/1/fd",      "readlink /proc/1/fd/1", "exec 9</proc/1/fd/2",  "exec 9</proc/1/environ",
    "exec 9</proc/1/mem", "exec 9</proc/1/maps",   "readlink /proc/1/cwd", "readlink /proc/1/exe"};

}  // namespace

TEST_CASE("spawner: a worker's stderr is a pipe of its own, never the supervisor's stderr") {
  TempDir workspace("chitin-ws");
  // The default request: the spawner's pipe, whose read end the caller gets.
  auto own = startProbe({"exec", "exec", "fstat", {"2"}, workspaceVars(workspace)});
  std::string result = own.firstResult(30);
  CHECK(result == identity(own.worker().output.get()));
  CHECK(result != identity(STDERR_FILENO));
  CHECK(own.waitExit(30).describe() == "exited with status 0");
  // Control: handed our stderr explicitly, the same probe reports exactly it (the probe can
  // tell the two apart).
  ProbeSpec control{"exec", "exec", "fstat", {"2"}, workspaceVars(workspace)};
  control.stderrFd = STDERR_FILENO;
  CHECK(runProbe(control).result == identity(STDERR_FILENO));
}

TEST_CASE(
    "exec profile: the commands cannot open the worker's /proc/1/fd, environ, mem or maps "
    "(not dumpable)") {
  TempDir workspace("chitin-ws");
  auto inside = runProbe({"exec", "exec", "bash-out", {PROC1_CHECKS}, workspaceVars(workspace)});
  // Control: the same probe in the same profile, started without the worker start-up (kind
  // none: still dumpable, as every worker was before), opens every one of them.
  auto control = runProbe({"exec", "none", "bash-out", {PROC1_CHECKS}, workspaceVars(workspace)});
  for (const char* name : PROC1_NAMES) {
    CAPTURE(name);
    CHECK(inside.result.find(std::string("no:") + name) != std::string::npos);
    CHECK(control.result.find(std::string("ok:") + name) != std::string::npos);
  }
  // The command's own /proc/self stays readable (it is dumpable: it exec'd).
  auto self = runProbe({"exec",
                        "exec",
                        "bash-out",
                        {"tr '\\0' ' ' < /proc/self/cmdline"},
                        workspaceVars(workspace)});
  CHECK(self.result.find("out=tr") != std::string::npos);
}

TEST_CASE(
    "exec profile: /proc names no host path except each bind's source in mountinfo's root "
    "field (not hidable with bwrap 0.8)") {
  TempDir workspace("chitin-ws");
  const std::string host = workspace.path();
  auto run =
      runProbe({"exec",
                "exec",
                "bash-out",
                {"cat /proc/self/mountinfo; echo MOUNTS; cat /proc/self/mounts; "
                 "echo CGROUP; cat /proc/self/cgroup; echo CWD; pwd; readlink /proc/self/cwd; "
                 "echo ENV; tr '\\0' '\\n' < /proc/self/environ; echo CMDLINE; "
                 "tr '\\0' ' ' < /proc/self/cmdline"},
                workspaceVars(workspace)});
  REQUIRE(run.result.rfind("ok status=0 out=", 0) == 0);
  std::string out = run.result.substr(16);
  std::vector<std::string> lines;
  std::istringstream split(out);
  for (std::string line; std::getline(split, line, '|');) lines.push_back(line);
  bool inMountinfo = true;
  int workspaceLines = 0;
  for (auto& line : lines) {
    if (line == "MOUNTS") inMountinfo = false;
    if (line.find(host) == std::string::npos) continue;
    CAPTURE(line);
    // The one place: "ID PARENT MAJ:MIN <host path> /workspace ..." (the kernel prints the
    // bind's root dentry from its filesystem's root; no bwrap option changes that).
    CHECK(inMountinfo);
    CHECK(line.find(" " + host + " /workspace ") != std::string::npos);
    workspaceLines++;
  }
  CHECK(workspaceLines == 1);
  CHECK(out.find("|0::/|CWD|") != std::string::npos);  // its own cgroup namespace
  CHECK(out.find("|CWD|/workspace|/workspace|") != std::string::npos);
  // Control: outside the sandbox the same directory is simply its host path.
  auto outside = runUnsandboxed("bash-out", {"cd " + host + " && pwd"});
  CHECK(outside.result.find("out=" + host + "|") != std::string::npos);
}

}  // namespace chitin::testing
