// SPDX-License-Identifier: Apache-2.0
// Tests for the agent loop, with in-process Model and Tools capabilities standing in for the
// supervisor.
// Runs in: test

#include "agent-loop.h"
#include "worker-main.h"

#include <capnp/capability.h>
#include <doctest/doctest.h>
#include <kj/timer.h>
#include <kj/async.h>
#include <kj/debug.h>
#include <malloc.h>
#include <sys/mman.h>

#include <string>
#include <vector>

namespace chitin {
namespace {

// Answers each complete() with the next scripted reply and remembers what it was sent.
class ScriptedModel final : public rpc::Model::Server {
 public:
  struct Reply {
    std::string text;
    std::vector<std::pair<std::string, std::string>> calls;  // name, arguments
    std::string failure;
  };
  std::vector<Reply> script;
  std::vector<std::string> systems;
  std::vector<size_t> messageCounts;
  std::vector<std::string> lastContents;

 protected:
  kj::Promise<void> complete(CompleteContext context) override {
    auto req = context.getParams().getRequest();
    systems.push_back(req.getSystem());
    messageCounts.push_back(req.getMessages().size());
    auto msgs = req.getMessages();
    lastContents.push_back(msgs.size() ? std::string(msgs[msgs.size() - 1].getContent()) : "");
    size_t i = systems.size() - 1;
    REQUIRE(i < script.size());
    auto& r = script[i];
    auto completion = context.getResults().initCompletion();
    if (!r.failure.empty()) {
      auto f = completion.initFailed();
      f.setKind(rpc::ModelFailure::Kind::SERVER_ERROR);
      f.setMessage(r.failure);
      return kj::READY_NOW;
    }
    auto m = completion.initMessage();
    m.setRole(rpc::Role::ASSISTANT);
    m.setContent(r.text);
    auto calls = m.initToolCalls(r.calls.size());
    for (size_t j = 0; j < r.calls.size(); ++j) {
      calls[j].setId("call_" + std::to_string(i) + "_" + std::to_string(j));
      calls[j].setName(r.calls[j].first);
      calls[j].setArgumentsJson(r.calls[j].second);
    }
    return kj::READY_NOW;
  }
};

class RecordingTools final : public rpc::Tools::Server {
 public:
  std::vector<std::string> calls;

 protected:
  kj::Promise<void> call(CallContext context) override {
    auto c = context.getParams().getCall();
    calls.push_back(std::string(c.getName()) + " " + c.getArgumentsJson().cStr());
    auto r = context.getResults().initResult();
    r.setRole(rpc::Role::TOOL);
    r.setToolCallId(c.getId());
    r.setToolName(c.getName());
    r.setContent("result of " + std::string(c.getName()));
    return kj::READY_NOW;
  }
};

struct Harness {
  kj::EventLoop loop;
  kj::WaitScope ws{loop};
  ScriptedModel* model;
  RecordingTools* tools;
  rpc::Model::Client modelCap;
  rpc::Tools::Client toolsCap;
  rpc::SessionWorker::Client worker = kj::heap<SessionWorkerImpl>();

  Harness() : modelCap(nullptr), toolsCap(nullptr) {
    auto m = kj::heap<ScriptedModel>();
    model = m.get();
    modelCap = kj::mv(m);
    auto t = kj::heap<RecordingTools>();
    tools = t.get();
    toolsCap = kj::mv(t);
  }

