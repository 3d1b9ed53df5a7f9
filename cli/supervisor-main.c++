// SPDX-License-Identifier: Apache-2.0
// `chitin-supervisor`: the binary behind `chitin gateway`, `chitin sandbox explain` and
// `chitin doctor` (the `chitin` CLI execs it in place). It carries the supervisor, the spawner
// and their libraries, which the one-shot commands have no use for.
// Runs in: supervisor (`gateway`), or the invoking user's process (`sandbox`, `doctor`)

#include <chitin-build-config.h>
#include <limits.h>
#include <pwd.h>
#include <unistd.h>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <string>
#include <vector>

#include <fstream>
#include <sstream>

#include "allowlists.h"
#include "audit-cli.h"
#include "channel-kinds.h"
#include "channels-cli.h"
#include "config.h"
#include "doctor.h"
#include "home.h"
#include "gateway-client.h"
#include "memory-cli.h"
#include "policy-cli.h"
#include "remote-commands.h"
#include "skills-cli.h"
#include "spawner.h"
#include "supervisor.h"

namespace {

constexpr int EXIT_USAGE = 2;

int usage(const std::string& problem) {
  std::cerr << "chitin: " << problem << "\n(see `chitin help`)\n";
  return EXIT_USAGE;
}

bool isDir(const std::string& p) { return access(p.c_str(), X_OK) == 0; }

// Where the shipped files are: next to a build-tree binary, or the install prefix.
struct Layout {
  std::string profileDir, workerDir, webRoot, policyDir, skillsDir;
};

Layout findLayout() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  std::string exeDir = n > 0 ? std::string(buf, n) : "";
  exeDir = exeDir.substr(0, exeDir.rfind('/'));
  // Spelled without "..": ${WORKER_DIR} in a profile must be a plain absolute path, and a
  // channel worker's profile mounts things from beneath it.
  std::string buildDir = exeDir.substr(0, exeDir.rfind('/'));
  Layout l;
  if (!buildDir.empty() &&
      isDir(buildDir + "/workers")) {  // build tree: build/cli/chitin-supervisor
    l.workerDir = buildDir + "/workers";
    l.profileDir = std::string(CHITIN_SOURCE_ROOT) + "/sandbox-profiles";
    l.webRoot = std::string(CHITIN_SOURCE_ROOT) + "/web";
    l.policyDir = std::string(CHITIN_SOURCE_ROOT) + "/policies";
    l.skillsDir = std::string(CHITIN_SOURCE_ROOT) + "/skills";
  } else {
    l.workerDir = CHITIN_INSTALL_LIBEXEC;
    l.profileDir = std::string(CHITIN_INSTALL_DATA) + "/sandbox-profiles";
    l.webRoot = std::string(CHITIN_INSTALL_DATA) + "/web";
    l.policyDir = std::string(CHITIN_INSTALL_DATA) + "/policies";
    l.skillsDir = std::string(CHITIN_INSTALL_DATA) + "/skills";
  }
  if (const char* p = getenv("CHITIN_PROFILE_DIR")) l.profileDir = p;
  if (const char* p = getenv("CHITIN_WORKER_DIR")) l.workerDir = p;
  if (const char* p = getenv("CHITIN_POLICY_DIR")) l.policyDir = p;
  if (const char* p = getenv("CHITIN_SKILLS_DIR")) l.skillsDir = p;
  return l;
}

bool parsePort(const std::string& s, uint16_t& out) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos)
    return false;
  unsigned long v = std::stoul(s);
  out = static_cast<uint16_t>(v);
  return v <= 65535;
}

int cmdGateway(const std::vector<std::string>& args) {
  chitin::GatewayCommand c;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--port" && i + 1 < args.size()) {
      uint16_t port;
      if (!parsePort(args[++i], port))
        return usage("--port: expected 0..65535, got \"" + args[i] + "\"");
      c.port = port;
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
  c.policyDir = l.policyDir;
  c.skillsDir = l.skillsDir;
  return chitin::runGateway(c);
}

