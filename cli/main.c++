// SPDX-License-Identifier: Apache-2.0
// `chitin`: the one CLI binary. `chitin gateway` runs the supervisor in the foreground; every
// other acting command talks to it through the gateway (the CLI never reads channel tokens or
// model keys).
// Runs in: the invoking user's process; `chitin gateway` becomes the supervisor.

#include <chitin-build-config.h>
#include <limits.h>
#include <unistd.h>

#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "doctor.h"
#include "remote-commands.h"
#include "spawner.h"
#include "supervisor.h"

namespace {

using chitin::cli::EXIT_USAGE;

const char USAGE[] = R"(usage: chitin COMMAND [options]

  gateway [--port N] [--user NAME] [--quiet]
                          run the supervisor and gateway in the foreground
  agent -m TEXT [--session KEY] [--json] [--timeout SECONDS]
                          send one message to the assistant and print the reply
  status [--json]         gateway, model and session status
  health [--json]         is the gateway up
  sessions [--json]       list sessions
  sandbox explain PROFILE print the bwrap command line and seccomp allowlist of a profile
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

bool isDir(const std::string& p) { return access(p.c_str(), X_OK) == 0; }

// Where the shipped files are: next to a build-tree binary, or the install prefix.
struct Layout {
  std::string profileDir, workerDir, webRoot;
};

Layout findLayout() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string exeDir = n > 0 ? std::string(buf, n) : "";
  exeDir = exeDir.substr(0, exeDir.rfind('/'));
  Layout l;
  if (isDir(exeDir + "/../workers")) {  // build tree: build/cli/chitin
    l.workerDir = exeDir + "/../workers";
    l.profileDir = std::string(CHITIN_SOURCE_ROOT) + "/sandbox-profiles";
    l.webRoot = std::string(CHITIN_SOURCE_ROOT) + "/web";
  } else {
    l.workerDir = CHITIN_INSTALL_LIBEXEC;
    l.profileDir = std::string(CHITIN_INSTALL_DATA) + "/sandbox-profiles";
    l.webRoot = std::string(CHITIN_INSTALL_DATA) + "/web";
  }
  if (const char* p = getenv("CHITIN_PROFILE_DIR")) l.profileDir = p;
  if (const char* p = getenv("CHITIN_WORKER_DIR")) l.workerDir = p;
  return l;
}

bool parseUint(const std::string& s, unsigned long max, unsigned long& out) {
  if (s.empty() || s.size() > 10 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  out = std::stoul(s);
  return out <= max;
}

int cmdGateway(const std::vector<std::string>& args) {
  chitin::GatewayCommand c;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--port" && i + 1 < args.size()) {
      unsigned long port;
      if (!parseUint(args[++i], 65535, port)) return usage("--port: expected 0..65535, got \"" + args[i] + "\"");
      c.port = static_cast<uint16_t>(port);
    } else if (a == "--user" && i + 1 < args.size()) {
      c.user = args[++i];
    } else if (a == "--quiet") {
      c.quiet = true;
    } else {
      return usage("gateway: unknown argument \"" + a + "\"");
    }
  }
  Layout l = findLayout();
  c.profileDir = l.profileDir;
  c.workerDir = l.workerDir;
  c.webRoot = l.webRoot;
  return chitin::runGateway(c);
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
      if (!parseUint(args[++i], 86400, t)) return usage("--timeout: expected seconds, got \"" + args[i] + "\"");
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
    if (a == "--json") json = true;
    else return usage(name + ": unknown argument \"" + a + "\"");
  }
  chitin::cli::RemoteContext ctx{chitin::cli::processEnvironment(), std::cout, std::cerr};
  if (name == "status") return chitin::cli::runStatus(json, ctx);
  if (name == "health") return chitin::cli::runHealth(json, ctx);
  return chitin::cli::runSessions(json, ctx);
}

int cmdSandbox(const std::vector<std::string>& args) {
  if (args.size() != 2 || args[0] != "explain") return usage("sandbox: expected `sandbox explain PROFILE`");
  Layout l = findLayout();
  chitin::spawn::SystemSpawnOs os;
  chitin::spawn::Spawner spawner({"/usr/bin/bwrap", l.profileDir, l.workerDir}, os);
  try {
    std::cout << spawner.explain(args[1], {{"WORKSPACE", "$CHITIN_HOME/workspace/main"}});
  } catch (const std::exception& e) {
    std::cerr << "chitin sandbox explain: " << e.what() << "\n";
    return EXIT_USAGE;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage("");
  std::string cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "gateway") return cmdGateway(rest);
  if (cmd == "agent") return cmdAgent(rest);
  if (cmd == "status" || cmd == "health" || cmd == "sessions") return cmdSimple(cmd, rest);
  if (cmd == "sandbox") return cmdSandbox(rest);
  if (cmd == "doctor") {
    Layout l = findLayout();
    return chitin::cli::runDoctor({"/usr/bin/bwrap", l.profileDir, l.workerDir}, std::cout);
  }
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