  capnp::Response<rpc::SessionWorker::RunTurnResults> run(const char* text, uint32_t maxSteps = 8) {
    auto req = worker.runTurnRequest();
    auto r = req.initRequest();
    r.setSystemPrompt("base prompt");
    r.setUserText(text);
    r.setMaxSteps(maxSteps);
    auto files = r.initContextFiles(1);
    files[0].setName("AGENTS.md");
    files[0].setContent("be nice");
    auto history = r.initHistory(2);
    history[0].setRole(rpc::Role::USER);
    history[0].setContent("earlier question");
    history[1].setRole(rpc::Role::ASSISTANT);
    history[1].setContent("earlier answer");
    req.setModel(modelCap);
    req.setTools(toolsCap);
    return req.send().wait(ws);
  }
};

TEST_CASE("agent loop: a plain answer ends the turn after one model call") {
  Harness h;
  h.model->script = {{"hello there", {}, ""}};
  auto response = h.run("hi");
  auto outcome = response.getOutcome();
  REQUIRE(outcome.isAnswered());
  CHECK(std::string(outcome.getAnswered()) == "hello there");
  CHECK(outcome.getSteps() == 1);
  CHECK(h.model->messageCounts[0] == 3);  // history (2) + the user message
  CHECK(h.model->lastContents[0] == "hi");
  CHECK(h.model->systems[0].find("base prompt") == 0);
  CHECK(h.model->systems[0].find("## AGENTS.md\n\nbe nice") != std::string::npos);
  CHECK(h.tools->calls.empty());
}

TEST_CASE("agent loop: tool calls run in order and their results go back to the model") {
  Harness h;
  h.model->script = {
      {"", {{"write", R"({"path":"a"})"}, {"exec", R"({"command":"cat a"})"}}, ""},
      {"", {{"read", R"({"path":"a"})"}}, ""},
      {"all done", {}, ""},
  };
  auto response = h.run("do things");  // keep the message alive while reading it
  auto outcome = response.getOutcome();
  REQUIRE(outcome.isAnswered());
  CHECK(std::string(outcome.getAnswered()) == "all done");
  CHECK(outcome.getSteps() == 3);
  REQUIRE(h.tools->calls.size() == 3);
  CHECK(h.tools->calls[0] == R"(write {"path":"a"})");
  CHECK(h.tools->calls[1] == R"(exec {"command":"cat a"})");
  CHECK(h.tools->calls[2] == R"(read {"path":"a"})");
  // Second call: history 2 + user + assistant(2 calls) + 2 tool results.
  CHECK(h.model->messageCounts[1] == 6);
  CHECK(h.model->lastContents[1] == "result of exec");
  CHECK(h.model->messageCounts[2] == 8);
}

TEST_CASE("agent loop: a failed model call fails the turn with the model's message") {
  Harness h;
  h.model->script = {{"", {}, "upstream said 500"}};
  auto response = h.run("hi");
  auto outcome = response.getOutcome();
  REQUIRE(outcome.isFailed());
  CHECK(std::string(outcome.getFailed()).find("upstream said 500") != std::string::npos);
}

TEST_CASE("agent loop: the step limit stops a model that never answers") {
  Harness h;
  for (int i = 0; i < 5; ++i)
    h.model->script.push_back({"", {{"exec", R"({"command":"true"})"}}, ""});
  auto response = h.run("loop forever", 3);
  auto outcome = response.getOutcome();
  REQUIRE(outcome.isFailed());
  CHECK(std::string(outcome.getFailed()).find("3 model calls") != std::string::npos);
  CHECK(h.tools->calls.size() == 3);
}

TEST_CASE("agent loop: the heap goes back once the session has been idle, not after each turn") {
  Harness h;
  kj::TimerImpl timer(kj::origin<kj::TimePoint>());
  int trims = 0;
  h.worker = kj::heap<SessionWorkerImpl>(&timer, [&]() { ++trims; });
  h.model->script = {{"one", {}, ""}, {"two", {}, ""}};
  auto advance = [&](kj::Duration by) {
    timer.advanceTo(timer.now() + by);
    h.ws.poll();
  };

  h.run("first");
  CHECK(trims == 0);  // not at once: the next turn would fault the pages back in
  advance(SessionWorkerImpl::TRIM_AFTER_IDLE - 500 * kj::MILLISECONDS);
  CHECK(trims == 0);
  h.run("second");  // a turn before the idle time is up: the pending trim is dropped
  advance(SessionWorkerImpl::TRIM_AFTER_IDLE - 500 * kj::MILLISECONDS);
  CHECK(trims == 0);
  advance(kj::SECONDS);  // idle long enough since the second turn
  CHECK(trims == 1);
  advance(10 * kj::SECONDS);
  CHECK(trims == 1);  // once per idle spell
}

// The bytes this process has allocated and not freed: the sanitizer's count in a sanitizer build,
// glibc's (mallinfo2) in another, when glibc's per-thread cache is off (meson's environment for
// this test: a chunk freed into the cache still counts as in use). Null when neither counts.
#if defined(__SANITIZE_ADDRESS__)
#define CHITIN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CHITIN_ASAN 1
#endif
#endif
#ifdef CHITIN_ASAN
extern "C" size_t __sanitizer_get_current_allocated_bytes();
kj::Maybe<size_t> liveHeapBytes() { return __sanitizer_get_current_allocated_bytes(); }
#else
kj::Maybe<size_t> liveHeapBytes() {
  size_t before = mallinfo2().uordblks;
  void* volatile block = ::malloc(64);  // volatile: neither call is elided
  ::free(block);
  if (mallinfo2().uordblks != before) return nullptr;  // the freed chunk still counted: cached
  return mallinfo2().uordblks;
}
#endif

TEST_CASE("agent loop: once the idle trim has run, the worker keeps nothing of it") {
  // What is made for the trim at a turn's end is made when the turn's chunks still fill the
  // heap, high up: kept through the idle spell, it pinned the heap's top page of every idle
  // session worker (a thousand of them: 4 MiB). So a worker that has run a turn and its trim
  // frees, going, no more than a new worker takes.
  Harness h;
  kj::TimerImpl timer(kj::origin<kj::TimePoint>());
  int trims = 0;
  auto make = [&]() {
    return rpc::SessionWorker::Client(kj::heap<SessionWorkerImpl>(&timer, [&]() { ++trims; }));
  };
  auto idleTimeOver = [&]() {
    timer.advanceTo(timer.now() + SessionWorkerImpl::TRIM_AFTER_IDLE + kj::SECONDS);
    h.ws.poll();
  };
  h.model->script = {{"one", {}, ""}, {"two", {}, ""}};
  h.worker = make();
  h.run("warm-up");  // what the loop makes once, the first time, exists from here on
  idleTimeOver();
  h.worker = make();
  h.run("first");
  idleTimeOver();
  REQUIRE(trims == 2);
  KJ_IF_MAYBE (idle, liveHeapBytes()) {
    h.worker = make();  // the new worker is made before the idle one goes
    h.ws.poll();
    size_t after = KJ_ASSERT_NONNULL(liveHeapBytes());
    INFO("the idle worker freed ", static_cast<long>(*idle) - static_cast<long>(after),
         " bytes more than its successor took");
    CHECK(after == *idle);
  } else {
    MESSAGE("skipped: this process's heap is not countable (glibc's per-thread cache is on)");
  }
}

TEST_CASE("agent loop: without a timer the heap goes back after every turn") {
  Harness h;
  int trims = 0;
  h.worker = kj::heap<SessionWorkerImpl>(nullptr, [&]() { ++trims; });
  h.model->script = {{"one", {}, ""}};
  h.run("first");
  CHECK(trims == 1);
}

namespace {

// Writes `depth` bytes of stack below the caller's frame, then returns (the pages stay resident).
__attribute__((noinline)) void touchStack(size_t depth) {
  volatile char block[16 * 1024];
  for (size_t i = 0; i < sizeof(block); i += 512) block[i] = 1;
  if (depth > sizeof(block)) touchStack(depth - sizeof(block));
  block[0] = 2;  // not a tail call: each level keeps its frame
}

bool resident(uintptr_t address) {
  unsigned char in = 0;
  REQUIRE(mincore(reinterpret_cast<void*>(address & ~uintptr_t(4095)), 4096, &in) == 0);
  return (in & 1) != 0;
}

}  // namespace

TEST_CASE("agent loop: the stack below the idle frame goes back with the heap") {
  uintptr_t here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  touchStack(128 * 1024);
  uintptr_t deep = here - 96 * 1024;  // written by touchStack, dead once it returned
  if (!resident(deep)) {
    // A sanitizer's fake stacks keep those frames elsewhere: nothing to give back here.
    MESSAGE("touchStack's frames are not on this stack; skipped");
    return;
  }
  releaseDeadStack();
  CHECK_FALSE(resident(deep));
  // The frames still live (this test's own) keep their pages.
  CHECK(resident(here));
}

TEST_CASE("agent loop: system prompt without context files is the base prompt") {
  CHECK(composeSystemPrompt("base", {}) == "base");
  auto s = composeSystemPrompt("base", {{"SOUL.md", "calm"}, {"USER.md", "Ada\n"}});
  CHECK(s.find("## SOUL.md\n\ncalm\n") != std::string::npos);
  CHECK(s.find("## USER.md\n\nAda\n") != std::string::npos);
  CHECK(s.find("SOUL.md") < s.find("USER.md"));
}

}  // namespace
}  // namespace chitin
