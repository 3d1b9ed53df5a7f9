// SPDX-License-Identifier: Apache-2.0
// Warm spare sandboxes (supervisor/core/spare-sandboxes.h) with real exec workers from the
// shipped profile: a session's next call takes the sandbox built for it and still gets a fresh
// one of its own; no other session ever gets it; a hidden directory replaced after the spare was
// built is not left uncovered; spares are bounded in number and in time.
// Runs in: tests (real sandboxes, driven by the supervisor's own classes on a libuv loop)

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <memory>

#include "probe-runner.h"
#include "spare-sandboxes.h"
#include "tool-runner.h"
#include "uv-kj-bridge.h"
#include "test-text.h"

namespace chitin::testing {

namespace {

// A call's scope as the guard gives it: only the session key is asked for here.
class Scope final : public CallScope {
 public:
  explicit Scope(std::string session) : session_(std::move(session)) {}
  const std::string& sessionKey() const override { return session_; }
  std::string decideHost(const std::string&, const std::string&, Initiator) override {
    return "not in this test";
  }
  std::string decideConnection(const std::string&, const std::string&, uint16_t) override {
    return "not in this test";
  }
  ConnectionDecider decideConnectionsAfterwards() override {
    return [](const std::string&, const std::string&, uint16_t) { return "not in this test"; };
  }

 private:
  std::string session_;
};

// The supervisor's tool path with spares, on a loop of its own.
struct Rig {
  uv_loop_t loop;
  kj::AsyncIoContext io = kj::setupAsyncIo();
  std::unique_ptr<UvKjBridge> bridge;
  spawn::SystemSpawnOs os;
  std::unique_ptr<spawn::Spawner> spawner;
  std::unique_ptr<SpareSandboxes> spares;
  std::unique_ptr<ToolRunner> runner;

  explicit Rig(SpareSettings settings) {
    REQUIRE(uv_loop_init(&loop) == 0);
    bridge = std::make_unique<UvKjBridge>(&loop, io);
    spawner = std::make_unique<spawn::Spawner>(testSpawner().settings(), os);
    spares = std::make_unique<SpareSandboxes>(&loop, io, *spawner, settings);
    runner = std::make_unique<ToolRunner>(&loop, io, *spawner, ToolRunnerSettings{}, spares.get());
  }
  ~Rig() {
    runner.reset();
    spares.reset();
    bridge->close();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }

  // Turns the loop until `done` or `seconds` pass; whether it was done.
  bool until(const std::function<bool()>& done, double seconds = 30) {
    double deadline = monotonicSeconds() + seconds;
    while (!done()) {
      if (monotonicSeconds() > deadline) return false;
      bridge->pump();
      uv_run(&loop, UV_RUN_NOWAIT);
      usleep(1000);
    }
    return true;
  }

  ToolOutcome exec(const std::string& session, const std::string& command,
                   const std::string& workspace, const std::vector<std::string>& hide = {}) {
    Scope scope(session);
    ToolOutcome outcome;
    bool done = false;
    std::string args = "{\"command\": \"" + command + "\", \"timeoutSeconds\": 30}";
    auto task = runner->run("exec", args, workspace, hide, &scope)
                    .then([&](ToolOutcome result) {
                      outcome = result;
                      done = true;
                    })
                    .eagerlyEvaluate(nullptr);
    REQUIRE_MESSAGE(until([&] { return done; }, 60), "exec did not end: ", command);
    return outcome;
  }

