// SPDX-License-Identifier: Apache-2.0
// `chitin pairing|approvals|rollback|policy reload` (see control-commands.h).
// Runs in: CLI (the invoking user's process, unprivileged)

#include "control-commands.h"

#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "gateway-client.h"

namespace chitin::cli {
namespace {

using nlohmann::json;

int usageError(RemoteContext& ctx, const std::string& problem) {
  ctx.err << "chitin: " << problem << "\n";
  return EXIT_USAGE;
}

void printPairing(const json& p, std::ostream& out) {
  json list = p.value("requests", json::array());
  if (list.empty()) {
    out << "no pending pairing requests\n";
    return;
  }
  out << "CODE      CHANNEL     SENDER                EXPIRES\n";
  for (const json& r : list) {
    out << std::left << std::setw(8) << jsonString(r, "code") << "  " << std::setw(10)
        << jsonString(r, "channel") << "  " << std::setw(20) << jsonString(r, "sender") << "  "
        << jsonString(r, "expiresAt") << "\n";
  }
}

void printPairingDecision(const json& d, std::ostream& out) {
  if (jsonString(d, "decision") == "approved") {
    out << "paired: " << jsonString(d, "principal") << " is now in " << jsonString(d, "parent")
        << "\n";
  } else {
    out << "denied: " << jsonString(d, "principal") << "\n";
  }
}

void printApprovals(const json& p, std::ostream& out) {
  json list = p.value("approvals", json::array());
  if (list.empty()) {
    out << "no pending approvals\n";
    return;
  }
  for (const json& a : list) {
    out << jsonString(a, "id") << "  code " << jsonString(a, "code") << "  "
        << jsonString(a, "sessionKey") << "  expires " << jsonString(a, "expiresAt") << "\n    "
        << jsonString(a, "description") << "\n";
  }
}

void printResolved(const json& r, std::ostream& out) {
  out << jsonString(r, "decision") << ": " << jsonString(r, "tool") << " (" << jsonString(r, "id")
      << ") in " << jsonString(r, "sessionKey") << "\n";
}

void printRollback(const json& r, std::ostream& out) {
  json files = r.value("files", json::array());
  out << "restored the workspace to its state before audit record " << jsonUint(r, "toSeq")
      << " (snapshot " << jsonString(r, "snapshot").substr(0, 12) << "); " << files.size()
      << " file(s) changed; recorded as audit record " << jsonUint(r, "auditSeq") << "\n";
  for (const json& f : files) {
    const char* what = jsonString(f, "after").empty()    ? "removed"
                       : jsonString(f, "before").empty() ? "restored"
                                                         : "reverted";
    out << "  " << what << " " << jsonString(f, "path") << "\n";
  }
  json left = r.value("notRestored", json::array());
  if (!left.empty()) out << left.size() << " path(s) not restored (left as they were):\n";
  for (const json& n : left)
    out << "  not restored: " << jsonString(n, "path") << ": " << jsonString(n, "reason") << "\n";
}

void printReload(const json& r, std::ostream& out) {
  if (jsonBool(r, "ok")) {
    out << "policy reloaded: " << jsonUint(r, "policies") << " policies in force\n";
  } else {
    out << "policy NOT reloaded, the previous policy stays:\n" << jsonString(r, "error") << "\n";
  }
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
    if ((sub == "approve" || sub == "deny") && args.size() == 2)
      return runRequest(ctx, "approval.resolve", {{"id", args[1]}, {"decision", sub}}, asJson,
                        printResolved);
    return usageError(ctx,
                      "expected `approvals list`, `approvals approve ID|CODE` or "
                      "`approvals deny ID|CODE`");
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

  if (command == "policy-reload") {
    if (!args.empty()) return usageError(ctx, "policy reload takes no arguments");
    return runRequest(ctx, "policy.reload", json::object(), asJson, printReload, "ok");
  }
  return usageError(ctx, "unknown command \"" + command + "\"");
}

}  // namespace chitin::cli
