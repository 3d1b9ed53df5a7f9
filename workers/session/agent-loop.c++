// SPDX-License-Identifier: Apache-2.0
// The agent loop (see agent-loop.h).
// Runs in: worker (sandboxed)

#include "agent-loop.h"

#include <capnp/message.h>
#include <kj/debug.h>

namespace chitin {

namespace {

struct Message {
  rpc::Role role;
  std::string content;
  struct Call {
    std::string id, name, arguments;
  };
  std::vector<Call> calls;
  std::string toolCallId;
  std::string toolName;
  bool isError = false;

  static Message from(rpc::ChatMessage::Reader m) {
    Message out{m.getRole(),       m.getContent(),  {},
                m.getToolCallId(), m.getToolName(), m.getIsError()};
    for (auto c : m.getToolCalls())
      out.calls.push_back({c.getId(), c.getName(), c.getArgumentsJson()});
    return out;
  }

  void to(rpc::ChatMessage::Builder b) const {
    b.setRole(role);
    b.setContent(content);
    auto list = b.initToolCalls(calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
      list[i].setId(calls[i].id);
      list[i].setName(calls[i].name);
      list[i].setArgumentsJson(calls[i].arguments);
    }
    b.setToolCallId(toolCallId);
    b.setToolName(toolName);
    b.setIsError(isError);
  }
};

// One turn's state; lives until the turn's promise settles.
struct Turn {
  rpc::Model::Client model;
  rpc::Tools::Client tools;
  std::string system;
  std::vector<Message> messages;
  uint32_t maxSteps;
  uint32_t steps = 0;
};

struct Outcome {
  bool answered;
  std::string text;
};

// Calls run one after another, in the order the model listed them: later calls may depend on
// earlier effects (write, then exec).
kj::Promise<void> runCalls(Turn& turn, std::vector<Message::Call> calls, size_t i) {
  if (i == calls.size()) return kj::READY_NOW;
  auto req = turn.tools.callRequest();
  auto c = req.initCall();
  c.setId(calls[i].id);
  c.setName(calls[i].name);
  c.setArgumentsJson(calls[i].arguments);
  return req.send().then([&turn, calls = kj::mv(calls), i](auto&& response) mutable {
    turn.messages.push_back(Message::from(response.getResult()));
    return runCalls(turn, kj::mv(calls), i + 1);
  });
}

kj::Promise<Outcome> step(Turn& turn) {
  if (turn.steps >= turn.maxSteps) {
    return Outcome{false, "stopped after " + std::to_string(turn.maxSteps) +
                              " model calls without a final answer (agent.max_steps)"};
  }
  ++turn.steps;
  auto req = turn.model.completeRequest();
  auto r = req.initRequest();
  r.setSystem(turn.system);
  auto list = r.initMessages(turn.messages.size());
  for (size_t i = 0; i < turn.messages.size(); ++i) turn.messages[i].to(list[i]);
  return req.send().then(
      [&turn](capnp::Response<rpc::Model::CompleteResults>&& response) -> kj::Promise<Outcome> {
        auto completion = response.getCompletion();
        if (completion.isFailed()) {
          auto f = completion.getFailed();
          return Outcome{false, std::string("the model call failed: ") + f.getMessage().cStr()};
        }
        Message reply = Message::from(completion.getMessage());
        reply.role = rpc::Role::ASSISTANT;
        auto calls = reply.calls;
        turn.messages.push_back(kj::mv(reply));
        if (calls.empty()) return Outcome{true, turn.messages.back().content};
        return runCalls(turn, kj::mv(calls), 0).then([&turn]() { return step(turn); });
      });
}

}  // namespace

std::string composeSystemPrompt(const std::string& base,
                                const std::vector<ContextFileText>& files) {
  std::string out = base;
  if (!files.empty()) {
    out +=
        "\n\n# Project Context\n\nThe following files from your workspace are loaded as "
        "context. They are written by the owner and by you; follow them unless they conflict "
        "with safety.\n";
    for (auto& f : files) {
      out += "\n## " + f.name + "\n\n" + f.content;
      if (!f.content.empty() && f.content.back() != '\n') out += '\n';
    }
  }
  return out;
}

kj::Promise<void> SessionWorkerImpl::runTurn(RunTurnContext context) {
  KJ_REQUIRE(!busy_, "runTurn called while a turn is running");
  trimCanceler_.cancel("a turn began");
  context.allowCancellation();  // an aborted turn stops here, not at its next model call
  busy_ = true;
  auto params = context.getParams();
  auto request = params.getRequest();

  auto turn = kj::heap<Turn>(Turn{params.getModel(),
                                  params.getTools(),
                                  {},
                                  {},
                                  request.getMaxSteps() ? request.getMaxSteps() : 16u});
  std::vector<ContextFileText> files;
  for (auto f : request.getContextFiles()) files.push_back({f.getName(), f.getContent()});
  turn->system = composeSystemPrompt(request.getSystemPrompt(), files);
  for (auto m : request.getHistory()) turn->messages.push_back(Message::from(m));
  turn->messages.push_back(Message{rpc::Role::USER, request.getUserText(), {}, "", "", false});

  auto& t = *turn;
  return step(t)
      .then([this, context, &t](Outcome outcome) mutable {
        auto out = context.getResults().initOutcome();
        out.setSteps(t.steps);
        if (outcome.answered) {
          out.setAnswered(outcome.text);
        } else {
          out.setFailed(outcome.text);
        }
        busy_ = false;
      })
      .attach(kj::defer([this]() {
                busy_ = false;
                trimWhenIdle();
              }),
              kj::mv(turn));
}

void SessionWorkerImpl::trimWhenIdle() {
  // The turn's history, prompt and replies are freed by now; an idle session worker should not
  // keep their pages (1,000 idle sessions each hold one). Not at once in a conversation: the
  // next turn would fault the same pages back in (perf: a tenth of the worker's time per turn).
  if (timer_ == nullptr) {
    giveBack_();
    return;
  }
  trims_.add(
      trimCanceler_.wrap(timer_->afterDelay(TRIM_AFTER_IDLE)).then([this]() { giveBack_(); }));
}

void SessionWorkerImpl::taskFailed(kj::Exception&& exception) {
  // A trim cancelled by a turn; giveBack_ itself does not throw. Nothing to report either way:
  // what was not given back now will be at the end of the next turn.
  (void)exception;
}

}  // namespace chitin
