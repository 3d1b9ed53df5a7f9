// SPDX-License-Identifier: Apache-2.0
// The session tools (see session-tools.h).
// Runs in: supervisor

#include "session-tools.h"

#include <kj/debug.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "policy-model.h"
#include "session-keys.h"
#include "turn.h"
#include "utf8.h"

namespace chitin {

namespace {

using nlohmann::json;

// An optional whole number argument in [min, max]; "" when absent or valid (then `out` is set).
std::string wholeNumber(const json& args, const char* key, int64_t min, int64_t max,
                        uint32_t& out) {
  auto it = args.find(key);
  if (it == args.end() || it->is_null()) return "";
  if (!it->is_number_integer() || it->get<int64_t>() < min) {
    return std::string("argument \"") + key + "\" must be a whole number of at least " +
           std::to_string(min);
  }
  out = static_cast<uint32_t>(std::min(it->get<int64_t>(), max));
  return "";
}

std::string requiredString(const json& args, const char* key, size_t maxBytes) {
  auto it = args.find(key);
  if (it == args.end() || it->is_null())
    return std::string("missing required argument \"") + key + "\" (a string)";
  if (!it->is_string())
    return std::string("argument \"") + key + "\" must be a string, got " + it->type_name();
  const auto& s = it->get_ref<const std::string&>();
  if (s.find('\0') != std::string::npos)
    return std::string("argument \"") + key + "\" contains a NUL byte";
  if (s.size() > maxBytes) {
    return std::string("argument \"") + key + "\" is longer than " +
           std::to_string(maxBytes >> 10) + " KiB";
  }
  return "";
}

// `text` cut to `limit` bytes (valid UTF-8), the cut said.
std::string bounded(const std::string& text, size_t limit) {
  std::string s = sanitizeUtf8(kj::ArrayPtr<const char>(text.data(), text.size())).cStr();
  if (s.size() <= limit) return s;
  size_t cut = utf8BoundaryAtOrBefore(kj::ArrayPtr<const char>(s.data(), s.size()), limit);
  return s.substr(0, cut) + " [... cut: " + std::to_string(s.size() - cut) + " more bytes]";
}

// One transcript entry as sessions_history shows it: its role, tool names and text.
std::string entryLine(const TranscriptEntry& e) {
  std::string head = "[" + e.role + (e.kind.empty() ? "" : " (" + e.kind + ")");
  if (e.role == "tool") head += " " + e.toolName + (e.isError ? ", error" : "");
  if (!e.toolCalls.empty()) {
    head += " calls";
    for (size_t i = 0; i < e.toolCalls.size(); ++i)
      head += std::string(i == 0 ? " " : ", ") + e.toolCalls[i].name;
  }
  if (!e.untrusted.empty()) head += "; untrusted: " + clipUtf8(e.untrusted, 200);
  head += "] ";
  return head + bounded(e.content, SESSIONS_HISTORY_ENTRY_BYTES);
}

// The TurnFacts of a turn in `key` (channel and chat type from the key).
std::shared_ptr<TurnFacts> factsOfSession(const std::string& key) {
  policy::Entity e = policy::sessionEntity(key);
  const auto& attrs = e.attrs.asRecord();
  auto facts = std::make_shared<TurnFacts>();
  facts->sessionKey = key;
  std::string channel = attrs.at("channel").asString();
  bool platform = std::find(policy::CHAT_CHANNEL_KINDS.begin(), policy::CHAT_CHANNEL_KINDS.end(),
                            channel) != policy::CHAT_CHANNEL_KINDS.end();
  facts->channel = platform ? channel : "local";
  facts->chatType = attrs.at("chat").asString();
  facts->mentioned = facts->chatType == "group";  // addressed to the assistant by the caller
  return facts;
}

// Fulfils the sessions_send call with the turn's result; the call may be gone by then.
class ReplySink final : public gateway::RunSink {
 public:
  explicit ReplySink(kj::Own<kj::PromiseFulfiller<gateway::AgentResult>> fulfiller)
      : fulfiller_(kj::mv(fulfiller)) {}
  ~ReplySink() noexcept override {}
  void event(const gateway::AgentEvent&) override {}
  void finished(const gateway::AgentResult& result) override {
    if (fulfiller_->isWaiting()) fulfiller_->fulfill(gateway::AgentResult(result));
  }

