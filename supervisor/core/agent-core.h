// SPDX-License-Identifier: Apache-2.0
// The agent core: who may talk, sessions and their workers, and runs, behind the gateway's
// AgentService.
// Runs in: supervisor
//
// Rooms next door: what a turn sends the session worker and compaction before it are in
// agent-turn.c++ (compaction.h), the per-turn capabilities in turn.h, the owner's control
// methods in control-methods.h, session keys in session-keys.h, every tool call's path in
// guard.h.
//
// One session worker per active session key runs the agent loop. For each turn the core hands
// it a `Model` and a `Tools` capability that are the core's own objects: every model call and
// tool call passes through here, is recorded in the transcript by the core (never from what the
// worker reports), and is checked against what the model actually asked for. Both capabilities
// are revoked when the turn ends or is aborted. A worker that breaks the protocol is killed and
// its turn fails cleanly; the next message starts a fresh worker from the transcript.

#pragma once

#include <kj/async-io.h>
#include <uv.h>

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "agent-service.h"
#include "approvals.h"
#include "audit-log.h"
#include "compaction.h"
#include "config.h"
#include "control-methods.h"
#include "guard.h"
#include "model-host.h"
#include "session-keys.h"
#include "session-models.h"
#include "session-reset.h"
#include "session-tools.h"
#include "slash-commands.h"
#include "spawner.h"
#include "tool-runner.h"
#include "transcript.h"
#include "turn.h"
#include "skills.h"
#include "worker-host.h"
#include "workspace-files.h"

