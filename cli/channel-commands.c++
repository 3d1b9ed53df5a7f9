// SPDX-License-Identifier: Apache-2.0
// `chitin channels status | login` (see channel-commands.h).
// Runs in: CLI (the invoking user's process, unprivileged)

#include "channel-commands.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "display-text.h"
#include "gateway-client.h"

extern char** environ;

namespace chitin::cli {
namespace {

using nlohmann::json;

bool printStatus(const json& p, std::ostream& out) {
  json accounts = p.value("accounts", json::array());
  if (accounts.empty()) {
    out << "no channel accounts configured (add one: chitin channels add KIND ...)\n";
    return true;
  }
  bool allWell = true;
  for (const json& a : accounts) {
    std::string state = shown(a, "state");
    allWell = allWell && state != "failed";
    std::string name = shown(a, "kind") + "/" + shown(a, "account");
    out << std::left << std::setw(22) << name << " " << std::setw(14) << state << " "
        << shown(a, "identity", "-") << (jsonBool(a, "running") ? "" : "  (no worker running)")
        << "\n";
    // Details come from the worker (the platform's words): shown as display text.
    if (!jsonString(a, "detail").empty()) out << "    " << shown(a, "detail") << "\n";
    if (!jsonString(a, "since").empty()) out << "    since " << shown(a, "since") << "\n";
    if (jsonUint(a, "restarts") > 0 || !jsonString(a, "lastExit").empty())
      out << "    restarts " << jsonUint(a, "restarts")
          << ", last exit: " << shown(a, "lastExit", "-") << "\n";
    std::string reach;
    for (const json& e : a.value("egress", json::array()))
      if (e.is_string()) reach += (reach.empty() ? "" : ", ") + displayLine(e.get<std::string>());
    if (!reach.empty()) out << "    may reach " << reach << "\n";
  }
  return allWell;
}

int login(const std::vector<std::string>& args, RemoteContext& ctx, const QrRenderer& renderQr) {
  if (args.size() < 2) return usageError(ctx, "expected `channels login KIND [--account ID]`");
  json params = {{"kind", args[1]}, {"account", "default"}, {"waitSeconds", 30}};
  int timeoutSeconds = 300;
  for (size_t i = 2; i < args.size(); ++i) {
    bool more = i + 1 < args.size();
    if (args[i] == "--account" && more) {
      params["account"] = args[++i];
    } else if (args[i] == "--phone" && more) {
      params["phoneNumber"] = args[++i];
    } else if (args[i] == "--timeout" && more) {
      const std::string& t = args[++i];
      if (t.empty() || t.size() > 5 || t.find_first_not_of("0123456789") != std::string::npos)
        return usageError(ctx, "--timeout: expected seconds, got \"" + displayLine(t) + "\"");
      timeoutSeconds = std::stoi(t);
    } else {
      return usageError(ctx, "channels login: unknown argument \"" + displayLine(args[i]) + "\"");
    }
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);
  return withGateway(ctx, [&](GatewayClient& client) {
    uint64_t after = 0;
    for (;;) {
      params["after"] = after;
      Response res = client.request("channels.login", params, 45000);
      if (!res.ok) return requestFailed("channels.login", res, ctx.err);
      const json& p = res.payload;
      std::string state = jsonString(p, "state");
      uint64_t seq = jsonUint(p, "seq");
      if (seq > after) {
        after = seq;
        if (!jsonString(p, "pairingCode").empty()) {
          ctx.out << "pairing code: " << shown(p, "pairingCode")
                  << "\n(on the phone: Linked devices > Link a device > Link with phone number)\n";
        } else if (!jsonString(p, "qr").empty()) {
          ctx.out << "Scan this with the phone (Linked devices > Link a device); it is replaced "
                     "every few seconds:\n";
          ctx.out.flush();
          if (!renderQr(jsonString(p, "qr"), ctx.out))
            ctx.out << "(install the Debian package qrencode to see it as a QR code; its "
                       "payload:)\n"
                    << shown(p, "qr") << "\n";
        }
        ctx.out.flush();
      }
      if (state == "connected") {
        ctx.out << "logged in" << (after == 0 ? " (it already was)" : "") << "\n";
        return static_cast<int>(EXIT_OK);
      }
      if (state == "failed" || state == "disabled") {
        ctx.err << "chitin: the account " << state << ": " << shown(p, "detail", "-") << "\n";
        return static_cast<int>(EXIT_FAILED);
      }
      if (std::chrono::steady_clock::now() > deadline) {
        ctx.err << "chitin: not logged in after " << timeoutSeconds
                << " s (state: " << displayLine(state) << ")\n";
        return static_cast<int>(EXIT_FAILED);
      }
    }
  });
}

}  // namespace

bool renderQrWithQrencode(const std::string& payload, std::ostream& out) {
  // The payload goes in on stdin: argv is readable by every local user.
  int in[2], outPipe[2];
  if (pipe2(in, O_CLOEXEC) != 0) return false;
  if (pipe2(outPipe, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return false;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], 0);
  posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  const char* argv[] = {"qrencode", "-t", "UTF8", "-o", "-", nullptr};
  pid_t pid;
  int rc = posix_spawnp(&pid, "qrencode", &actions, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(in[0]);
  close(outPipe[1]);
  if (rc != 0) {
    close(in[1]);
    close(outPipe[0]);
    return false;
  }
  bool wrote = write(in[1], payload.data(), payload.size()) == static_cast<ssize_t>(payload.size());
  close(in[1]);
  std::string drawn;
  char buf[4096];
  for (ssize_t n; (n = read(outPipe[0], buf, sizeof(buf))) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    drawn.append(buf, static_cast<size_t>(n));
  }
  close(outPipe[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!wrote || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || drawn.empty()) return false;
  out << drawn;
  return true;
}

int runChannelsCommand(const std::vector<std::string>& argsIn, RemoteContext& ctx,
                       const QrRenderer& renderQr) {
  std::vector<std::string> args;
  bool asJson = false;
  for (const auto& a : argsIn) {
    if (a == "--json")
      asJson = true;
    else
      args.push_back(a);
  }
  std::string sub = args.empty() ? "" : args[0];
  if (sub == "status" && args.size() == 1) {
    bool allWell = true;
    int code = runRequest(ctx, "channels.status", json::object(), asJson,
                          [&](const json& p, std::ostream& out) { allWell = printStatus(p, out); });
    return code == EXIT_OK && !allWell ? static_cast<int>(EXIT_FAILED) : code;
  }
  if (sub == "login") return login(args, ctx, renderQr);
  return usageError(ctx,
                    "expected `channels status` or `channels login KIND [--account ID] "
                    "[--phone NUMBER]`");
}

}  // namespace chitin::cli
