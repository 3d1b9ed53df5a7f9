// SPDX-License-Identifier: Apache-2.0
// The agent core's turn engine (see agent-core.h): what a turn sends the session worker, and
// compaction before it when the conversation nears the context window (compaction.h).
// Runs in: supervisor
//
// A run's turn is a chain of phases on the same session worker and the same facts: when due,
// a silent memory-flush turn, then the summary call (the supervisor's own model call, no
// tools), then the user's turn. Each phase gets fresh Model and Tools capabilities that die
// with it (turn.h: Run::phase); aborting the run cancels whichever phase is running.

#include <capnp/message.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include "agent-core.h"
#include "agent-session.h"
#include "compaction.h"
#include "system-prompt.h"
#include "utf8.h"

namespace chitin {

namespace {

rpc::Role roleOf(const std::string& role) {
  if (role == "assistant") return rpc::Role::ASSISTANT;
  if (role == "tool") return rpc::Role::TOOL;
  return rpc::Role::USER;  // user, and a compaction's summary
}

// The summary call's text is not streamed anywhere: the client sees the report at the end.
class DiscardText final : public rpc::TextStream::Server {
 protected:
  kj::Promise<void> delta(DeltaContext) override { return kj::READY_NOW; }
};

size_t toolSpecTokens() {
  static const size_t tokens = [] {
    size_t sum = 0;
    for (const auto& spec : toolSpecs()) {
      sum += estimateTokens(spec.name) + estimateTokens(spec.description) +
             estimateTokens(spec.parametersJson);
    }
    return sum;
  }();
  return tokens;
}

std::string today() {
  time_t now = time(nullptr);
  struct tm tm {};
  localtime_r(&now, &tm);  // the agent's time zone: the supervisor sets TZ from agent.time_zone
  char date[16];
  strftime(date, sizeof(date), "%Y-%m-%d", &tm);
  return date;
}

}  // namespace

struct AgentCore::TurnInput {
  std::vector<TranscriptEntry> history;  // replayWindow of the transcript
  std::vector<PromptFile> files;
  std::string systemPrompt;

