// SPDX-License-Identifier: Apache-2.0
// Sessions, runs and the Model/Tools proxies (see agent-core.h).
// Runs in: supervisor

#include "agent-core.h"
#include "agent-session.h"

#include <capnp/message.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <sodium.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <regex>

#include "frames.h"
#include "session.capnp.h"
#include "system-prompt.h"
#include "task-errors.h"
#include "utf8.h"
#include "worker-host.h"

namespace chitin {

namespace {

// "approve CODE" / "deny CODE" (or /approve, /deny) typed on a chat: an answer to a question
// the assistant asked there.
const std::regex& answerPattern() {
  static const std::regex pattern("\\s*/?(approve|deny)\\s+([A-Za-z0-9]{6})\\s*",
                                  std::regex::icase);
  return pattern;
}

constexpr size_t MAX_MESSAGE_BYTES = 64 << 10;

LogTaskErrors agentTaskErrors("agent core task failed", spdlog::level::err);

std::string randomId() {
  unsigned char bytes[12];
  randombytes_buf(bytes, sizeof(bytes));
  char hex[sizeof(bytes) * 2 + 1];
  sodium_bin2hex(hex, sizeof(hex), bytes, sizeof(bytes));
  return hex;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

AgentCore::AgentCore(uv_loop_t* loop, kj::AsyncIoContext& io, spawn::Spawner& spawner,
                     TranscriptStore& transcripts, ModelHost& model, ToolExecutor& tools,
                     AgentCoreSettings settings, std::string sandboxStatus, Safeguards safeguards)
    : loop_(loop),
      io_(io),
      spawner_(spawner),
      transcripts_(transcripts),
      model_(model),
      tools_(tools),
      settings_(std::move(settings)),
      sandboxStatus_(std::move(sandboxStatus)),
      safeguards_(safeguards),
      started_(std::chrono::steady_clock::now()),
      tasks_(agentTaskErrors) {
  for (auto& pattern : settings_.mentionPatterns) {
    for (char& c : pattern) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  }
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  approvals_ = std::make_unique<ApprovalBook>(
      io_.provider->getTimer(), settings_.approvalTimeoutSeconds,
      [this](const gateway::ApprovalInfo& info) { broadcast("approval.requested", info); },
      [this](const gateway::ApprovalResolved& resolved) {
        broadcast("approval.resolved", resolved);
      });
  GuardSettings guardSettings;
  guardSettings.agentId = settings_.agentId;
  guardSettings.workspaceDir = settings_.workspaceDir;
  guardSettings.untrustedPaths = settings_.untrustedPaths;
  sessionTools_ = std::make_unique<SessionTools>(tools_, static_cast<SessionToolsHost&>(*this),
                                                 transcripts_, safeguards_.policy,
                                                 io_.provider->getTimer(), settings_.agentId);
  guard_ = std::make_unique<Guard>(safeguards_.policy, *approvals_, safeguards_.audit,
                                   safeguards_.snapshots, *sessionTools_, safeguards_.untrusted,
                                   guardSettings);
  control_ =
      std::make_unique<ControlMethods>(safeguards_, *approvals_, *guard_, settings_.auditDir);
  slash_ = std::make_unique<SlashCommands>(static_cast<SlashHost&>(*this), safeguards_.policy,
                                           safeguards_.audit, *approvals_, settings_.agentId);
  if (!settings_.sessionModelsPath.empty()) {
    sessionModels_ = std::make_unique<SessionModels>(settings_.sessionModelsPath);
  }
}

std::string AgentCore::sessionModel(const std::string& key) {
  std::string chosen = sessionModels_ ? sessionModels_->get(key) : "";
  // A name the config no longer offers: the session is back on the configured model.
  return model_.settings().offers(chosen) ? chosen : "";
}

gateway::Result<bool> AgentCore::setSessionModel(const std::string& key, const std::string& model) {
  if (!sessionModels_) return gateway::UserError{"UNAVAILABLE", "model choices are not kept here"};
  try {
    sessionModels_->set(key, model);
  } catch (const std::exception& e) {
    return gateway::UserError{"INTERNAL", e.what()};
  }
  return true;
}

AgentCore::~AgentCore() noexcept { shutdown(); }

void AgentCore::shutdown() {
  shuttingDown_ = true;
  auto runs = runs_;
  for (auto& [id, run] : runs) {
    run->aborted = true;
    finishRun(run, "aborted", "", "the gateway is shutting down");
  }
  // Called from a uv callback (never from inside KJ), so the turns can be dropped right here;
  // that kills any tool worker they own.
  for (auto& [id, run] : runs) run->turn = nullptr;
  for (auto& [key, session] : sessions_) {
    session->client = nullptr;
    session->host = nullptr;
    closeIdleTimer(*session);
  }
  sessions_.clear();
  endings_.endNow();
}

std::string AgentCore::defaultSessionKey(const gateway::ClientIdentity& who) const {
  // One session per client kind and local user.
  return chitin::defaultSessionKey(settings_.agentId, who.clientId, who.user);
}

AgentCore::Session& AgentCore::sessionFor(const std::string& key) {
  auto& slot = sessions_[key];
  if (!slot) {
    slot = std::make_unique<Session>();
    slot->key = key;
  }
  return *slot;
}

void AgentCore::record(const std::shared_ptr<Run>& run, TranscriptEntry entry) {
  entry.ts = nowRfc3339();
  entry.runId = run->id;
  // What the model says and what tools return while untrusted content is in the context derives
  // from it, and keeps the session tainted for as long as it is replayed. (A user message is
  // marked by who sent it, in startRun.)
  if (entry.role != "user" && run->facts && run->facts->tainted && entry.untrusted.empty()) {
    entry.untrusted = run->facts->taintSource;
  }
  // Written now (the next load sees it), durable shortly: the run's result waits for it.
  ++run->unsyncedAppends;
  try {
    transcripts_.appendAsync(loop_, run->sessionKey, entry,
                             [this, alive = std::weak_ptr<bool>(alive_), run](int error) {
                               if (!alive.expired()) appendSynced(run, error);
                             });
  } catch (...) {
    --run->unsyncedAppends;
    throw;
  }
}

void AgentCore::appendSynced(const std::shared_ptr<Run>& run, int error) {
  --run->unsyncedAppends;
  if (error != 0 && run->syncError == 0) {
    run->syncError = error;
    spdlog::error("run {}: the transcript of {} could not be synced to disk: {}", run->id,
                  run->sessionKey, strerror(error));
  }
  if (run->unsyncedAppends == 0 && run->deliver) {
    auto deliver = std::move(run->deliver);
    run->deliver = nullptr;
    deliver();
  }
}

void AgentCore::emitTool(const std::shared_ptr<Run>& run, const gateway::ToolCallSummary& tool,
                         const char* phase) {
  if (run->finished) return;
  if (strcmp(phase, "start") == 0) {
    run->tools.push_back(tool);
  } else {
    for (auto& t : run->tools) {
      if (t.id() == tool.id()) t = tool;
    }
  }
  gateway::AgentEvent e;
  e.set_run_id(run->id);
  e.set_session_key(run->sessionKey);
  e.set_stream("tool");
  e.set_phase(phase);
  *e.mutable_tool() = tool;
  run->sink->event(e);
}

gateway::Result<gateway::AgentAccepted> AgentCore::answerAtOnce(
    const std::shared_ptr<TurnFacts>& facts, std::shared_ptr<gateway::RunSink> sink,
    const std::string& status, const std::string& reply) {
  auto run = std::make_shared<Run>();
  run->id = randomId();
  run->sessionKey = facts->sessionKey;
  run->facts = facts;
  run->sink = std::move(sink);
  runs_[run->id] = run;
  gateway::AgentAccepted accepted;
  accepted.set_run_id(run->id);
  accepted.set_status("accepted");
  accepted.set_session_key(facts->sessionKey);
  tasks_.add(kj::evalLater([this, run, status, reply]() { finishRun(run, status, reply, ""); }));
  return accepted;
}

gateway::Result<gateway::AgentAccepted> AgentCore::startRun(
    const gateway::AgentParams& params, const gateway::ClientIdentity& who,
    std::shared_ptr<gateway::RunSink> sink) {
  if (shuttingDown_) return gateway::UserError{"UNAVAILABLE", "the gateway is shutting down"};
  const std::string& text = params.message();
  if (text.empty() || text.find_first_not_of(" \t\r\n") == std::string::npos) {
    return gateway::UserError{"INVALID_REQUEST", "message: expected a non-empty text"};
  }
  if (text.size() > MAX_MESSAGE_BYTES) {
    return gateway::UserError{"INVALID_REQUEST", "message: longer than 64 KiB"};
  }

  // Who is speaking: a sender on a chat channel (relayed by a channel bridge), or the local
  // operator holding the gateway token.
  auto facts = std::make_shared<TurnFacts>();
  std::string key = params.session_key();
  if (!params.channel().empty()) {
    static const std::regex channelPattern("[a-z0-9_-]{1,32}");
    // ':' for ids a platform qualifies (IRC's "account:alice", Signal's "group:<id>").
    static const std::regex idPattern("[A-Za-z0-9_.@+:-]{1,128}");
    if (!std::regex_match(params.channel(), channelPattern) || params.channel() == "local")
      return gateway::UserError{"INVALID_REQUEST",
                                "channel: expected 1-32 of a-z 0-9 _ - (and not \"local\")"};
    if (!std::regex_match(params.sender(), idPattern))
      return gateway::UserError{"INVALID_REQUEST",
                                "sender: expected 1-128 of A-Z a-z 0-9 _ . @ + : -"};
    const std::string& type = params.chat_type().empty() ? "direct" : params.chat_type();
    if (type != "direct" && type != "group")
      return gateway::UserError{"INVALID_REQUEST", "chatType: expected \"direct\" or \"group\""};
    if (type == "group" && !std::regex_match(params.chat_id(), idPattern))
      return gateway::UserError{"INVALID_REQUEST",
                                "chatId: a group message needs the group's id (1-128 of A-Z a-z "
                                "0-9 _ . @ + : -)"};
    // A bridge cannot steer a sender into someone else's session.
    std::string derived = channelSessionKey(settings_.agentId, params.channel(), type,
                                            type == "group" ? params.chat_id() : params.sender());
    if (!key.empty() && key != derived)
      return gateway::UserError{"INVALID_REQUEST",
                                "sessionKey: channel messages go to their sender's or group's own "
                                "session (" +
                                    derived + ")"};
    key = derived;
    facts->sessionKey = key;
    facts->principal = {"Sender", params.channel() + ":" + params.sender()};
    facts->channel = params.channel();
    facts->chatType = type;
    facts->mentioned = params.mentioned();
    if (type == "group" && !facts->mentioned) {
      std::string lower = text;
      for (char& c : lower) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
      for (const auto& pattern : settings_.mentionPatterns) {  // lower-cased at construction
        if (!pattern.empty() && lower.find(pattern) != std::string::npos) facts->mentioned = true;
      }
      // Not addressed to the assistant: not read, not recorded, not answered. An answer to a
      // question the assistant asked in this chat ("approve CODE" for a code still pending) is
      // addressed to it all the same; whether this sender may give it is decided below.
      std::smatch answer;
      bool answersPendingCode =
          std::regex_match(text, answer, answerPattern()) && approvals_->hasCode(answer[2].str());
      if (!facts->mentioned && !answersPendingCode)
        return answerAtOnce(facts, std::move(sink), "ignored", "");
    }
  } else {
    if (key.empty()) key = defaultSessionKey(who);
    facts->principal = localOperator();
  }
  if (auto problem = checkSessionKey(key); !problem.empty()) {
    return gateway::UserError{"INVALID_REQUEST", problem};
  }
  facts->sessionKey = key;

  audit::Record in;
  in.set_kind(audit::MESSAGE_IN);
  in.set_session(key);
  in.set_principal(facts->principal.str());
  in.set_detail(text);
  safeguards_.audit.appendOrLog(std::move(in), false);

  policy::EntityUid agent{"Agent", settings_.agentId};
  auto ask = [&](const char* action) {
    policy::Request request;
    request.principal = facts->principal;
    request.action = {"Action", action};
    request.resource = agent;
    // Before anything of the message is taken in, so untainted, with no arguments.
    request.context = policy::Value::record(
        policyContext(*facts, /*confirmed=*/false, policy::Value::record({})));
    policy::Verdict verdict = safeguards_.policy.decide(request);
    audit::Record r;
    r.set_kind(audit::DECISION);
    r.set_session(key);
    r.set_principal(facts->principal.str());
    r.set_tool(action);
    r.mutable_decision()->set_outcome(policy::outcomeName(verdict.outcome));
    for (auto& p : verdict.policies) r.mutable_decision()->add_policies(p);
    for (auto& e : verdict.errors) r.mutable_decision()->add_errors(e);
    safeguards_.audit.appendOrLog(std::move(r), false);
    // Talking and approving cannot themselves wait for an approval.
    return verdict.outcome == policy::Outcome::ALLOW;
  };

  // "approve CODE" / "deny CODE" typed on a chat answers a pending confirmation.
  std::smatch answer;
  if (std::regex_match(text, answer, answerPattern()) && approvals_->hasCode(answer[2].str())) {
    if (!ask("approve")) {
      return answerAtOnce(facts, std::move(sink), "denied",
                          "You are not allowed to answer confirmations for this assistant.");
    }
    bool approve = tolower(static_cast<unsigned char>(answer[1].str()[0])) == 'a';
    auto resolved = approvals_->resolve(answer[2].str(), approve, facts->principal.id);
    if (auto* error = std::get_if<gateway::UserError>(&resolved))
      return answerAtOnce(facts, std::move(sink), "ok", error->message);
    auto& r = std::get<gateway::ApprovalResolved>(resolved);
    return answerAtOnce(
        facts, std::move(sink), "ok",
        std::string(approve ? "Approved" : "Denied") + ": " + r.tool() + " (" + r.id() + ").");
  }

  // May this sender talk to this agent at all? Checked before any session is touched.
  if (!ask("chat")) {
    if (facts->chatType == "group") return answerAtOnce(facts, std::move(sink), "ignored", "");
    if (facts->channel != "local" && !safeguards_.policy.known(facts->principal)) {
      auto pairing = safeguards_.pairing.request(facts->channel, params.sender());
      if (!pairing) return answerAtOnce(facts, std::move(sink), "ignored", "");
      audit::Record r;
      r.set_kind(audit::PAIRING);
      r.set_principal(facts->principal.str());
      r.set_outcome("requested");
      r.set_detail("code " + pairing->code);
      safeguards_.audit.appendOrLog(std::move(r), false);
      return answerAtOnce(
          facts, std::move(sink), "pairing",
          "I don't know you yet. To talk to this assistant, ask its owner to approve your pairing "
          "code: " +
              pairing->code + " (valid for one hour).");
    }
    return answerAtOnce(facts, std::move(sink), "denied",
                        "You are not allowed to talk to this assistant.");
  }
  // "/status", "/new", ...: answered by the supervisor, each decided by the policy. /compact
  // waits in the session's queue like a message and is answered when it is done.
  std::optional<std::string> compact;
  if (auto command = parseSlashCommand(text)) {
    auto ran = slash_->run(*command, *facts, params.sender());
    if (!ran.compact) return answerAtOnce(facts, std::move(sink), "ok", ran.reply);
    compact = std::move(ran.compact);
  }
  // A message from anyone but an owner is content from outside; so is one that brings files.
  std::string messageUntrusted;
  if (!safeguards_.policy.memberOf(facts->principal, ownersGroup())) {
    messageUntrusted = "a message from " + facts->principal.str() + ", who is not an owner";
    facts->taint(messageUntrusted);
  } else if (!params.untrusted().empty()) {
    messageUntrusted = clipUtf8(params.untrusted(), 200);
    facts->taint(messageUntrusted);
  }

  return queueRun(facts, text, messageUntrusted, std::move(sink), std::move(compact));
}

gateway::AgentAccepted AgentCore::queueRun(const std::shared_ptr<TurnFacts>& facts,
                                           const std::string& text,
                                           const std::string& messageUntrusted,
                                           std::shared_ptr<gateway::RunSink> sink,
                                           std::optional<std::string> compact) {
  const std::string key = facts->sessionKey;
  auto run = std::make_shared<Run>();
  run->id = randomId();
  run->sessionKey = key;
  run->userText = text;
  run->messageUntrusted = messageUntrusted;
  run->compactOnly = compact.has_value();
  run->compactInstructions = compact.value_or("");
  run->sink = std::move(sink);
  facts->runId = run->id;
  run->facts = facts;
  runs_[run->id] = run;

  gateway::AgentAccepted accepted;
  accepted.set_run_id(run->id);
  accepted.set_status("accepted");
  accepted.set_session_key(key);

  applyResetPolicy(key, facts->principal);
  auto& session = sessionFor(key);
  session.queue.push_back(run);
  // Start on the next loop turn so the client sees "accepted" before any event.
  tasks_.add(kj::evalLater([this, key]() {
    auto it = sessions_.find(key);
    if (it != sessions_.end()) startNext(*it->second);
  }));
  return accepted;
}

gateway::Result<std::string> AgentCore::startSessionTurn(std::shared_ptr<TurnFacts> facts,
                                                         const std::string& message,
                                                         const std::string& untrusted,
                                                         std::shared_ptr<gateway::RunSink> sink) {
  if (shuttingDown_) return gateway::UserError{"UNAVAILABLE", "the gateway is shutting down"};
  return queueRun(facts, message, untrusted, std::move(sink)).run_id();
}

void AgentCore::startNext(Session& session) {
  if (session.current || session.queue.empty() || shuttingDown_) return;
  auto run = session.queue.front();
  session.queue.pop_front();
  session.current = run;
  if (session.idle != nullptr) uv_timer_stop(&session.idle->handle);
  // Whatever goes wrong while starting (a full disk, a failed spawn), the client gets its final
  // answer: a run never stays open because of our own failure.
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&]() { beginTurn(session, run); })) {
    spdlog::error("run {}: cannot start the turn: {}", run->id, e->getDescription().cStr());
    finishRun(run, "error", "", "the turn could not start (see the gateway log)");
  }
}

