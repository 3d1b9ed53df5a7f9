// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about the bytes a tool worker may send per call: the supervisor (ToolRunner)
// stops a worker that streams past the call's cap, and the real exec worker never does.
// Runs in: tests (real sandboxes, driven by the supervisor's own ToolRunner on a libuv loop)

#include <doctest/doctest.h>
#include <time.h>
#include <unistd.h>

#include "probe-runner.h"
#include "tool-runner.h"
#include "uv-kj-bridge.h"

namespace chitin::testing {

namespace {

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

// One exec call through ToolRunner, with the workers of `workerDir`.
ToolOutcome runExec(const std::string& workerDir, const std::string& command,
                    const std::string& workspace) {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  ToolOutcome outcome;
  {
    auto io = kj::setupAsyncIo();
    UvKjBridge bridge(&loop, io);
    spawn::SystemSpawnOs os;
    auto settings = testSpawner().settings();
    settings.workerDir = workerDir;
    spawn::Spawner spawner(settings, os);
    ToolRunnerSettings toolSettings;
    toolSettings.maxOutputBytes = 65536;
    ToolRunner runner(&loop, io, spawner, toolSettings);
    bool done = false;
    auto task =
        runner.run("exec", "{\"command\": \"" + command + "\", \"timeoutSeconds\": 60}", workspace)
            .then([&](ToolOutcome result) {
              outcome = result;
              done = true;
            })
            .eagerlyEvaluate(nullptr);
    double deadline = now() + 60;
    while (!done && now() < deadline) {
      bridge.pump();
      uv_run(&loop, UV_RUN_NOWAIT);
      usleep(1000);
    }
    if (!done) {
      // Not stopped within a minute: cancel the call (which kills the worker) and say so.
      task = nullptr;
      outcome.content = "<the call did not end within 60 s>";
    }
    bridge.close();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  return outcome;
}

}  // namespace

TEST_CASE("tool runner: a worker streaming past the call's cap is killed, and the model is told") {
  TempDir workspace("chitin-ws"), workers("chitin-workers");
  REQUIRE(symlink(getenv("CHITIN_HOSTILE_TOOL_WORKER"),
                  (workers.path() + "/chitin-worker-exec").c_str()) == 0);
  double start = now();
  auto outcome = runExec(workers.path(), "anything", workspace.path());
  double elapsed = now() - start;
  CHECK(outcome.status == ToolOutcome::Status::ERROR);
  CHECK(outcome.content ==
        "error: the exec tool was stopped: its worker sent more than 65536 bytes of live output "
        "(the cap for one call)");
  CHECK(elapsed < 10);
  MESSAGE("a flooding worker was stopped after ", elapsed, " s");
  unlink((workers.path() + "/chitin-worker-exec").c_str());
}

TEST_CASE("tool runner: the real exec worker's runaway output is cut and the command killed") {
  TempDir workspace("chitin-ws");
  double start = now();
  auto outcome = runExec(testSpawner().settings().workerDir, "cat /dev/zero | tr \\\\\\\\0 z",
                         workspace.path());
  double elapsed = now() - start;
  // Control for the test above: an honest worker streams no more than the cap, so the
  // supervisor never stops it; the worker itself kills the runaway command.
  CHECK(outcome.status == ToolOutcome::Status::ERROR);
  CHECK(outcome.content.rfind(std::string(65536, 'z'), 0) == 0);
  CHECK(outcome.content.find("the command was killed: it wrote more than 64 MiB of output") !=
        std::string::npos);
  CHECK(elapsed < 30);
  MESSAGE("cat /dev/zero through the real exec worker ended after ", elapsed, " s");
}

}  // namespace chitin::testing
