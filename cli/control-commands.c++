// SPDX-License-Identifier: Apache-2.0
// `chitin pairing|approvals|rollback|policy reload` (see control-commands.h).
// Runs in: CLI (the invoking user's process, unprivileged)

#include "control-commands.h"

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "display-text.h"
#include "gateway-client.h"

namespace chitin::cli {
namespace {

using nlohmann::json;

void printPairing(const json& p, std::ostream& out) {
  json list = p.value("requests", json::array());
  if (list.empty()) {
    out << "no pending pairing requests\n";
    return;
  }
  // Sender ids come from chat platforms: whoever is asking chose them.
  out << "CODE      CHANNEL     SENDER                EXPIRES\n";
  for (const json& r : list) {
    out << std::left << std::setw(8) << shown(r, "code") << "  " << std::setw(10)
        << shown(r, "channel") << "  " << std::setw(20) << shown(r, "sender") << "  "
        << shown(r, "expiresAt") << "\n";
  }
}

void printPairingDecision(const json& d, std::ostream& out) {
  if (jsonString(d, "decision") == "approved") {
    out << "paired: " << shown(d, "principal") << " is now in " << shown(d, "parent") << "\n";
  } else {
    out << "denied: " << shown(d, "principal") << "\n";
  }
}

// The gateway's description and full call are display text already (escaped by the
// supervisor, see proto/gateway.proto): shown AS_IS, so nothing is escaped twice, and a control
// that is still in them is escaped all the same.
std::string shownDisplayText(const json& a, const char* key, DisplayLayout layout) {
  return displayText(jsonString(a, key), {layout, DisplayBackslashes::AS_IS});
}

void printApprovals(const json& p, std::ostream& out) {
  json list = p.value("approvals", json::array());
  if (list.empty()) {
    out << "no pending approvals\n";
    return;
  }
  for (const json& a : list) {
    out << shown(a, "id") << "  code " << shown(a, "code") << "  " << shown(a, "sessionKey")
        << "  expires " << shown(a, "expiresAt") << "\n    "
        << shownDisplayText(a, "description", DisplayLayout::LINE) << "\n";
  }
}

// `approvals show`: who asks, why, and the whole call, every argument in full.
void printApproval(const json& a, std::ostream& out) {
  std::string id = shown(a, "id"), policies;
  for (const json& p : a.value("policies", json::array()))
    if (p.is_string())
      policies += (policies.empty() ? "" : ", ") + displayLine(p.get<std::string>());
  out << "approval " << id << "  code " << shown(a, "code") << "\n"
      << "session   " << shown(a, "sessionKey", "-") << "\n"
      << "principal " << shown(a, "principal", "-") << "\n"
      << "asked     " << shown(a, "requestedAt", "-") << "  expires " << shown(a, "expiresAt", "-")
      << "\n"
      << "policies  " << (policies.empty() ? "-" : policies) << "\n"
      << "fingerprint " << shown(a, "fingerprint", "-") << "\n\n";
  std::string full = shownDisplayText(a, "fullCall", DisplayLayout::BLOCK);
  if (full.empty()) {
    // A gateway from before full calls: the arguments as it sent them, escaped here.
    full = "tool: " + shown(a, "tool") + "\narguments: " +
           displayText(jsonString(a, "argumentsJson"),
                       {DisplayLayout::LINE, DisplayBackslashes::AS_IS}) +
           "\n";
  }
  out << full << (full.back() == '\n' ? "" : "\n") << "\napprove: chitin approvals approve " << id
      << "   deny: chitin approvals deny " << id << "\n";
}

void printResolved(const json& r, std::ostream& out) {
  out << shown(r, "decision") << ": " << shown(r, "tool") << " (" << shown(r, "id") << ") in "
      << shown(r, "sessionKey") << "\n";
}

void printRollback(const json& r, std::ostream& out) {
  json files = r.value("files", json::array());
  out << "restored the workspace to its state before audit record " << jsonUint(r, "toSeq")
      << " (snapshot " << displayLine(jsonString(r, "snapshot").substr(0, 12)) << "); "
      << files.size() << " file(s) changed; recorded as audit record " << jsonUint(r, "auditSeq")
      << "\n";
  for (const json& f : files) {
    const char* what = jsonString(f, "after").empty()    ? "removed"
                       : jsonString(f, "before").empty() ? "restored"
                                                         : "reverted";
    out << "  " << what << " " << shown(f, "path") << "\n";  // a name the model chose
  }
  json left = r.value("notRestored", json::array());
  if (!left.empty()) out << left.size() << " path(s) not restored (left as they were):\n";
  for (const json& n : left)
    out << "  not restored: " << jsonString(n, "path") << ": " << jsonString(n, "reason") << "\n";
}

void printSessionReset(const json& r, std::ostream& out) {
  out << "reset " << shown(r, "sessionKey") << ": " << jsonUint(r, "messages")
      << " entries archived as " << shown(r, "archivedAs")
      << (jsonBool(r, "wasTainted") ? " (it was tainted; it is not any more)" : "") << "\n";
}

// `sessions show KEY`: the transcript the session replays, oldest first, as display text
// (content from chats and tools may hold terminal controls).
void printTranscript(const json& h, std::ostream& out) {
  json messages =
      h.contains("messages") && h["messages"].is_array() ? h["messages"] : json::array();
  out << "session " << shown(h, "sessionKey") << ": " << messages.size() << " entries\n";
  for (const json& m : messages) {
    std::string role = shown(m, "role");
    if (!jsonString(m, "toolCallId").empty()) role += " " + shown(m, "toolCallId");
    out << "[" << shown(m, "ts", "-") << "] " << role << ":";
    std::string content = jsonString(m, "content");
    if (!content.empty()) out << "\n" << displayBlock(content);
    out << "\n";
    if (m.contains("toolCalls") && m["toolCalls"].is_array()) {
      for (const json& c : m["toolCalls"]) {
        out << "  -> " << shown(c, "name") << " " << shown(c, "id") << " "
            << displayLine(jsonString(c, "argumentsJson")) << "\n";
      }
    }
  }
}

void printReload(const json& r, std::ostream& out) {
  if (jsonBool(r, "ok")) {
    out << "policy reloaded: " << jsonUint(r, "policies") << " policies in force\n";
  } else {
    out << "policy NOT reloaded, the previous policy stays:\n"
        << displayBlock(jsonString(r, "error")) << "\n";
  }
}

// `approvals show ID|CODE`: the pending approval with this id, or this code (any case), whole
// (approval.get). Exit 1 if there is none.
int showApproval(RemoteContext& ctx, const std::string& wanted, bool asJson) {
  return runRequest(ctx, "approval.get", {{"id", wanted}}, false,
                    [&](const json& a, std::ostream& out) {
                      if (asJson)
                        out << jsonForTerminal(a, 2) << "\n";
                      else
                        printApproval(a, out);
                    });
}

bool parseSeq(const std::string& s, uint64_t& out) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos)
    return false;
  out = std::stoull(s);
  return out > 0;
}

}  // namespace