  // Turns the loop until a spare waits for each of `sessions` calls so far (built after a call).
  bool sparesWaiting(uint64_t n) {
    return until([&] { return spares->stats().waiting == n; });
  }
};

}  // namespace

TEST_CASE("spares: a session's next call takes the sandbox built for it, fresh all the same") {
  TempDir workspace("chitin-ws");
  Rig rig({8, 600});
  auto first = rig.exec("s1", "echo inside > /tmp/mark && echo kept > /workspace/kept && cat /tmp/mark",
                        workspace.path());
  REQUIRE(first.status == ToolOutcome::Status::OK);
  CHECK(has(first.content, "inside"));
  CHECK(rig.spares->stats().taken == 0);  // the first call had none
  REQUIRE(rig.sparesWaiting(1));
  CHECK(rig.spares->stats().built == 1);

  auto second = rig.exec("s1", "cat /workspace/kept; cat /tmp/mark; echo status=$?", workspace.path());
  CHECK(rig.spares->stats().taken == 1);
  // The workspace is the live one (the spare binds it, it was not copied when built)...
  CHECK(has(second.content, "kept"));
  // ...and /tmp is the spare's own: nothing of the call before it.
  CHECK(has(second.content, "No such file or directory"));
  CHECK(has(second.content, "status=1"));
  // Each call's sandbox served that call only: the next spare is a new one.
  REQUIRE(rig.sparesWaiting(1));
  CHECK(rig.spares->stats().built == 2);
}

TEST_CASE("spares: a session never gets another session's spare") {
  TempDir workspace("chitin-ws");
  Rig rig({8, 600});
  REQUIRE(rig.exec("alice", "true", workspace.path()).status == ToolOutcome::Status::OK);
  REQUIRE(rig.sparesWaiting(1));
  REQUIRE(rig.exec("bob", "true", workspace.path()).status == ToolOutcome::Status::OK);
  CHECK(rig.spares->stats().taken == 0);  // bob's call spawned its own
  REQUIRE(rig.sparesWaiting(2));          // alice's still waits; bob has his now
  // Another request of the same session (a directory hidden now) does not take it either.
  mkdir((workspace.path() + "/downloads").c_str(), 0755);
  REQUIRE(rig.exec("alice", "true", workspace.path(), {"downloads"}).status ==
          ToolOutcome::Status::OK);
  CHECK(rig.spares->stats().taken == 0);
  // Its context reset, a session's spares go.
  REQUIRE(rig.sparesWaiting(3));
  rig.runner->sessionEnded("alice");
  CHECK(rig.spares->stats().waiting == 1);
  REQUIRE(rig.exec("bob", "true", workspace.path()).status == ToolOutcome::Status::OK);
  CHECK(rig.spares->stats().taken == 1);
}

TEST_CASE("spares: a hidden directory replaced after the spare was built stays hidden") {
  TempDir workspace("chitin-ws");
  mkdir((workspace.path() + "/downloads").c_str(), 0755);
  workspace.file("downloads/page.html", "first page");
  Rig rig({8, 600});
  auto first = rig.exec("s1", "echo count=$(ls -A /workspace/downloads | wc -l)", workspace.path(),
                        {"downloads"});
  REQUIRE(first.status == ToolOutcome::Status::OK);
  CHECK(has(first.content, "count=0"));  // covered: page.html is there on the host
  REQUIRE(rig.sparesWaiting(1));
  // Meanwhile (another session's command, say) the directory is renamed away and another put in
  // its place. The spare's cover was mounted on the old one and went with it.
  REQUIRE(rename((workspace.path() + "/downloads").c_str(), (workspace.path() + "/old").c_str()) ==
          0);
  mkdir((workspace.path() + "/downloads").c_str(), 0755);
  workspace.file("downloads/new.html", "untrusted words");
  auto second = rig.exec("s1", "cat /workspace/downloads/new.html; echo status=$?", workspace.path(),
                         {"downloads"});
  CHECK(rig.spares->stats().changed == 1);
  CHECK(rig.spares->stats().taken == 0);
  CHECK(!has(second.content, "untrusted words"));
  CHECK(has(second.content, "status=1"));
  // The directory it was renamed to is not hidden (it is not in the call's list): a fresh
  // sandbox shows it, as it would have without spares.
  auto third = rig.exec("s1", "cat /workspace/old/page.html", workspace.path(), {"downloads"});
  CHECK(has(third.content, "first page"));
}

TEST_CASE("spares: at most maxSpares wait, and each for idleSeconds at most") {
  TempDir workspace("chitin-ws");
  {
    Rig rig({1, 600});
    REQUIRE(rig.exec("a", "true", workspace.path()).status == ToolOutcome::Status::OK);
    REQUIRE(rig.sparesWaiting(1));
    REQUIRE(rig.exec("b", "true", workspace.path()).status == ToolOutcome::Status::OK);
    REQUIRE(rig.until([&] { return rig.spares->stats().evicted == 1; }));
    CHECK(rig.spares->stats().waiting == 1);  // b's; a's was killed to make room
    REQUIRE(rig.exec("a", "true", workspace.path()).status == ToolOutcome::Status::OK);
    CHECK(rig.spares->stats().taken == 0);
  }
  {
    Rig rig({8, 1});
    REQUIRE(rig.exec("a", "true", workspace.path()).status == ToolOutcome::Status::OK);
    REQUIRE(rig.sparesWaiting(1));
    REQUIRE(rig.until([&] { return rig.spares->stats().expired == 1; }, 10));
    CHECK(rig.spares->stats().waiting == 0);
    REQUIRE(rig.exec("a", "true", workspace.path()).status == ToolOutcome::Status::OK);
    CHECK(rig.spares->stats().taken == 0);
  }
  {
    Rig rig({0, 600});  // spare_sandboxes: 0
    REQUIRE(rig.exec("a", "true", workspace.path()).status == ToolOutcome::Status::OK);
    REQUIRE(rig.exec("a", "true", workspace.path()).status == ToolOutcome::Status::OK);
    CHECK(rig.spares->stats().built == 0);
  }
}

TEST_CASE("spares: shutdown kills the waiting spares and leaves nothing holding the loop") {
  // The gateway's SIGTERM path: once the turns and the connections are gone, the loop must end.
  // A spare (its worker's process and pipe handles) or the pool's sweep timer still running
  // would keep it turning until the spare expired.
  TempDir workspace("chitin-ws");
  Rig rig({8, 600});
  REQUIRE(rig.exec("a", "true", workspace.path()).status == ToolOutcome::Status::OK);
  REQUIRE(rig.sparesWaiting(1));
  rig.runner.reset();
  rig.bridge->close();

  rig.spares->shutdown();
  CHECK(rig.spares->stats().waiting == 0);
  CHECK(rig.spares->stats().expired == 1);
  // Bounded: a watchdog of its own stops the loop if something still holds it.
  uv_timer_t watchdog;
  bool held = false;
  REQUIRE(uv_timer_init(&rig.loop, &watchdog) == 0);
  watchdog.data = &held;
  uv_timer_start(
      &watchdog,
      [](uv_timer_t* t) {
        *static_cast<bool*>(t->data) = true;
        uv_stop(t->loop);
      },
      20000, 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&watchdog));  // it alone does not keep the loop
  uv_run(&rig.loop, UV_RUN_DEFAULT);
  CHECK_FALSE(held);
  uv_close(reinterpret_cast<uv_handle_t*>(&watchdog), nullptr);
  uv_run(&rig.loop, UV_RUN_NOWAIT);  // the close completes while `watchdog` is in scope

