// SPDX-License-Identifier: Apache-2.0
// The agent loop: prompt in, model call, tool calls, repeat until the model answers.
// Runs in: worker (sandboxed)
//
// Everything this loop can do arrives as the two capabilities of the turn, `Model` and `Tools`,
// which the supervisor owns and revokes when the turn ends. The loop holds no secret, opens no
// file and no socket; the supervisor records the transcript from what it proxies.

#pragma once

#include <kj/timer.h>

#include <functional>
#include <string>
#include <vector>

#include "session.capnp.h"
#include "worker-main.h"

namespace chitin {

struct ContextFileText {
  std::string name;
  std::string content;
};

// The system prompt the model sees: the configured prompt, then each workspace file under its
// own heading (OpenClaw's "Project Context" layout).
std::string composeSystemPrompt(const std::string& base, const std::vector<ContextFileText>& files);

class SessionWorkerImpl final : public rpc::SessionWorker::Server,
                                private kj::TaskSet::ErrorHandler {
 public:
  // With a timer, what the worker keeps and need not goes back (`giveBack`; the worker's main
  // passes WorkerContext::idle, which has runWorker do it from its shallower frame) once the
  // session has been idle for TRIM_AFTER_IDLE; without one, after every turn.
  explicit SessionWorkerImpl(kj::Timer* timer = nullptr,
                             std::function<void()> giveBack = giveBackIdleMemory)
      : timer_(timer), giveBack_(std::move(giveBack)) {}

  static constexpr kj::Duration TRIM_AFTER_IDLE = 2 * kj::SECONDS;

 protected:
  kj::Promise<void> runTurn(RunTurnContext context) override;

 private:
  void trimWhenIdle();
  void taskFailed(kj::Exception&& exception) override;

  bool busy_ = false;
  kj::Timer* timer_;
  std::function<void()> giveBack_;
  // The pending trim, cancelled by the next turn. A task, not a promise held here: it is made at
  // the end of a turn, when the turn's chunks still fill the heap, and a resolved promise kept
  // here would pin the heap's top page for the whole idle spell; a task is freed once it is done.
  kj::Canceler trimCanceler_;
  kj::TaskSet trims_{*this};
};

}  // namespace chitin
