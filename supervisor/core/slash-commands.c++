// SPDX-License-Identifier: Apache-2.0
// Slash commands: parsing, the policy decision and each command's answer (see slash-commands.h).
// Runs in: supervisor

#include "slash-commands.h"

#include <algorithm>
#include <cctype>
#include <deque>
#include <set>

namespace chitin {

namespace {

struct CommandInfo {
  const char* name;
  const char* usage;
  const char* what;
};

constexpr CommandInfo COMMANDS[] = {
    {"status", "/status", "this session, the model and the gateway"},
    {"new", "/new", "start this session over (the old conversation is archived, not deleted)"},
    {"reset", "/reset", "the same as /new"},
    {"stop", "/stop", "abort the turn running in this session"},
    {"model", "/model", "show the model"},
    {"compact", "/compact [instructions]", "summarize older turns now (they stay on disk)"},
    {"approve", "/approve CODE", "confirm an action the assistant asked about"},
    {"deny", "/deny CODE", "refuse an action the assistant asked about"},
    {"whoami", "/whoami", "your sender id, principal and groups as the policy sees them"},
    {"help", "/help", "this list"},
};

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && isSpace(s[b])) ++b;
  while (e > b && isSpace(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

}  // namespace

std::optional<SlashCommand> parseSlashCommand(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && isSpace(text[i])) ++i;
  if (i >= text.size() || text[i] != '/') return std::nullopt;
  ++i;
  size_t start = i;
  // Command words are short: anything longer is not one of ours, nor a typo worth a help text.
  while (i < text.size() && i - start <= 32 &&
         (isalnum(static_cast<unsigned char>(text[i])) || text[i] == '_' || text[i] == '-')) {
    ++i;
  }
  if (i == start || i - start > 32) return std::nullopt;
  if (!isalpha(static_cast<unsigned char>(text[start]))) return std::nullopt;
  if (i < text.size() && !isSpace(text[i])) return std::nullopt;  // "/etc/hosts", "/x.y"
  SlashCommand command;
  for (size_t k = start; k < i; ++k) {
    command.name += static_cast<char>(tolower(static_cast<unsigned char>(text[k])));
  }
  command.args = trim(text.substr(i));
  return command;
}

std::string slashHelpText() {
  std::string out = "Commands (at the start of a message):\n";
  for (const auto& c : COMMANDS) out += std::string(c.usage) + " - " + c.what + "\n";
  out.pop_back();
  return out;
}

SlashCommands::SlashCommands(SlashHost& host, PolicyHost& policy, audit::AuditLog& audit,
                             ApprovalBook& approvals, std::string agentId)
    : host_(host),
      policy_(policy),
      audit_(audit),
      approvals_(approvals),
      agentId_(std::move(agentId)) {}

bool SlashCommands::allowed(const char* action, const SlashCommand& command,
                            const TurnFacts& facts) {
  policy::Request request;
  request.principal = facts.principal;
  request.action = {"Action", action};
  request.resource = {"Agent", agentId_};
  policy::Value::Record args;
  args["name"] = policy::Value::string(command.name);
  args["args"] = policy::Value::string(command.args);
  request.context =
      policy::Value::record(policyContext(facts, /*confirmed=*/false, policy::Value::record(args)));
  policy::Verdict verdict = policy_.decide(request);
  audit::Record r;
  r.set_kind(audit::DECISION);
  r.set_session(facts.sessionKey);
  r.set_principal(facts.principal.str());
  r.set_tool(action);
  r.set_detail("/" + command.name);
  r.mutable_decision()->set_outcome(policy::outcomeName(verdict.outcome));
  for (auto& p : verdict.policies) r.mutable_decision()->add_policies(p);
  for (auto& e : verdict.errors) r.mutable_decision()->add_errors(e);
  audit_.appendOrLog(std::move(r), false);
  // A command answers at once: one that would need a confirmation is not allowed.
  return verdict.outcome == policy::Outcome::ALLOW;
}

SlashAnswer SlashCommands::run(const SlashCommand& command, const TurnFacts& facts,
                               const std::string& sender) {
  bool isAnswer = command.name == "approve" || command.name == "deny";
  if (!allowed(isAnswer ? "approve" : "command", command, facts)) {
    return {"You are not allowed to use /" + command.name + " here.", std::nullopt};
  }
  if (command.name == "whoami") return {whoami(facts, sender), std::nullopt};
  if (command.name == "compact") {
    if (!host_.status().model_configured()) {
      return {
          "No model is configured, so nothing can summarize the conversation: set "
          "model.provider and model.model in chitin.conf.",
          std::nullopt};
    }
    return {"", command.args};
  }
  return {answer(command, facts), std::nullopt};
}

std::string SlashCommands::answer(const SlashCommand& command, const TurnFacts& facts) {
  const std::string& name = command.name;
  if (name == "status") return status(facts);
  if (name == "new" || name == "reset") return reset(command, facts);
  if (name == "model") return model(command);
  if (name == "help") return slashHelpText();
  if (name == "stop") {
    size_t stopped = host_.stopSession(facts.sessionKey);
    if (stopped == 0) return "Nothing is running in this session.";
    return "Stopped " + std::to_string(stopped) + (stopped == 1 ? " run." : " runs.");
  }
  if (name == "approve" || name == "deny") {
    if (command.args.empty()) return "Usage: /" + name + " CODE";
    auto resolved = approvals_.resolve(command.args, name == "approve", facts.principal.id);
    if (auto* error = std::get_if<gateway::UserError>(&resolved)) return error->message;
    auto& r = std::get<gateway::ApprovalResolved>(resolved);
    return std::string(name == "approve" ? "Approved" : "Denied") + ": " + r.tool() + " (" +
           r.id() + ").";
  }
  return "Unknown command /" + name + ".\n" + slashHelpText();
}

std::string SlashCommands::status(const TurnFacts& facts) {
  auto state = host_.sessionState(facts.sessionKey);
  auto gw = host_.status();
  std::string out = "Session: " + facts.sessionKey + "\n";
  out += "Messages: " + std::to_string(state.messages);
  if (state.running) out += " (a turn is running";
  if (state.queued > 0)
    out += std::string(state.running ? ", " : " (") + std::to_string(state.queued) + " queued";
  if (state.running || state.queued > 0) out += ")";
  out += "\n";
  out += "Tainted: " +
         (state.untrustedSource.empty() ? std::string("no")
                                        : "yes (" + state.untrustedSource +
                                              "): writes, commands and sends ask the owner first") +
         "\n";
  out += "Model: " +
         (gw.model_configured() ? gw.model() + " (" + gw.model_provider() + ")"
                                : std::string("none configured")) +
         "\n";
  out += "Sandbox: " + gw.sandbox() + "\n";
  out += "Gateway: chitin " + gw.version() + ", up " + std::to_string(gw.uptime_ms() / 1000) +
         " s, " + std::to_string(gw.active_sessions()) + " active sessions";
  return out;
}

std::string SlashCommands::reset(const SlashCommand& command, const TurnFacts& facts) {
  auto result = host_.resetSession(facts.sessionKey, facts.principal);
  if (auto* error = std::get_if<gateway::UserError>(&result)) {
    return "/" + command.name + " failed: " + error->message;
  }
  const std::string& archived = std::get<std::string>(result);
  if (archived.empty()) return "This session is already new: there was nothing to archive.";
  return "Started a new session. The old conversation is archived as " + archived + ".";
}

std::string SlashCommands::model(const SlashCommand& command) {
  auto gw = host_.status();
  if (!gw.model_configured()) {
    return "No model is configured: set model.provider and model.model in chitin.conf.";
  }
  std::string current = gw.model() + " (" + gw.model_provider() + ")";
  if (command.args.empty() || command.args == gw.model()) return "Model: " + current;
  // The model worker is started with one provider and one model: the config names no others a
  // session could switch to, so none is offered rather than a switch that would not happen.
  return "Model: " + current + ". \"" + command.args +
         "\" is not available: this instance's config names one model (model.model in "
         "chitin.conf), so sessions cannot switch.";
}

std::string SlashCommands::whoami(const TurnFacts& facts, const std::string& sender) {
  std::string out = "Sender: " + (sender.empty() ? facts.principal.id : sender) +
                    (facts.channel == "local" ? "" : " on " + facts.channel) + "\n";
  out += "Principal: " + facts.principal.str() + "\n";
  // Everything the principal is `in` for the policy: parents, transitively, in the order met.
  std::vector<std::string> groups;
  std::set<std::string> seen;
  std::deque<policy::EntityUid> todo{facts.principal};
  while (!todo.empty() && seen.size() < 256) {
    auto uid = todo.front();
    todo.pop_front();
    for (auto& parent : policy_.parentsOf(uid)) {
      if (seen.insert(parent.str()).second) {
        groups.push_back(parent.str());
        todo.push_back(parent);
      }
    }
  }
  std::string list;
  for (auto& g : groups) list += (list.empty() ? "" : ", ") + g;
  out += "Member of: " + (list.empty() ? std::string("nothing (not in the entity store)") : list) +
         "\n";
  out += "Session: " + facts.sessionKey;
  return out;
}

}  // namespace chitin