void AgentCore::ensureWorker(Session& session) {
  if (session.client != nullptr && session.host.get() != nullptr && !session.host->exited()) {
    return;
  }
  session.client = nullptr;
  session.host = nullptr;
  session.violation.clear();
  spawn::SpawnRequest request;
  request.profile = "session";
  session.host =
      kj::heap<WorkerHost>(loop_, io_, spawner_.spawn(request), "session worker " + session.key);
  session.client = session.host->bootstrap<rpc::SessionWorker>();
  uint64_t generation = ++session.generation;
  std::string key = session.key;
  tasks_.add(session.host->onExit().then([this, key, generation](WorkerExit exit) {
    auto it = sessions_.find(key);
    audit::Record r;
    r.set_kind(audit::WORKER_EXIT);
    r.set_session(key);
    r.set_tool("session");
    r.set_outcome(it != sessions_.end() && !it->second->violation.empty() ? "killed" : "exited");
    r.set_detail(exit.describe() + (it != sessions_.end() && !it->second->violation.empty()
                                        ? " (" + it->second->violation + ")"
                                        : ""));
    safeguards_.audit.appendOrLog(std::move(r), false);
    if (it != sessions_.end() && it->second->generation == generation) {
      it->second->client = nullptr;  // the next message starts a fresh worker
    }
  }));
}

