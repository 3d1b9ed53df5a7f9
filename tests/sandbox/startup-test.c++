// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about worker start-up: limits are mandatory (fail closed), and each kind's
// lockdown keeps exactly what that worker needs (bash for exec, threads for model).
// Runs in: tests (probes run in real sandboxes, or directly for start-up checks)

#include <doctest/doctest.h>

#include <unistd.h>

#include <fstream>

#include "probe-runner.h"

namespace chitin::testing {

TEST_CASE("worker start-up: without valid limits a worker exits 70 before serving") {
  // Control: with valid limits the same start-up (RPC on fd 3, session lockdown) runs the probe.
  auto good = runDirect({GOOD_LIMITS, "--probe-kind=session", "--probe=noop"});
  CHECK(good.result == "ok");
  for (std::string limits : {
           std::string(""),                                                      // no flag at all
           std::string("--chitin-limits=as=1,nproc=2,nofile=3,cpu=4"),           // fsize missing
           std::string("--chitin-limits=as=1,nproc=2,nofile=3,cpu=4,fsize=0"),   // zero
           std::string("--chitin-limits=as=1,nproc=2,nofile=3,cpu=4,fsize=-5"),  // negative
           std::string("--chitin-limits=as=1,nproc=2,nofile=3,cpu=4,fsize=5,core=1"),  // unknown
       }) {
    CAPTURE(limits);
    std::vector<std::string> args{"--probe-kind=session", "--probe=noop"};
    if (!limits.empty()) args.insert(args.begin(), limits);
    auto bad = runDirect(args);
    CHECK(bad.result == "worker start-up failed with status 70");
    CHECK(bad.exit.exitCode == 70);
  }
}

TEST_CASE("worker start-up: an unknown worker kind has no lockdown and does not start") {
  auto bad = runDirect({GOOD_LIMITS, "--probe-kind=nonsense", "--probe=noop"});
  CHECK(bad.result == "worker start-up failed with status 70");
}

TEST_CASE("exec profile: bash runs a pipeline in the workspace under the exec lockdown") {
  TempDir workspace("chitin-ws");
  auto run = runProbe({"exec",
                       "exec",
                       "bash",
                       {"cd /workspace && echo hello > out.txt && tr a-z A-Z < out.txt > up.txt "
                        "&& : > count.txt && ls | wc -l > count.txt && test -t 0; test $? = 1"},
                       {{"WORKSPACE", workspace.path()}}});
  CHECK(run.result == "ok status=0");
  std::ifstream up(workspace.path() + "/up.txt"), count(workspace.path() + "/count.txt");
  std::string upper, files;
  std::getline(up, upper);
  std::getline(count, files);
  CHECK(upper == "HELLO");
  CHECK(files == "3");  // out.txt, up.txt and count.txt itself
}

TEST_CASE("model worker: threads work; session worker: creating a thread kills it (SIGSYS)") {
  UnixListener broker;
  ProbeSpec model{"model", "model", "thread"};
  model.egressSocket = broker.path();
  CHECK(runProbe(model).result == "ok");
  auto session = runProbe({"session", "session", "thread"});
  CHECK(session.exit.describe() == "killed by signal 31 (SIGSYS)");
}

TEST_CASE("session worker: an exception after lockdown does not kill it (libgcc_s preloaded)") {
  auto run = runProbe({"session", "session", "throw"});
  CHECK(run.result == "ok caught");
  CHECK(run.exit.describe() == "exited with status 0");
}

TEST_CASE("shipped workers: each starts under its own profile and exits 0 on hang-up") {
  TempDir workspace("chitin-ws");
  UnixListener broker;
  for (const char* profile : {"session", "model", "exec", "read", "write", "edit"}) {
    CAPTURE(profile);
    spawn::SpawnRequest request;
    request.profile = profile;
    request.vars = {{"WORKSPACE", workspace.path()}};
    if (std::string(profile) == "model") request.egressSocket = broker.path();
    auto worker = testSpawner().spawn(request);
    // Give it time to reach its lockdown and serve; then hang up like a supervisor would.
    usleep(200 * 1000);
    worker.socket = nullptr;
    CHECK(spawn::waitForExit(worker).describe() == "exited with status 0");
  }
}

}  // namespace chitin::testing
