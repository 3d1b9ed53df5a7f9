// SPDX-License-Identifier: Apache-2.0
// The per-turn capabilities (see turn.h).
// Runs in: supervisor

#include "turn.h"

#include <capnp/message.h>
#include <kj/debug.h>

#include <algorithm>

#include "compaction.h"
#include "tool-runner.h"
#include "utf8.h"

namespace chitin {

namespace {

constexpr size_t MAX_SUMMARY_BYTES = 200;
constexpr size_t MAX_HISTORY_ENTRIES = 400;
// What a session worker may send the model in one call before we call it abuse.
constexpr size_t MAX_REQUEST_MESSAGES = 2000;
// Tool calls in one completion: far above what a model asks for at once, far below what a
// tiny message can claim (capnp counts a zero-size struct as one word, so 8 Mi of them fit).
constexpr size_t MAX_COMPLETION_TOOL_CALLS = 128;

// Streams the model's text to the run's client as `agent` events.
class TextForwarder final : public rpc::TextStream::Server {
 public:
  explicit TextForwarder(std::shared_ptr<Run> run) : run_(std::move(run)) {}

 protected:
  kj::Promise<void> delta(DeltaContext context) override {
    if (run_->revoked || run_->finished || run_->silent) return kj::READY_NOW;
    gateway::AgentEvent e;
    e.set_run_id(run_->id);
    e.set_session_key(run_->sessionKey);
    e.set_stream("assistant");
    auto text = context.getParams().getText();
    e.set_delta(sanitizeUtf8(kj::ArrayPtr<const char>(text.begin(), text.size())).cStr());
    run_->sink->event(e);
    return kj::READY_NOW;
  }

 private:
  std::shared_ptr<Run> run_;
};

class ModelProxy final : public rpc::Model::Server {
 public:
  ModelProxy(TurnHost& host, std::shared_ptr<Run> run)
      : host_(host), run_(std::move(run)), phase_(run_->phase) {}

 protected:
  kj::Promise<void> complete(CompleteContext context) override {
    checkNotRevoked(host_, run_, "Model", phase_);
    auto in = context.getParams().getRequest();
    KJ_REQUIRE(in.getMessages().size() <= MAX_REQUEST_MESSAGES, "too many messages");

    // The session worker chooses the conversation; the supervisor chooses the tools.
    auto msg = kj::heap<capnp::MallocMessageBuilder>();
    auto out = msg->initRoot<rpc::CompletionRequest>();
    out.setSystem(in.getSystem());
    out.setMessages(in.getMessages());
    auto& specs = toolSpecs();
    auto tools = out.initTools(specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      tools[i].setName(specs[i].name);
      tools[i].setDescription(specs[i].description);
      tools[i].setParametersJson(specs[i].parametersJson);
    }
    auto run = run_;
    auto& host = host_;
    auto promise = host_.model().complete(out.asReader(), kj::heap<TextForwarder>(run));
    return run->canceler.wrap(kj::mv(promise))
        .then([run, &host, context](kj::Own<capnp::MallocMessageBuilder> result) mutable {
          auto completion = result->getRoot<rpc::Completion>().asReader();
          if (completion.isMessage()) {
            std::string problem = checkAssistantMessage(completion.getMessage());
            if (!problem.empty()) {
              KJ_LOG(WARNING, "model reply refused", run->id, problem);
              auto failed = context.getResults().initCompletion().initFailed();
              failed.setKind(rpc::ModelFailure::Kind::BAD_RESPONSE);
              failed.setMessage("the model's reply was refused by the supervisor: " + problem);
              return;
            }
            TranscriptEntry entry = assistantEntryFrom(completion.getMessage());
            for (auto& call : entry.toolCalls) {
              run->requested[call.id] = {call.name, call.arguments};
            }
            run->lastAssistantText = entry.content;
            run->lastHadToolCalls = !entry.toolCalls.empty();
            host.record(run, kj::mv(entry));
          }
          context.getResults().setCompletion(completion);
        })
        .attach(kj::mv(msg));
  }

 private:
  TurnHost& host_;
  std::shared_ptr<Run> run_;
  uint32_t phase_;
};

class ToolsProxy final : public rpc::Tools::Server {
 public:
  ToolsProxy(TurnHost& host, std::shared_ptr<Run> run)
      : host_(host), run_(std::move(run)), phase_(run_->phase) {}