void AgentCore::finishRun(const std::shared_ptr<Run>& run, const std::string& status,
                          const std::string& reply, const std::string& error) {
  if (run->finished) return;
  run->finished = true;
  run->revoked = true;  // both capabilities are dead from here on
  if (!run->canceler.isEmpty()) run->canceler.cancel("the turn has ended");
  runs_.erase(run->id);
  if (run->unsyncedAppends > 0) {
    // Weak: the run must not keep itself alive through its own `deliver` (a sync that reports
    // after this core is gone drops its run, and this with it).
    run->deliver = [this, weak = std::weak_ptr<Run>(run), status, reply, error]() {
      if (auto live = weak.lock()) deliverRun(live, status, reply, error);
    };
    return;
  }
  deliverRun(run, status, reply, error);
}

void AgentCore::deliverRun(const std::shared_ptr<Run>& run, std::string status,
                           const std::string& reply, std::string error) {
  if (run->syncError != 0) {
    status = "error";
    error = std::string("this conversation could not be saved to disk (") +
            strerror(run->syncError) + "); the reply was not kept";
  }
  gateway::AgentEvent end;
  end.set_run_id(run->id);
  end.set_session_key(run->sessionKey);
  end.set_stream("lifecycle");
  end.set_phase(status == "ok" ? "end" : "error");
  run->sink->event(end);

  gateway::AgentResult result;
  result.set_run_id(run->id);
  result.set_status(status);
  // The error text may come from a worker; only valid UTF-8 reaches the gateway's JSON.
  result.set_reply(sanitizeUtf8(kj::ArrayPtr<const char>(reply.data(), reply.size())).cStr());
  result.set_error(sanitizeUtf8(kj::ArrayPtr<const char>(error.data(), error.size())).cStr());
  result.set_session_key(run->sessionKey);
  for (auto& t : run->tools) *result.add_tools() = t;
  if (!result.reply().empty() || !result.error().empty()) {
    audit::Record out;
    out.set_kind(audit::MESSAGE_OUT);
    out.set_session(run->sessionKey);
    out.set_run_id(run->id);
    if (run->facts) out.set_principal(run->facts->principal.str());
    out.set_outcome(status);
    out.set_detail(result.reply().empty() ? result.error() : result.reply());
    safeguards_.audit.appendOrLog(std::move(out), false);
  }
  run->sink->finished(result);

  auto it = sessions_.find(run->sessionKey);
  if (it == sessions_.end()) return;
  Session& session = *it->second;
  if (session.current == run) {
    session.current = nullptr;
    // Dropping the turn promise cancels the call in the worker; do it after this callback.
    tasks_.add(kj::evalLater([run]() { run->turn = nullptr; }));
    if (session.queue.empty()) {
      armIdleTimer(session);
    } else {
      std::string key = session.key;
      tasks_.add(kj::evalLater([this, key]() {
        auto s = sessions_.find(key);
        if (s != sessions_.end()) startNext(*s->second);
      }));
    }
  } else {
    auto& q = session.queue;
    q.erase(std::remove(q.begin(), q.end(), run), q.end());
  }
}

