// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about what a worker's output may cost the supervisor: a tool worker that
// streams past its call's cap is stopped (ToolRunner), the real exec worker never is, and a
// worker's stdout/stderr reaches the log only through WorkerHost's capped, escaped reader.
// Runs in: tests (real sandboxes, driven by the supervisor's own classes on a libuv loop)

#include <doctest/doctest.h>
#include <time.h>
#include <unistd.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <sstream>

#include "probe-runner.h"
#include "tool-runner.h"
#include "uv-kj-bridge.h"
#include "worker-host.h"

namespace chitin::testing {

namespace {

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
    auto task = runner
                    .run("exec", "{\"command\": \"" + command + "\", \"timeoutSeconds\": 60}",
                         workspace, {})
                    .then([&](ToolOutcome result) {
                      outcome = result;
                      done = true;
                    })
                    .eagerlyEvaluate(nullptr);
    double deadline = monotonicSeconds() + 60;
    while (!done && monotonicSeconds() < deadline) {
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
  double start = monotonicSeconds();
  auto outcome = runExec(workers.path(), "anything", workspace.path());
  double elapsed = monotonicSeconds() - start;
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
  double start = monotonicSeconds();
  auto outcome = runExec(testSpawner().settings().workerDir, "cat /dev/zero | tr \\\\\\\\0 z",
                         workspace.path());
  double elapsed = monotonicSeconds() - start;
  // Control for the test above: an honest worker streams no more than the cap, so the
  // supervisor never stops it; the worker itself kills the runaway command.
  CHECK(outcome.status == ToolOutcome::Status::ERROR);
  CHECK(outcome.content.rfind(std::string(65536, 'z'), 0) == 0);
  CHECK(outcome.content.find("the command was killed: it wrote more than 64 MiB of output") !=
        std::string::npos);
  CHECK(elapsed < 30);
  MESSAGE("cat /dev/zero through the real exec worker ended after ", elapsed, " s");
}

TEST_CASE("worker host: a worker's stdout and stderr reach the log as escaped lines, labelled") {
  std::ostringstream captured;
  auto previous = spdlog::default_logger();
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "capture", std::make_shared<spdlog::sinks::ostream_sink_mt>(captured)));
  TempDir workspace("chitin-ws");
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  {
    auto io = kj::setupAsyncIo();
    UvKjBridge bridge(&loop, io);
    spawn::SpawnRequest request;  // no fds given: the worker's own pipe
    request.profile = "exec";
    request.vars = {{"WORKSPACE", workspace.path()}};
    request.workerOverride = getenv("CHITIN_PROBE");
    request.workerArgs = {"--probe-kind=exec", "--probe=stderr"};
    auto worker = testSpawner().spawn(request);
    REQUIRE(worker.output.get() >= 0);
    {
      WorkerHost host(&loop, io, kj::mv(worker), "probe worker w1");
      double deadline = monotonicSeconds() + 30;
      while (captured.str().find("result: ok") == std::string::npos &&
             monotonicSeconds() < deadline) {
        bridge.pump();
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
      }
    }
    bridge.close();
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_loop_close(&loop);
  spdlog::set_default_logger(previous);
  std::string log = captured.str();
  CHECK(log.find("probe worker w1: plain line") != std::string::npos);
  CHECK(log.find("probe worker w1: osc \\x1b]52;c;ZXZpbA==\\x07 end") != std::string::npos);
  CHECK(log.find("probe worker w1: result: ok") != std::string::npos);
  CHECK(log.find('\x1b') == std::string::npos);  // no raw escape reached the log
}

}  // namespace chitin::testing
