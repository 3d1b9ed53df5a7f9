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
  // With a timer, the heap's free pages go back to the system (`giveBack`, malloc_trim) once the
  // session has been idle for TRIM_AFTER_IDLE; without one, after every turn.
  explicit SessionWorkerImpl(kj::Timer* timer = nullptr,
                             std::function<void()> giveBack = defaultGiveBack)
      : timer_(timer), giveBack_(std::move(giveBack)) {}

  static constexpr kj::Duration TRIM_AFTER_IDLE = 2 * kj::SECONDS;

  // malloc_trim, and releaseDeadStack() (worker-main.h) from here. The worker's main gives
  // WorkerContext::idle instead, which has runWorker do both from its shallower frame.
  static void defaultGiveBack();

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