void AgentCore::killWorkerOf(const std::shared_ptr<Run>& run, const std::string& reason) {
  auto it = sessions_.find(run->sessionKey);
  if (it != sessions_.end()) killSessionWorker(*it->second, reason);
}

void AgentCore::killSessionWorker(Session& session, const std::string& reason) {
  if (session.violation.empty()) session.violation = reason;
  if (session.host.get() != nullptr) session.host->kill(reason);
  session.client = nullptr;
}

void AgentCore::armIdleTimer(Session& session) {
  if (session.host.get() == nullptr) return;
  if (session.idle == nullptr) {
    session.idle = new IdleTimer{{}, this, session.key};
    uv_timer_init(loop_, &session.idle->handle);
  }
  uv_timer_start(&session.idle->handle, &AgentCore::onIdle,
                 uint64_t{settings_.sessionIdleSeconds} * 1000, 0);
}

void AgentCore::onIdle(uv_timer_t* handle) {
  auto* idle = reinterpret_cast<IdleTimer*>(handle);
  AgentCore& self = *idle->core;
  auto it = self.sessions_.find(idle->key);
  if (it == self.sessions_.end()) return;
  Session& s = *it->second;
  if (s.current || !s.queue.empty()) return;
  // An idle worker holds nothing worth keeping: the next message rebuilds it from the
  // transcript, so cost grows with active sessions only.
  spdlog::info("session {}: idle for {} s, stopping its worker", s.key,
               self.settings_.sessionIdleSeconds);
  s.client = nullptr;
  self.endings_.add(kj::mv(s.host));
}

