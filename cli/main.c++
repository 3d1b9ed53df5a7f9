// SPDX-License-Identifier: Apache-2.0
// `chitin`: the one command people type. Commands that act (agent, status, health, sessions)
// talk to the gateway and link nothing else, so a one-shot command starts in milliseconds; the
// commands that need the supervisor's code (gateway, sandbox explain, doctor) exec
// `chitin-supervisor` in place, so `chitin gateway` is still the supervisor, in the foreground,
// with the same pid.
// Runs in: the invoking user's process

#include <chitin-build-config.h>
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "channel-commands.h"
#include "control-commands.h"
#include "remote-commands.h"

namespace {

using chitin::cli::EXIT_USAGE;

const char USAGE[] = R"(usage: chitin COMMAND [options]

  gateway [--port N] [--user NAME] [--quiet]
                          run the supervisor and gateway in the foreground
  agent -m TEXT [--session KEY] [--json] [--timeout SECONDS]
                          send one message to the assistant and print the reply
  status [--json]         gateway, model and session status
  health [--json]         is the gateway up
  sessions [--json]       list sessions (tainted: their history holds content from outside)
  sessions reset KEY      start a session over (its transcript is archived, not deleted)
  sessions show KEY       the transcript a session replays (--json: as the gateway sends it)
  sandbox explain PROFILE [--hide PATH]...
                          print the bwrap command line and seccomp allowlist of a profile

  policy check            parse and validate every policy file (exit 2 with file:line:col)
  policy explain --principal E --action A --resource E [--context JSON]
                          the decision for one request, and which policies made it
  policy test FILE        check expected decisions (exit 1 on any mismatch)
  policy reload           make the running gateway load changed policies (also: SIGHUP)
  pairing list | approve CODE [--user NAME | --group NAME] | deny CODE
                          senders on chat channels waiting to be let in
  approvals list | show ID | approve ID | deny ID
                          tool calls waiting for your confirmation; `show` prints the whole
                          call (every argument in full, escaped)
  audit verify | tail [-n N] [-f] | show SEQ|--session KEY|--since TIME
                          read and verify the audit log ($CHITIN_HOME/state/audit)
  rollback --to SEQ | --last [--session KEY]
                          restore the workspace as it was before a tool call
  channels list | add KIND [--account ID] (--token-file F | --token-stdin)
             [--option KEY=VALUE]... [--egress HOST:PORT]... | remove KIND [--account ID]
                          chat platform accounts in chitin.conf and their credential files
  channels status [--json] | login KIND [--account ID] [--phone NUMBER]
                          the running channel workers; WhatsApp's QR code login
  skills list | info NAME | check [--agent NAME]
                          skills from the workspace, $CHITIN_HOME/skills and the bundled ones:
                          which the agent can use, why not, and broken skill folders
  skills install DIR [--yes]
                          show a skill folder's files and front matter, ask, then install it
                          into $CHITIN_HOME/skills (audited, snapshotted; stop the gateway first)
  memory status | index [--agent NAME]
                          the agent's memory index: files, chunks, size, last update, stale
                          files; `index` brings it up to date (no gateway needed)
  memory search QUERY [--max N] [--agent NAME]
                          search MEMORY.md and memory/ (path:lines, score, snippet) as the
                          agent's memory_search does, through the running gateway (by meaning
                          too with model.embedding_model); without one, here, by keywords
  doctor                  check bubblewrap, user namespaces, seccomp, the model and the gateway
  version                 print the version

Connection: CHITIN_GATEWAY_URL / CHITIN_GATEWAY_TOKEN, else $CHITIN_HOME (default ~/.chitin).
Exit codes: 0 ok, 1 the assistant or a tool failed, 2 usage or config error, 3 gateway unreachable.
)";

int usage(const std::string& problem) {
  if (!problem.empty()) std::cerr << "chitin: " << problem << "\n\n";
  std::cerr << USAGE;
  return EXIT_USAGE;
}