  // What the request of a turn with `userText` is estimated at, tools included.
  size_t estimatedTokens(const std::string& userText) const {
    size_t sum = estimateTokens(systemPrompt) + estimateTokens(history) + estimateTokens(userText) +
                 toolSpecTokens();
    for (const auto& f : files) sum += estimateTokens(f.name) + estimateTokens(f.content);
    return sum;
  }
};

bool AgentCore::ownerPrivate(const TurnFacts& facts) const {
  return facts.chatType == "direct" && safeguards_.policy.memberOf(facts.principal, ownersGroup());
}

std::string AgentCore::systemPromptFor(const TurnFacts& facts) const {
  PromptFacts p;
  p.persona = settings_.systemPrompt;
  p.agentId = settings_.agentId;
  for (const auto& spec : toolSpecs()) {
    std::string summary = spec.description.substr(0, spec.description.find(". ") + 1);
    p.tools.push_back({spec.name, summary.empty() ? spec.description : summary});
  }
  p.channel = facts.channel;
  p.chatType = facts.chatType;
  p.ownerPrivate = ownerPrivate(facts);
  p.now = std::time(nullptr);
  p.timeZone = settings_.timeZone;
  p.tainted = facts.tainted;
  p.taintSource = facts.taintSource;
  p.untrustedDirs = settings_.untrustedPaths;
  // Read each turn: a skill the owner installs or the agent writes is listed at the next turn,
  // without a restart (the cache re-reads only a SKILL.md whose stat changed).
  p.skills = skills::promptList(skills::loadCatalog(settings_.skillDirs, {}, &skillCache_),
                                settings_.workspaceDir);
  return buildSystemPrompt(p);
}

AgentCore::TurnInput AgentCore::prepareTurn(const std::shared_ptr<Run>& run) {
  TurnInput in;
  // History comes from our own transcript, before this turn's user message is added. While it
  // holds untrusted content, so does the model's context: the whole turn is tainted.
  in.history = replayWindow(transcripts_.load(run->sessionKey));
  std::string inHistory = untrustedSourceOf(in.history);
  if (!inHistory.empty()) run->facts->taint(inHistory);
  // The workspace's bootstrap files (MEMORY.md only in an owner's own private session); one a
  // tainted session wrote taints this one.
  std::vector<std::string> untrusted;
  in.files = loadPromptFiles(
      settings_.workspaceDir, ownerPrivate(*run->facts), settings_.promptBudget,
      [this](const std::string& name, const struct stat& st) {
        return untrustedSourceOfPromptFile(name, st, safeguards_.untrusted);
      },
      untrusted, &promptFileCache_);
  for (const auto& why : untrusted) run->facts->taint(why);
  in.systemPrompt = systemPromptFor(*run->facts);
  return in;
}

void AgentCore::beginTurn(Session&, std::shared_ptr<Run> run) {
  // The snapshot repository opens on the snapshot thread when the first turn begins, while the
  // model thinks, rather than at start-up: there, libgit2's start-up (~6 ms of CPU) competed
  // with serving the first clients. A failure is logged; the first mutating call's snapshot
  // tries again and fails closed.
  safeguards_.snapshots.openInBackground();
  gateway::AgentEvent start;
  start.set_run_id(run->id);
  start.set_session_key(run->sessionKey);
  start.set_stream("lifecycle");
  start.set_phase("start");
  run->sink->event(start);
  run->model = sessionModel(run->sessionKey);

  if (run->compactOnly) {
    run->turn = compactSession(run, run->compactInstructions, "/compact")
                    .then([this, run](std::string report) { finishRun(run, "ok", report, ""); },
                          [this, run](kj::Exception&& e) {
                            spdlog::error("run {}: {}", run->id, e.getDescription().cStr());
                            finishRun(run, "error", "", "compaction failed (see the gateway log)");
                          })
                    .eagerlyEvaluate(nullptr);
    return;
  }
  if (!model_.settings().configured()) {
    TranscriptEntry user;
    user.role = "user";
    user.content = run->userText;
    user.untrusted = run->messageUntrusted;
    record(run, user);
    TranscriptEntry reply;
    reply.role = "assistant";
    reply.content = NO_MODEL_MESSAGE;
    record(run, reply);
    finishRun(run, "ok", NO_MODEL_MESSAGE, "");
    return;
  }

  auto input = prepareTurn(run);
  bool due = input.estimatedTokens(run->userText) > settings_.compaction.threshold();
  kj::Promise<std::string> turn =
      !due ? workerTurn(run, kj::mv(input), run->userText, "")
           : compactBeforeTurn(run).then([this, run]() -> kj::Promise<std::string> {
               if (run->finished) return std::string();
               return workerTurn(run, prepareTurn(run), run->userText, "");  // from the summary
             });
  run->turn = turn.then(
                      [this, run](std::string failure) {
                        if (failure.empty()) {
                          // The reply is what the model said, as we recorded it, not what the
                          // worker claims.
                          finishRun(run, "ok", run->lastAssistantText, "");
                        } else {
                          finishRun(run, "error", "", failure);
                        }
                      },
                      [this, run](kj::Exception&& e) {
                        spdlog::error("run {}: {}", run->id, e.getDescription().cStr());
                        finishRun(run, "error", "", "the turn failed (see the gateway log)");
                      })
                  .eagerlyEvaluate(nullptr);
}

kj::Promise<std::string> AgentCore::workerTurn(std::shared_ptr<Run> run, TurnInput input,
                                               std::string userText, std::string kind) {
  TranscriptEntry user;
  user.role = "user";
  user.content = userText;
  // The flush prompt is chitin's own text, not the sender's.
  user.untrusted = kind.empty() ? run->messageUntrusted : "";
  user.kind = kind;
  record(run, user);

  auto found = sessions_.find(run->sessionKey);
  if (found == sessions_.end()) return std::string("the session was closed");
  Session& session = *found->second;
  try {
    ensureWorker(session);
  } catch (const spawn::SandboxUnavailable& e) {
    return std::string("the session could not start because its sandbox could not be set up: ") +
           e.what();
  }

  auto req = KJ_ASSERT_NONNULL(session.client).runTurnRequest();
  auto turn = req.initRequest();
  turn.setSessionKey(run->sessionKey);
  turn.setRunId(run->id);
  turn.setMaxSteps(settings_.maxSteps);
  turn.setUserText(userText);
  auto list = turn.initContextFiles(input.files.size());
  for (size_t i = 0; i < input.files.size(); ++i) {
    list[i].setName(input.files[i].name);
    list[i].setContent(input.files[i].content);
  }
  turn.setSystemPrompt(input.systemPrompt);
  auto history = turn.initHistory(input.history.size());
  for (size_t i = 0; i < input.history.size(); ++i) {
    auto& e = input.history[i];
    auto m = history[i];
    m.setRole(roleOf(e.role));
    m.setContent(e.role == "compaction" ? compactionMessageText(e) : e.content);
    auto calls = m.initToolCalls(e.toolCalls.size());
    for (size_t j = 0; j < e.toolCalls.size(); ++j) {
      calls[j].setId(e.toolCalls[j].id);
      calls[j].setName(e.toolCalls[j].name);
      calls[j].setArgumentsJson(e.toolCalls[j].arguments);
    }
    m.setToolCallId(e.toolCallId);
    m.setToolName(e.toolName);
    m.setIsError(e.isError);
  }
  req.setModel(newModelProxy(*this, run));
  req.setTools(newToolsProxy(*this, run));

  std::string key = session.key;
  return req.send().then(
      [](capnp::Response<rpc::SessionWorker::RunTurnResults>&& response) -> std::string {
        auto outcome = response.getOutcome();
        if (outcome.isAnswered()) return "";
        std::string failed = outcome.getFailed();
        return failed.empty() ? std::string("the turn failed") : failed;
      },
      [this, run, key](kj::Exception&& e) -> std::string {
        auto it = sessions_.find(key);
        Session* live = it == sessions_.end() ? nullptr : it->second.get();
        std::string why;
        if (live != nullptr && !live->violation.empty()) {
          why = "the session worker broke the protocol and was stopped (" + live->violation +
                "); this turn was not completed.";
        } else if (e.getType() == kj::Exception::Type::DISCONNECTED) {
          why =
              "the session worker stopped unexpectedly; this turn was not completed. Send your "
              "message again to continue (the conversation so far is kept).";
        } else {
          why =
              "the session worker broke the protocol and was stopped; this turn was not "
              "completed.";
          if (live != nullptr) killSessionWorker(*live, "protocol violation: runTurn failed");
        }
        spdlog::warn("run {}: {}", run->id, e.getDescription().cStr());
        return why;
      });
}

kj::Promise<void> AgentCore::compactBeforeTurn(std::shared_ptr<Run> run) {
  const auto& settings = settings_.compaction;
  // Memory is the owner's: a stranger's conversation is not flushed into it. Once per cycle,
  // so a summary call that keeps failing does not bring a flush turn with every message.
  bool flush = settings.memoryFlush &&
               safeguards_.policy.memberOf(run->facts->principal, ownersGroup()) &&
               !memoryFlushedSinceCompaction(transcripts_.load(run->sessionKey));
  kj::Promise<void> flushed = kj::READY_NOW;
  if (flush) {
    run->silent = true;
    std::string prompt = settings.memoryFlushPrompt.empty() ? memoryFlushPrompt(today())
                                                            : settings.memoryFlushPrompt;
    flushed =
        workerTurn(run, prepareTurn(run), prompt, "memory-flush").then([run](std::string failure) {
          if (!failure.empty()) {
            spdlog::warn("run {}: the memory flush before compaction failed: {}", run->id, failure);
          }
          endPhase(*run);
        });
  }
  return flushed
      .then([this, run]() -> kj::Promise<std::string> {
        if (run->finished) return std::string();
        return compactSession(run, settings_.compaction.instructions, "automatic");
      })
      .then([run](std::string report) { spdlog::info("run {}: {}", run->id, report); });
}

kj::Promise<std::string> AgentCore::compactSession(std::shared_ptr<Run> run,
                                                   std::string instructions, std::string trigger) {
  auto view = compactedView(transcripts_.load(run->sessionKey));
  size_t total = estimateTokens(view);
  // By hand, a short conversation is halved: whoever typed /compact wants it smaller.
  size_t keep = settings_.compaction.keepRecentTokens;
  if (trigger != "automatic") keep = std::min(keep, total / 2);
  auto plan = planCompaction(view, keep);
  if (!plan) return std::string("Nothing to compact yet: the conversation is too short.");

  std::vector<TranscriptEntry> part(view.begin(), view.begin() + plan->summarized);
  // Three quarters of what fits before compaction, at the estimate's three bytes per token.
  size_t maxBytes = size_t{settings_.compaction.threshold()} * 3 * 3 / 4;
  auto msg = kj::heap<capnp::MallocMessageBuilder>();
  auto request = msg->initRoot<rpc::CompletionRequest>();
  request.setSystem(summarySystemPrompt());
  request.setModel(run->model);
  auto messages = request.initMessages(1);
  messages[0].setRole(rpc::Role::USER);
  messages[0].setContent(summaryRequestText(renderForSummary(part, maxBytes), instructions));

  std::string untrusted = untrustedSourceOf(part);
  if (untrusted.empty() && !instructions.empty()) untrusted = run->messageUntrusted;
  auto promise = model_.complete(request.asReader(), kj::heap<DiscardText>());
  return run->canceler.wrap(kj::mv(promise))
      .then([this, run, plan = *plan, untrusted,
             trigger](kj::Own<capnp::MallocMessageBuilder> result) -> std::string {
        auto completion = result->getRoot<rpc::Completion>().asReader();
        audit::Record r;
        r.set_kind(audit::COMPACTION);
        r.set_session(run->sessionKey);
        r.set_run_id(run->id);
        r.set_principal(run->facts->principal.str());
        std::string failure;
        if (completion.isFailed()) {
          failure = summarize(completion.getFailed().getMessage());
        } else if (completion.getMessage().getContent().size() == 0) {
          failure = "the model wrote an empty summary";
        }
        if (!failure.empty() || run->finished) {
          r.set_outcome(run->finished ? "error: the run was stopped" : "error: " + failure);
          r.set_detail(trigger + ": nothing was changed");
          safeguards_.audit.appendOrLog(std::move(r), false);
          return "Compaction failed (the conversation is kept as it was): " +
                 (failure.empty() ? std::string("the run was stopped") : failure);
        }
        auto text = completion.getMessage().getContent();
        TranscriptEntry entry;
        entry.role = "compaction";
        entry.content =
            clipUtf8(std::string_view(text.begin(), text.size()), MAX_COMPACTION_SUMMARY_BYTES);
        entry.kept = plan.kept;
        entry.untrusted = untrusted;  // a summary of untrusted content is untrusted content
        record(run, entry);
        std::string report = "Compacted " + std::to_string(plan.summarized) + " messages (about " +
                             std::to_string(plan.summarizedTokens) +
                             " tokens) into a summary of about " +
                             std::to_string(estimateTokens(entry.content)) +
                             " tokens; kept the last " + std::to_string(plan.kept) +
                             " messages as they were. The full transcript stays on disk.";
        r.set_outcome("ok");
        r.set_detail(trigger + ": " + report);
        safeguards_.audit.appendOrLog(std::move(r), false);
        return report;
      })
      .attach(kj::mv(msg));
}

}  // namespace chitin