void AgentCore::closeIdleTimer(Session& session) {
  if (session.idle == nullptr) return;
  uv_timer_stop(&session.idle->handle);
  uv_close(reinterpret_cast<uv_handle_t*>(&session.idle->handle),
           [](uv_handle_t* h) { delete reinterpret_cast<IdleTimer*>(h); });
  session.idle = nullptr;
}

gateway::Result<bool> AgentCore::abortRun(const std::string& runId) {
  auto it = runs_.find(runId);
  if (it == runs_.end()) {
    return gateway::UserError{"NOT_FOUND", "no active run with id \"" + summarize(runId) + "\""};
  }
  auto run = it->second;
  // Revoke first: anything the worker still tries with this turn's capabilities fails.
  run->revoked = true;
  run->aborted = true;
  finishRun(run, "aborted", run->lastHadToolCalls || run->silent ? "" : run->lastAssistantText,
            "aborted by the user");
  return true;
}

gateway::Result<gateway::ChatHistory> AgentCore::history(const gateway::ChatHistoryParams& params,
                                                         const gateway::ClientIdentity& who) {
  std::string key = params.session_key();
  if (key.empty()) key = defaultSessionKey(who);
  if (auto problem = checkSessionKey(key); !problem.empty()) {
    return gateway::UserError{"INVALID_REQUEST", problem};
  }
  auto entries = transcripts_.load(key);
  size_t limit = params.limit() == 0 ? 200 : std::min<size_t>(params.limit(), 1000);
  size_t first = entries.size() > limit ? entries.size() - limit : 0;
  gateway::ChatHistory out;
  out.set_session_key(key);
  for (size_t i = first; i < entries.size(); ++i) {
    auto& e = entries[i];
    auto* h = out.add_messages();
    h->set_role(e.role);
    h->set_content(e.content);
    h->set_tool_call_id(e.toolCallId);
    h->set_ts(e.ts);
    h->set_run_id(e.runId);
    for (auto& c : e.toolCalls) {
      auto* t = h->add_tool_calls();
      t->set_id(c.id);
      t->set_name(c.name);
      t->set_arguments_json(c.arguments);
    }
  }
  return out;
}