int runControlCommand(const std::string& command, const std::vector<std::string>& argsIn,
                      RemoteContext& ctx) {
  std::vector<std::string> args;
  bool asJson = false;
  for (const auto& a : argsIn) {
    if (a == "--json") {
      asJson = true;
    } else {
      args.push_back(a);
    }
  }
  std::string sub = args.empty() ? "" : args[0];

  if (command == "pairing") {
    if (sub == "list" && args.size() == 1)
      return runRequest(ctx, "pairing.list", json::object(), asJson, printPairing);
    if ((sub == "approve" || sub == "deny") && args.size() >= 2) {
      json params = {{"code", args[1]}};
      for (size_t i = 2; i < args.size(); ++i) {
        if ((args[i] == "--user" || args[i] == "--group") && i + 1 < args.size() &&
            sub == "approve") {
          params[args[i].substr(2)] = args[i + 1];
          ++i;
        } else {
          return usageError(ctx, "pairing " + sub + ": unknown argument \"" + args[i] + "\"");
        }
      }
      int code = runRequest(ctx, sub == "approve" ? "pairing.approve" : "pairing.deny", params,
                            asJson, printPairingDecision);
      if (code == EXIT_OK && sub == "approve" && !asJson)
        ctx.err << "(the policy now decides what this sender may do; see `chitin policy "
                   "explain`)\n";
      return code;
    }
    return usageError(ctx,
                      "expected `pairing list`, `pairing approve CODE [--user NAME | --group "
                      "NAME]` or `pairing deny CODE`");
  }

  if (command == "approvals") {
    if (sub == "list" && args.size() == 1)
      return runRequest(ctx, "approvals.list", json::object(), asJson, printApprovals);
    if (sub == "show" && args.size() == 2) return showApproval(ctx, args[1], asJson);
    if ((sub == "approve" || sub == "deny") && args.size() == 2)
      return runRequest(ctx, "approval.resolve", {{"id", args[1]}, {"decision", sub}}, asJson,
                        printResolved);
    return usageError(ctx,
                      "expected `approvals list`, `approvals show ID|CODE`, "
                      "`approvals approve ID|CODE` or `approvals deny ID|CODE`");
  }

  if (command == "rollback") {
    json params = json::object();
    for (size_t i = 0; i < args.size(); ++i) {
      uint64_t seq;
      if (args[i] == "--to" && i + 1 < args.size()) {
        if (!parseSeq(args[++i], seq))
          return usageError(
              ctx, "rollback --to: expected an audit record number, got \"" + args[i] + "\"");
        params["seq"] = seq;
      } else if (args[i] == "--last") {
        params["last"] = true;
      } else if (args[i] == "--session" && i + 1 < args.size()) {
        params["sessionKey"] = args[++i];
      } else {
        return usageError(ctx, "rollback: unknown argument \"" + args[i] + "\"");
      }
    }
    if (params.contains("seq") == params.contains("last"))
      return usageError(ctx, "rollback: give exactly one of --to SEQ or --last");
    return runRequest(ctx, "workspace.rollback", params, asJson, printRollback);
  }

  if (command == "sessions-reset") {
    if (args.size() != 1) return usageError(ctx, "expected `sessions reset KEY`");
    return runRequest(ctx, "sessions.reset", {{"sessionKey", args[0]}}, asJson, printSessionReset);
  }

  if (command == "sessions-show") {
    if (args.size() != 1) return usageError(ctx, "expected `sessions show KEY`");
    return runRequest(ctx, "chat.history", {{"sessionKey", args[0]}, {"limit", 1000}}, asJson,
                      printTranscript);
  }

  if (command == "policy-reload") {
    if (!args.empty()) return usageError(ctx, "policy reload takes no arguments");
    return runRequest(ctx, "policy.reload", json::object(), asJson, printReload, "ok");
  }
  return usageError(ctx, "unknown command \"" + command + "\"");
}

}  // namespace chitin::cli