namespace chitin {

struct AgentCoreSettings {
  std::string agentId = "main";
  std::string systemPrompt;  // the persona paragraph of the prompt; "" = the built-in one
  std::string timeZone;      // named in the prompt; "" = the host's
  PromptFileBudget promptBudget;
  // Where skills come from, in precedence order (skills.h); listed in every prompt.
  std::vector<skills::SkillDir> skillDirs;
  std::string workspaceDir;
  uint32_t maxSteps = 16;
  uint32_t sessionIdleSeconds = 600;
  SessionResetPolicy sessionReset;  // agent.session_reset, applied as a message arrives
  CompactionSettings compaction;    // agent.compaction
  std::string homeDir;  // for status
  // Where /model choices are kept ($CHITIN_HOME/state/session-models.json); "" = not kept.
  std::string sessionModelsPath;
  std::string version;
  std::string auditDir;
  uint32_t approvalTimeoutSeconds = 300;
  std::vector<std::string> untrustedPaths;
  std::vector<std::string> mentionPatterns;  // group chats, case-insensitive substrings
};

class AgentCore final : public gateway::AgentService,
                        private TurnHost,
                        private SlashHost,
                        private SessionToolsHost {
 public:
  AgentCore(uv_loop_t* loop, kj::AsyncIoContext& io, spawn::Spawner& spawner,
            TranscriptStore& transcripts, ModelHost& model, ToolExecutor& tools,
            AgentCoreSettings settings, std::string sandboxStatus, Safeguards safeguards);
  ~AgentCore() noexcept override;

  gateway::Result<gateway::AgentAccepted> startRun(const gateway::AgentParams& params,
                                                   const gateway::ClientIdentity& who,
                                                   std::shared_ptr<gateway::RunSink> sink) override;
  gateway::Result<bool> abortRun(const std::string& runId) override;
  gateway::Result<gateway::ChatHistory> history(const gateway::ChatHistoryParams& params,
                                                const gateway::ClientIdentity& who) override;
  gateway::SessionsList sessions() override;
  gateway::StatusPayload status() override;
  std::optional<gateway::Result<google::protobuf::Struct>> control(
      const std::string& method, const google::protobuf::Struct& params,
      const gateway::ClientIdentity& who) override;
  bool controlLater(const std::string& method, const google::protobuf::Struct& params,
                    const gateway::ClientIdentity& who, ControlReply reply) override;
  std::vector<std::string> controlMethods() const override;

  // Re-reads policies and entities (SIGHUP, `chitin policy reload`); audited either way.
  gateway::PolicyReloadResult reloadPolicy(const std::string& by);

  void setSandboxStatus(std::string status) { sandboxStatus_ = std::move(status); }
  void setConnectionCounter(std::function<uint32_t()> counter) {
    connections_ = std::move(counter);
  }
  // Fills status()'s spare_sandboxes fields.
  void setSpareStatus(std::function<void(gateway::StatusPayload&)> fill) {
    spareStatus_ = std::move(fill);
  }
  // The memory.search control method (`chitin memory search` through this gateway).
  void setMemorySearch(ControlMethods::MemorySearch search) {
    control_->setMemorySearch(std::move(search));
  }

  // Aborts every run and stops every session worker (SIGTERM path).
  void shutdown();

  struct Session;

 private:
  // A session's idle-out timer; `handle` first so the uv handle pointer converts back.
  struct IdleTimer {
    uv_timer_t handle;
    AgentCore* core;
    std::string key;
  };

  uv_loop_t* loop_;
  kj::AsyncIoContext& io_;
  spawn::Spawner& spawner_;
  TranscriptStore& transcripts_;
  ModelHost& model_;
  ToolExecutor& tools_;
  AgentCoreSettings settings_;
  std::string sandboxStatus_;
  // The skills catalog's parsed SKILL.md files (systemPromptFor, on the loop thread).
  mutable skills::FrontMatterCache skillCache_;
  PromptFileCache promptFileCache_;  // the workspace's bootstrap files, by their stamps
  Safeguards safeguards_;
  std::unique_ptr<ApprovalBook> approvals_;
  std::unique_ptr<SessionTools> sessionTools_;  // wraps tools_ for the guard
  std::unique_ptr<Guard> guard_;
  std::unique_ptr<ControlMethods> control_;
  std::unique_ptr<SlashCommands> slash_;
  std::unique_ptr<SessionModels> sessionModels_;
  std::function<uint32_t()> connections_;
  std::function<void(gateway::StatusPayload&)> spareStatus_;
  std::chrono::steady_clock::time_point started_;
  std::map<std::string, std::unique_ptr<Session>> sessions_;
  std::map<std::string, std::shared_ptr<Run>> runs_;  // active and queued, by run id
  kj::TaskSet tasks_;
  WorkerEndings endings_;  // idle sessions' workers, torn down off the loop's back
  bool shuttingDown_ = false;
  // Expires with this core: a transcript sync finishing later finds it gone and does nothing.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);

  Session& sessionFor(const std::string& key);
  std::string defaultSessionKey(const gateway::ClientIdentity& who) const;
  void startNext(Session& session);
  void beginTurn(Session& session, std::shared_ptr<Run> run);
  // agent-turn.c++: what a turn of `run` would send now (history, prompt files, system prompt;
  // taints the run's facts by what they hold).
  struct TurnInput;
  TurnInput prepareTurn(const std::shared_ptr<Run>& run);
  // One call of the session worker in `run`'s current phase, its user message `userText`
  // recorded first (`kind`: TranscriptEntry::kind). Resolves to "" when the worker answered,
  // else a user-facing reason; never rejects for a worker's failure.
  kj::Promise<std::string> workerTurn(std::shared_ptr<Run> run, TurnInput input,
                                      std::string userText, std::string kind);
  // The memory flush (when due) and then compaction, before `run`'s own turn; never fails the
  // turn: a compaction that cannot be made leaves the conversation as it was.
  kj::Promise<void> compactBeforeTurn(std::shared_ptr<Run> run);
  // Summarizes the older part of `run`'s session through the model; appends the compaction
  // entry and audits it. Resolves to a report for the user (also when nothing was done).
  kj::Promise<std::string> compactSession(std::shared_ptr<Run> run, std::string instructions,
                                          std::string trigger);
  // Ends `run` at once (its capabilities revoked); its last events and result go out once what
  // it recorded is on disk (deliverRun).
  void finishRun(const std::shared_ptr<Run>& run, const std::string& status,
                 const std::string& reply, const std::string& error);
  void deliverRun(const std::shared_ptr<Run>& run, std::string status, const std::string& reply,
                  std::string error);
  void appendSynced(const std::shared_ptr<Run>& run, int error);
  void ensureWorker(Session& session);
  void armIdleTimer(Session& session);
  void closeIdleTimer(Session& session);
  static void onIdle(uv_timer_t* handle);
  void killSessionWorker(Session& session, const std::string& reason);
  // Archives a session's transcript (`chitin sessions reset`, /new, /reset); audited as by `by`.
  gateway::Result<gateway::SessionResetResult> archiveSession(const std::string& key,
                                                              const policy::EntityUid& by,
                                                              const std::string& why = "");
  // agent.session_reset: archives the session's old conversation before this message when due.
  void applyResetPolicy(const std::string& key, const policy::EntityUid& by);
  // The configured system prompt, plus a warning while the context holds untrusted content.
  std::string systemPromptFor(const TurnFacts& facts) const;
  // An owner's own direct session: MEMORY.md goes into its prompt.
  bool ownerPrivate(const TurnFacts& facts) const;

  // TurnHost: what a turn's capabilities call back into.
  void record(const std::shared_ptr<Run>& run, TranscriptEntry entry) override;
  void emitTool(const std::shared_ptr<Run>& run, const gateway::ToolCallSummary& tool,
                const char* phase) override;
  void killWorkerOf(const std::shared_ptr<Run>& run, const std::string& reason) override;
  ModelHost& model() override { return model_; }
  Guard& guard() override { return *guard_; }
  // SlashHost: what slash commands act on.
  SessionState sessionState(const std::string& key) override;
  const ModelSettings& modelSettings() override { return model_.settings(); }
  std::string sessionModel(const std::string& key) override;
  gateway::Result<bool> setSessionModel(const std::string& key, const std::string& model) override;
  size_t stopSession(const std::string& key) override;
  gateway::Result<std::string> resetSession(const std::string& key,
                                            const policy::EntityUid& by) override;
  // SessionToolsHost: a turn sessions_send starts in another session.
  gateway::Result<std::string> startSessionTurn(std::shared_ptr<TurnFacts> facts,
                                                const std::string& message,
                                                const std::string& untrusted,
                                                std::shared_ptr<gateway::RunSink> sink) override;
  // Queues a turn of `facts->sessionKey` with `text` (startRun, startSessionTurn); `compact`:
  // a /compact run, with its instructions.
  gateway::AgentAccepted queueRun(const std::shared_ptr<TurnFacts>& facts, const std::string& text,
                                  const std::string& messageUntrusted,
                                  std::shared_ptr<gateway::RunSink> sink,
                                  std::optional<std::string> compact = std::nullopt);
  // A run that ends without a turn (pairing code, denial, an approval typed on a chat).
  gateway::Result<gateway::AgentAccepted> answerAtOnce(const std::shared_ptr<TurnFacts>& facts,
                                                       std::shared_ptr<gateway::RunSink> sink,
                                                       const std::string& status,
                                                       const std::string& reply);
};

}  // namespace chitin