gateway::SessionsList AgentCore::sessions() {
  gateway::SessionsList out;
  for (auto& s : transcripts_.list()) {
    auto* info = out.add_sessions();
    info->set_key(s.key);
    info->set_messages(s.entries);
    info->set_updated_at(s.updatedAt);
    auto it = sessions_.find(s.key);
    info->set_active(it != sessions_.end() && it->second->host.get() != nullptr &&
                     !it->second->host->exited());
    // TODO(perf): this reads every transcript again after list() counted its lines; with
    // thousands of sessions, keep the taint of the replayed window with the summary instead.
    std::string untrusted = untrustedSourceOf(replayWindow(transcripts_.load(s.key)));
    info->set_tainted(!untrusted.empty());
    info->set_untrusted_source(untrusted);
  }
  std::sort(out.mutable_sessions()->begin(), out.mutable_sessions()->end(),
            [](const auto& a, const auto& b) { return a.updated_at() > b.updated_at(); });
  return out;
}

gateway::StatusPayload AgentCore::status() {
  gateway::StatusPayload out;
  out.set_version(settings_.version);
  out.set_uptime_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started_)
                        .count());
  out.set_home(settings_.homeDir);
  const auto& m = model_.settings();
  out.set_model_provider(m.providerName());
  out.set_model(m.model);
  out.set_model_configured(m.configured());
  uint32_t active = 0;
  for (auto& [key, s] : sessions_) {
    if (s->host.get() != nullptr && !s->host->exited()) ++active;
  }
  out.set_active_sessions(active);
  out.set_active_runs(static_cast<uint32_t>(runs_.size()));
  out.set_connections(connections_ ? connections_() : 0);
  out.set_sandbox(sandboxStatus_);
  if (spareStatus_) spareStatus_(out);
  return out;
}

