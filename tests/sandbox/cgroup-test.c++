// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about cgroup placement, through the real spawner and bwrap with a stand-in
// cgroup tree (this CI host, like most, delegates no cgroup v2 subtree; the decisions
// themselves are unit-tested in supervisor/spawn/cgroup-test.c++): the spawn child enters the
// worker's cgroup before it execs bwrap, and a worker that cannot enter it does not run.
// Runs in: tests (real sandboxes)

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <sstream>

#include "probe-runner.h"

namespace chitin::testing {

namespace {

// A delegated cgroup of our own, in memory, except that each worker's cgroup.procs is a real
// file (or, for `unwritable`, a descriptor that cannot be written).
class StandInCgroups final : public spawn::CgroupFs {
 public:
  explicit StandInCgroups(std::string procsFile) : procsFile_(std::move(procsFile)) {}
  bool unwritable = false;
  std::vector<std::string> writes;

  bool isCgroup2Mount(const std::string&) override { return true; }
  std::optional<std::string> read(const std::string& path) override {
    if (path == "/proc/self/cgroup") return std::string("0::/chitin.service\n");
    if (path == "/sys/fs/cgroup/chitin.service/cgroup.controllers") {
      return std::string("memory pids cpu\n");
    }
    if (path == "/sys/fs/cgroup/chitin.service/cgroup.procs") return std::to_string(getpid());
    return std::nullopt;
  }
  int write(const std::string& path, const std::string& value) override {
    writes.push_back(path + "=" + value);
    return 0;
  }
  int makeDir(const std::string&) override { return 0; }
  int removeDir(const std::string&) override { return 0; }
  bool writable(const std::string&) override { return true; }
  std::vector<std::string> subdirectories(const std::string&) override { return {}; }
  int openForWrite(const std::string&) override {
    int fd = ::open(procsFile_.c_str(), (unwritable ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
  }

 private:
  std::string procsFile_;
};

spawn::SpawnRequest probeRequest(const TempDir& workspace, int out) {
  spawn::SpawnRequest request;
  request.profile = "exec";
  request.vars = {{"WORKSPACE", workspace.path()}};
  request.workerOverride = getenv("CHITIN_PROBE");
  request.workerArgs = {"--probe-kind=exec", "--probe=noop"};
  request.stdoutFd = out;
  return request;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("spawner: with cgroups delegated, the worker enters its cgroup before bwrap runs") {
  TempDir workspace("chitin-ws"), state("chitin-cg");
  std::string procs = state.file("cgroup.procs", "");
  StandInCgroups tree(procs);
  spawn::SystemSpawnOs os;
  spawn::Spawner spawner(testSpawner().settings(), os, tree);
  REQUIRE(spawner.cgroupStatus().inForce);
  int fds[2];
  REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
  kj::AutoCloseFd readEnd(fds[0]), writeEnd(fds[1]);
  auto worker = spawner.spawn(probeRequest(workspace, writeEnd.get()));
  writeEnd = nullptr;
  RunningProbe probe(kj::mv(worker), kj::mv(readEnd));
  CHECK(probe.firstResult(30) == "ok");
  CHECK(probe.waitExit(30).describe() == "exited with status 0");
  // The child wrote "0" (itself) into the worker's cgroup.procs, and the limits were set.
  CHECK(slurp(procs) == "0");
  std::string dir = "/sys/fs/cgroup/chitin.service/workers/exec-" + std::to_string(getpid());
  auto wrote = [&](const std::string& what) {
    return std::find_if(tree.writes.begin(), tree.writes.end(), [&](const std::string& w) {
             return w.rfind(dir, 0) == 0 && w.find(what) != std::string::npos;
           }) != tree.writes.end();
  };
  CHECK(wrote("/memory.max=1610612736"));
  CHECK(wrote("/pids.max=65"));
  CHECK(wrote("/cpu.max=100000 100000"));
}

TEST_CASE("spawner: a worker that cannot enter its cgroup does not run (fail closed)") {
  TempDir workspace("chitin-ws"), state("chitin-cg");
  std::string ran = workspace.path() + "/ran";
  StandInCgroups tree(state.file("cgroup.procs", ""));
  tree.unwritable = true;
  spawn::SystemSpawnOs os;
  spawn::Spawner spawner(testSpawner().settings(), os, tree);
  auto request = probeRequest(workspace, STDERR_FILENO);
  request.workerArgs = {"--probe-kind=exec", "--probe=write", "--probe-arg=/workspace/ran"};
  CHECK_THROWS_WITH_AS(spawner.spawn(request),
                       doctest::Contains("cgroup limits: cannot move the worker into its cgroup"),
                       spawn::SandboxUnavailable);
  usleep(200 * 1000);
  CHECK(access(ran.c_str(), F_OK) != 0);
  // Control: the same request with a writable cgroup.procs runs and writes the file.
  tree.unwritable = false;
  auto worker = spawner.spawn(request);
  CHECK(spawn::waitForExit(worker).describe() == "exited with status 0");
  CHECK(access(ran.c_str(), F_OK) == 0);
}

}  // namespace chitin::testing