 protected:
  kj::Promise<void> call(CallContext context) override {
    checkNotRevoked(host_, run_, "Tools", phase_);
    auto call = context.getParams().getCall();
    std::string id = call.getId(), name = call.getName(), args = call.getArgumentsJson();

    // Only calls the model really made, each once, with the exact arguments it sent: a session
    // worker cannot invent or alter an effect.
    auto it = run_->requested.find(id);
    if (it == run_->requested.end() || it->second.name != name || it->second.arguments != args) {
      host_.killWorkerOf(run_, "protocol violation: tool call \"" + summarize(name) +
                                   "\" was not requested by the model");
      KJ_FAIL_REQUIRE("tool call not requested by the model", id);
    }
    run_->requested.erase(it);

    gateway::ToolCallSummary summary = toolCallSummary(id, name, args);
    host_.emitTool(run_, summary, "start");

    auto run = run_;
    auto& host = host_;
    auto awaiting = [run, &host, summary]() mutable {
      summary.set_status("awaiting_approval");
      host.emitTool(run, summary, "update");
    };
    return run->canceler.wrap(host_.guard().run(run->facts, id, name, args, awaiting))
        .then([run, &host, context, summary, id, name](ToolOutcome outcome) mutable {
          summary.set_status(outcome.statusName());
          summary.set_summary(summarize(outcome.content));
          host.emitTool(run, summary, "end");
          TranscriptEntry entry;
          entry.role = "tool";
          entry.content = outcome.content;
          entry.toolCallId = id;
          entry.toolName = name;
          entry.isError = outcome.status != ToolOutcome::Status::OK;
          host.record(run, entry);
          auto result = context.getResults().initResult();
          result.setRole(rpc::Role::TOOL);
          result.setContent(entry.content);
          result.setToolCallId(id);
          result.setToolName(name);
          result.setIsError(entry.isError);
        });
  }