// Which hosts the profile's workers may reach, from this user's chitin.conf (and the
// CHITIN_MODEL_* environment, as the gateway would see them). The API key is never read.
std::string explainEgress(const std::string& profile) {
  chitin::HomeLayout home{chitin::defaultHomePath("")};
  chitin::config::ChitinConfig config;
  std::string baseUrl;
  try {
    std::ifstream in(home.configPath());
    std::stringstream text;
    if (in) text << in.rdbuf();
    config = chitin::parseConfig(text.str(), home.configPath());
    auto noKey = [](const std::string&) { return std::string(); };
    baseUrl = chitin::resolveModelSettings(config, chitin::processEnvironment(), noKey).baseUrl;
  } catch (const std::exception& e) {
    return std::string("egress allowlists: cannot read the config: ") + e.what() + "\n";
  }
  const std::string prefix = "channel-";
  if (profile.rfind(prefix, 0) != 0)
    return chitin::egress::explainAllowlists(profile, config, baseUrl, nullptr);
  // A channel account's allowlist as its worker gets it: the platform's hosts, the hosts its
  // options name and its own list (supervisor/channels/channel-kinds.h).
  std::string kind = profile.substr(prefix.size()), out;
  for (const auto& account : config.channels().account()) {
    if (account.kind() != kind || account.disabled()) continue;
    out += "  channel:" + kind + ":" + account.account() + ":\n";
    try {
      for (const auto& rule : chitin::channels::egressRules(account, config.egress()))
        out += "    " + rule.text() + "  (" + rule.origin +
               (rule.privateOk ? "; a private address is allowed for it" : "") + ")\n";
    } catch (const std::exception& e) {
      out += "    cannot be computed: " + std::string(e.what()) + "\n";
    }
  }
  if (out.empty()) out = "  no enabled " + kind + " account in chitin.conf\n";
  return "egress allowlists (from chitin.conf; every resolved address is checked, the gateway's "
         "port is always refused):\n" +
         out;
}

int cmdSandbox(const std::vector<std::string>& args) {
  // `--hide PATH` (repeatable): what a call that hides PATH compiles to (SpawnRequest::hide).
  std::vector<std::string> hide;
  bool shape = args.size() >= 2 && args[0] == "explain";
  for (size_t i = 2; shape && i < args.size(); i += 2) {
    shape = args[i] == "--hide" && i + 1 < args.size();
    if (shape) hide.push_back(args[i + 1]);
  }
  if (!shape) return usage("sandbox: expected `sandbox explain PROFILE [--hide PATH]...`");
  Layout l = findLayout();
  chitin::spawn::SystemSpawnOs os;
  chitin::spawn::Spawner spawner({"/usr/bin/bwrap", l.profileDir, l.workerDir}, os);
  try {
    // No values: variables are shown as ${NAME} (a placeholder like "$CHITIN_HOME/..." would be
    // refused as an unclean path, and `explain exec` would fail).
    std::cout << spawner.explain(args[1], {}, hide);
  } catch (const std::exception& e) {
    std::cerr << "chitin sandbox explain: " << e.what() << "\n";
    return EXIT_USAGE;
  }
  std::cout << "\n" << explainEgress(args[1]);
  return 0;
}

// `chitin policy check|explain|test`: the same files the gateway loads (the shipped policies
// unless chitin.conf leaves them out, and $CHITIN_HOME/policies), read locally so an auditor
// needs no running gateway.
int cmdPolicy(const std::vector<std::string>& args) {
  chitin::HomeLayout home{chitin::defaultHomePath("")};
  bool shipped = true;
  std::ifstream in(home.configPath());
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    try {
      shipped = chitin::parseConfig(text.str(), home.configPath()).policy().include_shipped();
    } catch (const chitin::ConfigError& e) {
      std::cerr << "chitin policy: config error: " << e.what() << "\n";
      return EXIT_USAGE;
    }
  }
  chitin::policy::PolicyCliEnv env;
  if (shipped) env.policyDirs.push_back(findLayout().policyDir);
  env.policyDirs.push_back(home.policiesDir());
  env.entitiesFile = home.entitiesPath();
  return chitin::policy::policyCommand(args, env, std::cout, std::cerr);
}

int cmdAudit(const std::vector<std::string>& args) {
  chitin::HomeLayout home{chitin::defaultHomePath("")};
  return chitin::audit::auditCommand(args, home.auditDir(), std::cout, std::cerr);
}