// ---- control methods ------------------------------------------------------------------------

std::vector<std::string> AgentCore::controlMethods() const {
  auto methods = control_->methods();
  methods.push_back("sessions.reset");
  return methods;
}

gateway::Result<gateway::SessionResetResult> AgentCore::archiveSession(const std::string& key,
                                                                       const policy::EntityUid& by,
                                                                       const std::string& why) {
  if (auto problem = checkSessionKey(key); !problem.empty()) {
    return gateway::UserError{"INVALID_REQUEST", "sessionKey: " + problem};
  }
  auto it = sessions_.find(key);
  if (it != sessions_.end() && (it->second->current || !it->second->queue.empty())) {
    return gateway::UserError{"UNAVAILABLE",
                              "session " + key +
                                  " has a run in progress; reset it when the run has finished "
                                  "(or abort the run)"};
  }
  auto entries = transcripts_.load(key);
  size_t messages = entries.size();
  std::string untrusted = untrustedSourceOf(replayWindow(std::move(entries)));
  std::string archived;
  try {
    archived = transcripts_.archive(key);
  } catch (const std::exception& e) {
    spdlog::error("session reset {}: {}", key, e.what());
    return gateway::UserError{"INTERNAL", std::string("the reset failed: ") + e.what()};
  }
  if (archived.empty()) {
    return gateway::UserError{"NOT_FOUND", "no session with key \"" + key + "\""};
  }
  // The worker holds nothing the transcript does not, but it did see the old context; so did
  // the tools' own state for the session (the browser's pages).
  if (it != sessions_.end()) {
    it->second->client = nullptr;
    it->second->host = nullptr;
  }
  tools_.sessionEnded(key);
  audit::Record r;
  r.set_kind(audit::SESSION_RESET);
  r.set_session(key);
  r.set_principal(by.str());
  r.set_outcome("reset");
  r.set_detail((why.empty() ? "" : why + ": ") + "transcript archived as " + archived +
               (untrusted.empty() ? "" : "; it was tainted: " + untrusted));
  safeguards_.audit.appendOrLog(std::move(r), true);
  gateway::SessionResetResult result;
  result.set_session_key(key);
  result.set_archived_as(archived);
  result.set_messages(messages);
  result.set_was_tainted(!untrusted.empty());
  return result;
}