  // Nothing is built after it, even when a call ends then.
  spawn::SpawnRequest request;
  request.profile = "exec";
  rig.spares->prepare("a", request, "exec", {});
  uv_run(&rig.loop, UV_RUN_NOWAIT);
  CHECK(rig.spares->stats().built == 1);
  CHECK(rig.spares->stats().waiting == 0);
}

TEST_CASE("spares: a worker that can write the workspace is gone before its result goes on") {
  // The runner ends a worker that cannot write to the host a little after its result (the
  // teardown is not the call's wait); one that can must be gone first, or what it left running
  // would change the workspace behind the comparison that records what the call changed.
  TempDir workspace("chitin-ws");
  Rig rig({8, 600});
  Scope scope("writer");
  std::string late = workspace.path() + "/late";
  auto sizeOf = [](const std::string& path) -> long {
    struct stat st;
    return stat(path.c_str(), &st) == 0 ? static_cast<long>(st.st_size) : -1;
  };
  long atResult = -2;
  bool done = false;
  // A writer left running in the background (a session of its own, so the exec worker's end
  // of the command's process group does not reach it), appending as fast as it can; the
  // command waits until it has written, so it is surely running when the result is sent.
  std::string args =
      "{\"command\": \"setsid sh -c 'while :; do echo x >> /workspace/late; done' "
      ">/dev/null 2>&1 & "
      "while [ ! -s /workspace/late ]; do :; done; echo started\", \"timeoutSeconds\": 30}";
  auto task = rig.runner->run("exec", args, workspace.path(), {}, &scope)
                  .then([&](ToolOutcome result) {
                    CHECK(has(result.content, "started"));
                    atResult = sizeOf(late);
                    done = true;
                  })
                  .eagerlyEvaluate(nullptr);
  REQUIRE(rig.until([&] { return done; }, 60));
  REQUIRE(atResult > 0);
  rig.until([] { return false; }, 0.3);
  // At most the one append that was under way when the sandbox was killed.
  CHECK(sizeOf(late) - atResult <= 2);
}

}  // namespace chitin::testing