// `chitin skills`: read locally, like `chitin policy`; the install is recorded in the audit log
// under the invoking Unix user's name.
int cmdSkills(const std::vector<std::string>& args) {
  const passwd* pw = getpwuid(getuid());
  std::string who = "unix:" + (pw ? std::string(pw->pw_name) : std::to_string(getuid()));
  chitin::skills::SkillsCliEnv env{chitin::defaultHomePath(""), findLayout().skillsDir, std::cin,
                                   isatty(STDIN_FILENO) == 1, "User::\"" + who + "\""};
  return chitin::skills::skillsCommand(args, env, std::cout, std::cerr);
}

// memory.search on the running gateway (gateway.url and gateway.token of $CHITIN_HOME, as for
// `chitin status`); not reached when none runs. Connection problems are not shown: the search
// then runs here.
chitin::memory::GatewayMemoryAnswer askGatewayMemory(const chitin::memory::MemoryCliRequest& r) {
  chitin::memory::GatewayMemoryAnswer answer;
  std::ostringstream quiet;
  chitin::cli::RemoteContext ctx{chitin::cli::processEnvironment(), quiet, quiet, false};
  chitin::cli::withGateway(ctx, [&](chitin::cli::GatewayClient& client) {
    answer.reached = true;
    answer.text = "no answer";  // until one comes (a timeout or a dropped connection throws)
    // The worker's wall clock (120 s) bounds the search; the embeddings take at most 40 s.
    auto res =
        client.request("memory.search", {{"query", r.query}, {"maxResults", r.maxResults}}, 130000);
    answer.ok = res.ok;
    answer.text = res.ok ? chitin::cli::jsonString(res.payload, "answerJson")
                         : res.errorCode + ": " + res.errorMessage;
    return 0;
  });
  return answer;
}

// `chitin memory`: the real memory worker in its shipped profile, started here (no gateway
// needed). Root becomes the home's owner first: workers never run as root, and the index stays
// the service user's.
int cmdMemory(const std::vector<std::string>& args) {
  chitin::HomeLayout home{chitin::defaultHomePath("")};
  std::string agent = "main";
  std::ifstream in(home.configPath());
  if (in) {
    std::stringstream text;
    text << in.rdbuf();
    try {
      agent = chitin::parseConfig(text.str(), home.configPath()).agent().id();
    } catch (const chitin::ConfigError& e) {
      std::cerr << "chitin memory: config error: " << e.what() << "\n";
      return EXIT_USAGE;
    }
  }
  try {
    chitin::becomeHomeOwner(home.root);
  } catch (const std::exception& e) {
    std::cerr << "chitin memory: " << e.what() << "\n";
    return 1;
  }
  // The worker's log lines (and the spawner's) go to stderr, warnings only: stdout is the answer.
  spdlog::set_default_logger(spdlog::stderr_color_st("chitin"));
  spdlog::set_level(spdlog::level::warn);
  Layout l = findLayout();
  chitin::spawn::SpawnerSettings settings{"/usr/bin/bwrap", l.profileDir, l.workerDir};
  chitin::memory::MemoryCliEnv env{
      home.root, agent,
      [settings](const chitin::memory::MemoryCliRequest& request, const std::string& workspace,
                 const std::string& stateDir) {
        return chitin::memory::runMemoryWorker(settings, request, workspace, stateDir);
      },
      askGatewayMemory};
  return chitin::memory::memoryCommand(args, env, std::cout, std::cerr);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) return usage("expected gateway, sandbox or doctor");
  std::string cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (cmd == "gateway") return cmdGateway(rest);
  if (cmd == "sandbox") return cmdSandbox(rest);
  if (cmd == "policy") return cmdPolicy(rest);
  if (cmd == "audit") return cmdAudit(rest);
  if (cmd == "skills") return cmdSkills(rest);
  if (cmd == "memory") return cmdMemory(rest);
  if (cmd == "channels") {
    chitin::channels::ChannelsCliEnv env{chitin::defaultHomePath(""), std::cin};
    return chitin::channels::channelsCommand(rest, env, std::cout, std::cerr);
  }
  if (cmd == "doctor") {
    if (!rest.empty()) return usage("doctor takes no arguments");
    Layout l = findLayout();
    return chitin::cli::runDoctor({"/usr/bin/bwrap", l.profileDir, l.workerDir}, std::cout);
  }
  return usage("unknown command \"" + cmd + "\"");
}