void AgentCore::applyResetPolicy(const std::string& key, const policy::EntityUid& by) {
  if (settings_.sessionReset.off()) return;
  if (auto it = sessions_.find(key); it != sessions_.end() && it->second->current) return;
  auto entries = transcripts_.load(key);
  if (entries.empty()) return;
  auto last = parseTimestamp(entries.back().ts);
  if (!last) return;  // a line we did not write: keep the conversation rather than guess
  std::string why = resetDue(settings_.sessionReset, *last, std::chrono::system_clock::now());
  if (!why.empty()) (void)archiveSession(key, by, why);
}

AgentCore::SessionState AgentCore::sessionState(const std::string& key) {
  SessionState state;
  auto entries = transcripts_.load(key);
  state.messages = entries.size();
  state.untrustedSource = untrustedSourceOf(replayWindow(std::move(entries)));
  if (auto it = sessions_.find(key); it != sessions_.end()) {
    state.running = it->second->current != nullptr;
    state.queued = it->second->queue.size();
  }
  return state;
}

size_t AgentCore::stopSession(const std::string& key) {
  auto it = sessions_.find(key);
  if (it == sessions_.end()) return 0;
  std::vector<std::string> ids;
  for (auto& run : it->second->queue) ids.push_back(run->id);
  if (it->second->current) ids.push_back(it->second->current->id);  // last: it starts the next
  for (auto& id : ids) (void)abortRun(id);
  return ids.size();
}

gateway::Result<std::string> AgentCore::resetSession(const std::string& key,
                                                     const policy::EntityUid& by) {
  auto result = archiveSession(key, by);
  if (auto* error = std::get_if<gateway::UserError>(&result)) {
    if (error->code == "NOT_FOUND") return std::string();
    return *error;
  }
  return std::get<gateway::SessionResetResult>(result).archived_as();
}

gateway::PolicyReloadResult AgentCore::reloadPolicy(const std::string& by) {
  return control_->reloadPolicy(by);
}

std::optional<gateway::Result<google::protobuf::Struct>> AgentCore::control(
    const std::string& method, const google::protobuf::Struct& params,
    const gateway::ClientIdentity& who) {
  if (method == "sessions.reset") {
    auto p = gateway::frames::paramsAs<gateway::SessionResetParams>(params, method);
    if (auto* e = std::get_if<gateway::UserError>(&p))
      return gateway::Result<google::protobuf::Struct>(*e);
    auto result =
        archiveSession(std::get<gateway::SessionResetParams>(p).session_key(), localOperator());
    if (auto* e = std::get_if<gateway::UserError>(&result))
      return gateway::Result<google::protobuf::Struct>(*e);
    return gateway::frames::toStruct(std::get<gateway::SessionResetResult>(result));
  }
  return control_->call(method, params);
}

bool AgentCore::controlLater(const std::string& method, const google::protobuf::Struct& params,
                             const gateway::ClientIdentity& who, ControlReply reply) {
  return control_->callLater(method, params, std::move(reply));
}

}  // namespace chitin
