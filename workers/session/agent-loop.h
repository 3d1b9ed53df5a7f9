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

class SessionWorkerImpl final : public rpc::SessionWorker::Server {
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

  bool busy_ = false;
  kj::Timer* timer_;
  std::function<void()> giveBack_;
  kj::Maybe<kj::Promise<void>> trim_;  // pending: cancelled by the next turn
};

}  // namespace chitin