 private:
  kj::Own<kj::PromiseFulfiller<gateway::AgentResult>> fulfiller_;
};

}  // namespace

bool isSessionTool(const std::string& tool) {
  return tool == "sessions_list" || tool == "sessions_history" || tool == "sessions_send";
}

std::string checkSessionToolArguments(const std::string& tool, const json& args) {
  uint32_t n = 0;
  if (tool == "sessions_list") return wholeNumber(args, "limit", 1, SESSIONS_LIST_MAX, n);
  if (auto problem = requiredString(args, "sessionKey", 256); !problem.empty()) return problem;
  if (tool == "sessions_history") return wholeNumber(args, "limit", 1, SESSIONS_HISTORY_MAX, n);
  if (auto problem = requiredString(args, "message", SESSIONS_SEND_MESSAGE_BYTES); !problem.empty())
    return problem;
  if (args["message"].get_ref<const std::string&>().find_first_not_of(" \t\r\n") ==
      std::string::npos)
    return "argument \"message\" must not be empty";
  return wholeNumber(args, "timeoutSeconds", 0, SESSIONS_SEND_MAX_TIMEOUT, n);
}

std::string sessionCallRefusal(const TurnFacts& turn, const std::string& tool,
                               const std::string& targetKey, const std::string& agentId) {
  if (tool == "sessions_list") return "";
  if (auto problem = checkSessionKey(targetKey); !problem.empty()) return "sessionKey: " + problem;
  if (targetKey.rfind("agent:" + agentId + ":", 0) != 0) {
    return "sessionKey: " + targetKey +
           " is a session of another agent; the session tools reach "
           "only this agent's sessions (agent:" +
           agentId + ":...)";
  }
  if (tool != "sessions_send") return "";
  if (targetKey == turn.sessionKey) {
    return "sessions_send cannot send to the calling session itself (" + targetKey +
           "); answer here instead";
  }
  if (!turn.sentFrom.empty()) {
    return "this turn was started by sessions_send from " + turn.sentFrom +
           ", and such a turn cannot send on to another session; answer here instead";
  }
  return "";
}

SessionTools::SessionTools(ToolExecutor& inner, SessionToolsHost& host,
                           const TranscriptStore& transcripts, PolicyHost& policy, kj::Timer& timer,
                           std::string agentId)
    : ToolDecorator(inner),
      host_(host),
      transcripts_(transcripts),
      policy_(policy),
      timer_(timer),
      agentId_(std::move(agentId)) {}

kj::Promise<ToolOutcome> SessionTools::run(const std::string& tool,
                                           const std::string& argumentsJson,
                                           const std::string& workspaceDir,
                                           const std::vector<std::string>& hiddenDirs,
                                           CallScope* scope) {
  if (!isSessionTool(tool)) return inner_.run(tool, argumentsJson, workspaceDir, hiddenDirs, scope);
  const TurnFacts* caller = scope == nullptr ? nullptr : scope->turn();
  // Only the guard runs these (it decided the call on the target): without its turn, nothing.
  if (caller == nullptr) {
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: " + tool + " runs only within a turn, through the guard"};
  }
  json args =
      json::parse(argumentsJson.empty() ? std::string("{}") : argumentsJson, nullptr, false);
  std::string problem =
      args.is_object() ? checkSessionToolArguments(tool, args) : "arguments must be a JSON object";
  if (problem.empty() && tool != "sessions_list") {
    problem = sessionCallRefusal(*caller, tool, args["sessionKey"].get<std::string>(), agentId_);
  }
  if (!problem.empty()) return ToolOutcome{ToolOutcome::Status::ERROR, "error: " + problem};
  if (tool == "sessions_list") return list(*caller, args);
  if (tool == "sessions_history") return history(args);
  return send(*caller, args);
}

ToolOutcome SessionTools::list(const TurnFacts& caller, const json& args) {
  uint32_t limit = SESSIONS_LIST_DEFAULT;
  (void)wholeNumber(args, "limit", 1, SESSIONS_LIST_MAX, limit);
  auto sessions = transcripts_.list();
  std::sort(sessions.begin(), sessions.end(),
            [](const auto& a, const auto& b) { return a.updatedAt > b.updatedAt; });
  std::string prefix = "agent:" + agentId_ + ":";
  std::vector<const TranscriptSummary*> shown;
  size_t hidden = 0;
  size_t beyondLimit = 0;
  bool fromOthers = false;
  for (const auto& s : sessions) {
    if (s.key.rfind(prefix, 0) != 0 || !checkSessionKey(s.key).empty()) continue;
    // Each candidate decided as the call was, on its own Session; an ask is no (nobody is asked
    // whether a line of a list may be shown).
    policy::Entity e = policy::sessionEntity(s.key);
    policy::Request request;
    request.principal = caller.principal;
    request.action = {"Action", "sessions_list"};
    request.resource = e.uid;
    request.context =
        policy::Value::record(policyContext(caller, false, policy::Value::record({})));
    if (policy_.decide(request, {{e.uid, e.attrs.asRecord(), e.parents}}).outcome !=
        policy::Outcome::ALLOW) {
      ++hidden;
      continue;
    }
    if (shown.size() >= limit) {
      ++beyondLimit;
      continue;
    }
    // A key names its sender or group: chosen on the platform by whoever that is.
    if (e.parents.empty() || !policy_.memberOf(e.parents[0], ownersGroup())) fromOthers = true;
    shown.push_back(&s);
  }
  std::string out =
      std::to_string(shown.size()) + " session(s) shown, " + std::to_string(hidden) +
      " hidden by the policy" +
      (beyondLimit > 0 ? ", " + std::to_string(beyondLimit) + " more past the limit" : "") +
      " (newest first; read one with sessions_history):";
  for (const auto* s : shown) {
    out += "\n- " + s->key + "  updated " + s->updatedAt + "  " + std::to_string(s->entries) +
           " entries" + (s->key == caller.sessionKey ? "  (this session)" : "");
  }
  ToolOutcome outcome{ToolOutcome::Status::OK, out};
  if (fromOthers) outcome.untrustedSource = "sessions_list: session keys named by other senders";
  return outcome;
}

ToolOutcome SessionTools::history(const json& args) {
  const std::string key = args["sessionKey"].get<std::string>();
  uint32_t limit = SESSIONS_HISTORY_DEFAULT;
  (void)wholeNumber(args, "limit", 1, SESSIONS_HISTORY_MAX, limit);
  auto entries = transcripts_.load(key);
  if (entries.empty()) {
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: there is no session " + key +
                           " (or it has no messages); sessions_list shows the ones you may read"};
  }
  size_t first = entries.size() > limit ? entries.size() - limit : 0;
  // Newest first into the byte budget, so the most recent entries are always there.
  std::vector<std::string> lines;
  size_t used = 0;
  size_t cutOff = 0;
  for (size_t i = entries.size(); i-- > first;) {
    std::string line = entryLine(entries[i]);
    if (used + line.size() + 1 > SESSIONS_OUTPUT_BYTES) {
      cutOff = i - first + 1;
      break;
    }
    used += line.size() + 1;
    lines.push_back(std::move(line));
  }
  std::vector<TranscriptEntry> shownEntries(entries.begin() + static_cast<long>(first + cutOff),
                                            entries.end());
  std::string out = "The last " + std::to_string(lines.size()) + " of " +
                    std::to_string(entries.size()) + " entries of " + key + ", oldest first" +
                    (cutOff > 0 ? " (" + std::to_string(cutOff) +
                                      " older ones left out: the output is limited to " +
                                      std::to_string(SESSIONS_OUTPUT_BYTES >> 10) + " KiB)"
                                : "") +
                    ":";
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) out += "\n" + *it;
  ToolOutcome outcome{ToolOutcome::Status::OK, out};
  // What the entries shown hold from outside, and whatever taints the session as it stands:
  // its content crosses into the reader's context with its taint.
  std::string source = untrustedSourceOf(shownEntries);
  if (source.empty()) source = untrustedSourceOf(replayWindow(std::move(entries)));
  if (!source.empty()) outcome.untrustedSource = "sessions_history of " + key + ": " + source;
  return outcome;
}