 private:
  TurnHost& host_;
  std::shared_ptr<Run> run_;
  uint32_t phase_;
};

}  // namespace

kj::Own<rpc::Model::Server> newModelProxy(TurnHost& host, std::shared_ptr<Run> run) {
  return kj::heap<ModelProxy>(host, std::move(run));
}

kj::Own<rpc::Tools::Server> newToolsProxy(TurnHost& host, std::shared_ptr<Run> run) {
  return kj::heap<ToolsProxy>(host, std::move(run));
}

void checkNotRevoked(TurnHost& host, const std::shared_ptr<Run>& run, const char* capability,
                     uint32_t phase) {
  if (!run->revoked && run->phase == phase) return;
  // A turn that ended normally has no business being called again: the worker kept a
  // capability past its turn, which only a compromised worker does.
  if (!run->aborted) {
    host.killWorkerOf(run, std::string("protocol violation: used the ") + capability +
                               " capability of a turn that has ended");
  }
  KJ_FAIL_REQUIRE("capability revoked: the turn has ended", capability);
}

void endPhase(Run& run) {
  ++run.phase;
  run.silent = false;
  run.requested.clear();
  run.lastAssistantText.clear();
  run.lastHadToolCalls = false;
}

std::string summarize(const std::string& raw) { return clipUtf8(raw, MAX_SUMMARY_BYTES); }

std::vector<TranscriptEntry> replayWindow(std::vector<TranscriptEntry> entries) {
  entries = compactedView(std::move(entries));
  // A summary at the start holds everything before it: it stays when the cap cuts.
  size_t summary = !entries.empty() && entries[0].role == "compaction" ? 1 : 0;
  if (entries.size() > MAX_HISTORY_ENTRIES) {
    entries.erase(entries.begin() + summary, entries.end() - (MAX_HISTORY_ENTRIES - summary));
  }
  // Never start the history in the middle of a tool exchange, nor leave one open.
  auto first = std::find_if(entries.begin() + summary, entries.end(),
                            [](const TranscriptEntry& e) { return e.role == "user"; });
  entries.erase(entries.begin() + summary, first);
  closeOpenToolCalls(entries);
  return entries;
}

std::string untrustedSourceOf(const std::vector<TranscriptEntry>& window) {
  for (const auto& e : window) {
    if (!e.untrusted.empty()) return e.untrusted;
  }
  return "";
}

// A transcript can end inside a tool exchange: the gateway was killed after the model asked for
// a call and before its result was recorded. Model APIs refuse a history with an unanswered call
// (or an answer without its call), so the history a turn gets is closed here: every unanswered
// call gets a result saying it was interrupted, and stray results are left out. The transcript
// file itself is not rewritten.
void closeOpenToolCalls(std::vector<TranscriptEntry>& entries) {
  std::vector<TranscriptEntry> out;
  out.reserve(entries.size());
  std::vector<TranscriptToolCall> open;
  auto closeOpen = [&]() {
    for (const auto& call : open) {
      TranscriptEntry interrupted;
      interrupted.role = "tool";
      interrupted.toolCallId = call.id;
      interrupted.toolName = call.name;
      interrupted.isError = true;
      interrupted.content =
          "error: this call was interrupted (the gateway stopped) and its result is unknown";
      out.push_back(std::move(interrupted));
    }
    open.clear();
  };
  for (auto& e : entries) {
    if (e.role == "tool") {
      auto it = std::find_if(open.begin(), open.end(),
                             [&](const auto& c) { return c.id == e.toolCallId; });
      if (it == open.end()) continue;  // an answer to no call in this history
      open.erase(it);
      out.push_back(std::move(e));
      continue;
    }
    closeOpen();
    if (e.role == "assistant") open = e.toolCalls;
    out.push_back(std::move(e));
  }
  closeOpen();
  entries = std::move(out);
}

std::string checkAssistantMessage(rpc::ChatMessage::Reader message) {
  if (message.getContent().size() > MAX_ASSISTANT_TEXT_BYTES) {
    return "its text is " + std::to_string(message.getContent().size()) + " bytes, more than the " +
           std::to_string(MAX_ASSISTANT_TEXT_BYTES) + " allowed";
  }
  size_t total = 0, index = 0;
  for (auto call : message.getToolCalls()) {
    ++index;
    auto name = call.getName();
    auto id = call.getId();
    std::string which = "tool call " + std::to_string(index);
    if (name.size() == 0 || name.size() > MAX_TOOL_NAME_BYTES) {
      return which + ": the tool name must be 1-" + std::to_string(MAX_TOOL_NAME_BYTES) + " bytes";
    }
    which += " (" + summarize(name) + ")";
    if (id.size() > MAX_TOOL_CALL_ID_BYTES) {
      return which + ": its id is longer than " + std::to_string(MAX_TOOL_CALL_ID_BYTES) + " bytes";
    }
    auto args = call.getArgumentsJson();
    std::string problem = checkJsonBounds(std::string_view(args.begin(), args.size()),
                                          TOOL_ARGUMENTS_BOUNDS, which + ": arguments");
    if (!problem.empty()) return problem;
    total += args.size();
    if (total > MAX_COMPLETION_ARGUMENTS_BYTES) {
      return "the arguments of its tool calls together are more than " +
             std::to_string(MAX_COMPLETION_ARGUMENTS_BYTES) + " bytes";
    }
  }
  return "";
}

TranscriptEntry assistantEntryFrom(rpc::ChatMessage::Reader message) {
  TranscriptEntry entry;
  entry.role = "assistant";
  auto content = message.getContent();
  entry.content = sanitizeUtf8(kj::ArrayPtr<const char>(content.begin(), content.size())).cStr();
  KJ_REQUIRE(message.getToolCalls().size() <= MAX_COMPLETION_TOOL_CALLS,
             "the model worker sent more tool calls than any model asks for at once",
             message.getToolCalls().size());
  for (auto call : message.getToolCalls()) {
    entry.toolCalls.push_back({call.getId(), call.getName(), call.getArgumentsJson()});
  }
  return entry;
}

gateway::ToolCallSummary toolCallSummary(const std::string& id, const std::string& name,
                                         const std::string& argumentsJson) {
  gateway::ToolCallSummary summary;
  summary.set_id(id);
  summary.set_name(summarize(name));
  summary.set_arguments_json(summarize(argumentsJson));
  summary.set_status("running");
  return summary;
}

}  // namespace chitin