// `gateway`, `sandbox` and `doctor` run in the supervisor binary: next to this one in the build
// tree, in libexec when installed.
int execSupervisor(char** argv) {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string exeDir = n > 0 ? std::string(buf, n) : "";
  exeDir = exeDir.substr(0, exeDir.rfind('/'));
  std::string path = exeDir + "/chitin-supervisor";
  if (access(path.c_str(), X_OK) != 0)
    path = std::string(CHITIN_INSTALL_LIBEXEC) + "/chitin-supervisor";
  argv[0] = const_cast<char*>("chitin");
  execv(path.c_str(), argv);
  std::cerr << "chitin: cannot run " << path << ": " << strerror(errno) << "\n";
  return EXIT_USAGE;
}

bool parseUint(const std::string& s, unsigned long max, unsigned long& out) {
  if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos)
    return false;
  out = std::stoul(s);
  return out <= max;
}

int cmdAgent(const std::vector<std::string>& args) {
  chitin::cli::AgentOptions o;
  bool haveMessage = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "-m" || a == "--message") && i + 1 < args.size()) {
      o.message = args[++i];
      haveMessage = true;
    } else if (a == "--session" && i + 1 < args.size()) {
      o.sessionKey = args[++i];
    } else if (a == "--json") {
      o.json = true;
    } else if (a == "--timeout" && i + 1 < args.size()) {
      unsigned long t;
      if (!parseUint(args[++i], 86400, t))
        return usage("--timeout: expected seconds, got \"" + args[i] + "\"");
      o.timeoutSeconds = static_cast<int>(t);
    } else {
      return usage("agent: unknown argument \"" + a + "\"");
    }
  }
  if (!haveMessage || o.message.empty()) return usage("agent: -m TEXT is required");
  chitin::cli::RemoteContext ctx{chitin::cli::processEnvironment(), std::cout, std::cerr};
  return chitin::cli::runAgent(o, ctx);
}

int cmdSimple(const std::string& name, const std::vector<std::string>& args) {
  bool json = false;
  for (auto& a : args) {
    if (a == "--json")
      json = true;
    else
      return usage(name + ": unknown argument \"" + a + "\"");
  }
  chitin::cli::RemoteContext ctx{chitin::cli::processEnvironment(), std::cout, std::cerr};
  if (name == "status") return chitin::cli::runStatus(json, ctx);
  if (name == "health") return chitin::cli::runHealth(json, ctx);
  return chitin::cli::runSessions(json, ctx);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage("");
  std::string cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "gateway" || cmd == "sandbox" || cmd == "doctor" || cmd == "audit" ||
      cmd == "skills" || cmd == "memory")
    return execSupervisor(argv);
  if (cmd == "policy") {
    if (rest.size() >= 1 && rest[0] == "reload") {
      chitin::cli::RemoteContext ctx{chitin::cli::processEnvironment(), std::cout, std::cerr};
      return chitin::cli::runControlCommand(
          "policy-reload", std::vector<std::string>(rest.begin() + 1, rest.end()), ctx);
    }
    return execSupervisor(argv);
  }
  if (cmd == "channels") {
    // status and login ask the running gateway; list, add and remove edit local files.
    if (!rest.empty() && (rest[0] == "status" || rest[0] == "login")) {
      chitin::cli::RemoteContext ctx{chitin::cli::processEnvironment(), std::cout, std::cerr};
      return chitin::cli::runChannelsCommand(rest, ctx);
    }
    return execSupervisor(argv);
  }
  if (cmd == "pairing" || cmd == "approvals" || cmd == "rollback") {
    chitin::cli::RemoteContext ctx{chitin::cli::processEnvironment(), std::cout, std::cerr};
    return chitin::cli::runControlCommand(cmd, rest, ctx);
  }
  if (cmd == "agent") return cmdAgent(rest);
  if (cmd == "sessions" && !rest.empty() && (rest[0] == "reset" || rest[0] == "show")) {
    chitin::cli::RemoteContext ctx{chitin::cli::processEnvironment(), std::cout, std::cerr};
    return chitin::cli::runControlCommand(
        "sessions-" + rest[0], std::vector<std::string>(rest.begin() + 1, rest.end()), ctx);
  }
  if (cmd == "status" || cmd == "health" || cmd == "sessions") return cmdSimple(cmd, rest);
  if (cmd == "version" || cmd == "--version") {
    std::cout << "chitin " << CHITIN_VERSION << "\n";
    return 0;
  }
  if (cmd == "help" || cmd == "--help" || cmd == "-h") {
    std::cout << USAGE;
    return 0;
  }
  return usage("unknown command \"" + cmd + "\"");
}