kj::Promise<ToolOutcome> SessionTools::send(const TurnFacts& caller, const json& args) {
  const std::string key = args["sessionKey"].get<std::string>();
  const std::string message = args["message"].get<std::string>();
  uint32_t timeout = SESSIONS_SEND_DEFAULT_TIMEOUT;
  (void)wholeNumber(args, "timeoutSeconds", 0, SESSIONS_SEND_MAX_TIMEOUT, timeout);
  // A session whose turn waits for a reply cannot run a turn now: the two would wait for
  // each other until both timed out.
  if (auto w = waiting_.find(key); w != waiting_.end() && w->second > 0) {
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: " + key +
                           " is itself waiting for a reply from another session; try again "
                           "when it has finished"};
  }
  auto facts = factsOfSession(key);
  facts->principal = caller.principal;
  facts->sentFrom = caller.sessionKey;
  // The message is what the caller's model wrote: from outside whenever its context is, and
  // whenever the caller is not an owner (as their own message would be).
  std::string untrusted;
  if (caller.tainted) {
    untrusted = "sessions_send from " + caller.sessionKey + " while " + caller.taintSource;
  } else if (!policy_.memberOf(caller.principal, ownersGroup())) {
    untrusted = "sessions_send from " + caller.sessionKey + " by " + caller.principal.str() +
                ", who is not an owner";
  }
  if (!untrusted.empty()) facts->taint(untrusted);

  auto paf = kj::newPromiseAndFulfiller<gateway::AgentResult>();
  auto started = host_.startSessionTurn(facts, message, untrusted,
                                        std::make_shared<ReplySink>(kj::mv(paf.fulfiller)));
  if (auto* error = std::get_if<gateway::UserError>(&started)) {
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: the turn in " + key + " could not start: " + error->message};
  }
  std::string runId = std::get<std::string>(started);
  std::string running = "sent to " + key + " (run " + runId +
                        "); its turn is still running: read its reply later with "
                        "sessions_history";
  if (timeout == 0) return ToolOutcome{ToolOutcome::Status::OK, running};

  std::string callerKey = caller.sessionKey;
  ++waiting_[callerKey];
  auto doneWaiting = kj::defer([this, callerKey]() {
    if (--waiting_[callerKey] == 0) waiting_.erase(callerKey);
  });
  auto reply = paf.promise.then([key, facts](gateway::AgentResult result) {
    ToolOutcome outcome;
    if (result.status() == "ok") {
      outcome.status = ToolOutcome::Status::OK;
      outcome.content =
          "reply from " + key + ":\n" + bounded(result.reply(), SESSIONS_OUTPUT_BYTES);
    } else {
      outcome.status = ToolOutcome::Status::ERROR;
      outcome.content =
          "error: the turn in " + key + " ended " + result.status() + ": " +
          bounded(result.error().empty() ? result.reply() : result.error(), SESSIONS_OUTPUT_BYTES);
    }
    // The target's context held untrusted content: so does what it answered.
    if (facts->tainted)
      outcome.untrustedSource = "sessions_send to " + key + ": " + facts->taintSource;
    return outcome;
  });
  auto late = timer_.afterDelay(timeout * kj::SECONDS).then([running]() {
    return ToolOutcome{ToolOutcome::Status::OK, running};
  });
  return reply.exclusiveJoin(kj::mv(late)).attach(kj::mv(doneWaiting));
}

}  // namespace chitin
