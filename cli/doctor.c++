// SPDX-License-Identifier: Apache-2.0
// `chitin doctor` (see doctor.h).
// Runs in: the invoking user's process

#include "doctor.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "account-setup.h"
#include "channel-kinds.h"
#include "config.h"
#include "display-text.h"
#include "home.h"
#include "gateway-client.h"
#include "libgit2-loader.h"
#include "remote-commands.h"

namespace chitin::cli {

namespace {

std::string readLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  return line;
}

std::string readAll(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Each finding is one line of display text: it can quote a peer (a gateway's close reason, a
// model API's error) or a path from the config.
struct Report {
  std::ostream& out;
  bool failed = false;
  void ok(const std::string& what) { out << "ok    " << displayLine(what) << "\n"; }
  void warn(const std::string& what, const std::string& fix) {
    out << "warn  " << displayLine(what) << "\n      fix: " << displayLine(fix) << "\n";
  }
  void fail(const std::string& what, const std::string& fix) {
    failed = true;
    out << "FAIL  " << displayLine(what) << "\n      fix: " << displayLine(fix) << "\n";
  }
};

size_t discard(char*, size_t size, size_t n, void*) { return size * n; }

void checkModel(Report& r) {
  ModelSettings m;
  try {
    HomeLayout home{defaultHomePath("")};
    config::ChitinConfig c;
    if (access(home.configPath().c_str(), R_OK) == 0) {
      c = parseConfig(readAll(home.configPath()), home.configPath());
    } else {
      c = parseConfig("", "(defaults)");
    }
    m = resolveModelSettings(c, processEnvironment(), readAll);
  } catch (const std::exception& e) {
    r.fail(std::string("model configuration: ") + e.what(),
           "correct chitin.conf or the CHITIN_MODEL_* variables");
    return;
  }
  if (!m.configured()) {
    r.warn("model: none configured (replies will say how to configure one)",
           "set model { provider: OPENAI|ANTHROPIC base_url: ... model: ... } in chitin.conf, or "
           "CHITIN_MODEL_PROVIDER, CHITIN_MODEL_BASE_URL, CHITIN_MODEL, CHITIN_MODEL_API_KEY");
    return;
  }
  // libcurl is loaded only here: linking it would cost every `chitin gateway` start ~10 ms of
  // library loading for a check that only `doctor` makes.
  void* lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    r.fail("model: cannot load libcurl to check the endpoint", "apt-get install libcurl4");
    return;
  }
  auto easyInit = reinterpret_cast<decltype(&curl_easy_init)>(dlsym(lib, "curl_easy_init"));
  auto easySetopt = reinterpret_cast<decltype(&curl_easy_setopt)>(dlsym(lib, "curl_easy_setopt"));
  auto easyPerform =
      reinterpret_cast<decltype(&curl_easy_perform)>(dlsym(lib, "curl_easy_perform"));
  auto easyGetinfo =
      reinterpret_cast<decltype(&curl_easy_getinfo)>(dlsym(lib, "curl_easy_getinfo"));
  auto easyCleanup =
      reinterpret_cast<decltype(&curl_easy_cleanup)>(dlsym(lib, "curl_easy_cleanup"));
  auto easyStrerror =
      reinterpret_cast<decltype(&curl_easy_strerror)>(dlsym(lib, "curl_easy_strerror"));
  CURL* curl = easyInit && easySetopt && easyPerform && easyGetinfo && easyCleanup && easyStrerror
                   ? easyInit()
                   : nullptr;
  if (curl == nullptr) {
    r.fail("model: libcurl failed to initialise", "reinstall libcurl4");
    dlclose(lib);
    return;
  }
  // Any HTTP answer means the endpoint is reachable; auth is the model worker's business.
  std::string url =
      m.baseUrl + (m.provider == config::ModelConfig::OPENAI ? "/models" : "/v1/models");
  easySetopt(curl, CURLOPT_URL, url.c_str());
  easySetopt(curl, CURLOPT_WRITEFUNCTION, discard);
  easySetopt(curl, CURLOPT_TIMEOUT, 5L);
  easySetopt(curl, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = easyPerform(curl);
  long status = 0;
  easyGetinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  easyCleanup(curl);
  std::string error = rc == CURLE_OK ? "" : easyStrerror(rc);
  dlclose(lib);
  std::string name = "model " + m.providerName() + " \"" + m.model + "\" at " + m.baseUrl;
  if (rc != CURLE_OK) {
    r.fail(name + ": unreachable (" + error + ")",
           "check the base URL and that the server is running and reachable from this machine");
  } else if (status == 401 || status == 403) {
    r.fail(name + ": reachable, but the API key was refused (HTTP " + std::to_string(status) + ")",
           "check CHITIN_MODEL_API_KEY or model.api_key_file");
  } else {
    r.ok(name + ": reachable (HTTP " + std::to_string(status) + ")");
  }
}

// Whether workers get cgroup v2 limits (memory, pids, cpu for each whole sandbox). Not having
// them is common and not a failure: rlimits and tmpfs caps hold either way; but the owner should
// know, and know how to get them.
void checkCgroups(Report& r, const spawn::SpawnerSettings& settings) {
  spawn::SystemSpawnOs os;
  spawn::Spawner spawner(settings, os);
  auto status = spawner.detectCgroups();
  if (status.inForce) {
    r.ok(
        "cgroup limits: in force for a gateway started like this command (memory.max, "
        "pids.max, cpu.max per worker under " +
        status.detail + ")");
  } else {
    r.warn("cgroup limits: NOT in force for a gateway started like this command: " + status.detail +
               ". Workers still have their rlimits and capped tmpfs, but a sandbox's total memory "
               "(all its processes and page cache) and CPU share are not bounded",
           status.fix);
  }
}

// Whether session workers are forked by the session profile's zygote here (fork_server), or each
// spawned by bwrap, and why: one real worker is started and killed. Either way each session has a
// sandbox of its own; forked ones cost a fifth of the memory and start faster.
// `spawner` says what it works around into `said`.
void checkForkServer(Report& r, spawn::Spawner& spawner, const std::vector<std::string>& said) {
  spawn::SpawnRequest request;
  request.profile = "session";
  try {
    auto worker = spawner.spawn(request);
    bool forked = worker.reporter != nullptr;
    spawn::killWorker(worker);
    spawn::waitForExit(worker);
    if (forked) {
      r.ok(
          "session workers: forked by one zygote of the session profile (fork_server), each in "
          "namespaces of its own");
    } else if (spawner.detectCgroups().inForce) {
      r.ok(
          "session workers: one bwrap each (cgroup limits are in force: each sandbox's cgroup "
          "holds it from its first page)");
    } else {
      r.warn("session workers: one bwrap each, the zygote could not serve" +
                 (said.empty() ? std::string() : ": " + said.front()),
             "each session still has a sandbox of its own, at about five times the memory; see "
             "the reason above");
    }
  } catch (const spawn::SandboxUnavailable& e) {
    r.fail(std::string("session workers: cannot start: ") + e.what(), "see the message above");
  } catch (const kj::Exception& e) {
    r.fail(std::string("session workers: cannot start: ") + e.getDescription().cStr(),
           "see the gateway's sandbox checks above");
  }
}

// Each configured channel account: what the gateway will check before starting its worker (the
// credential file, the hosts its options name, its sandbox profile), then, if a gateway
// answers, how its worker is doing.
void checkChannels(Report& r, const spawn::SpawnerSettings& settings) {
  HomeLayout home{defaultHomePath("")};
  config::ChitinConfig c;
  try {
    if (access(home.configPath().c_str(), R_OK) != 0) return;
    c = parseConfig(readAll(home.configPath()), home.configPath());
  } catch (const std::exception& e) {
    r.fail(std::string("channels: ") + e.what(), "correct chitin.conf");
    return;
  }
  if (c.channels().account_size() == 0) return;
  spawn::SystemSpawnOs os;
  for (const auto& a : c.channels().account()) {
    std::string name = "channel " + a.kind() + "/" + a.account();
    if (a.disabled()) {
      r.ok(name + ": disabled in chitin.conf");
      continue;
    }
    std::string path = a.credential_file().empty()
                           ? channels::defaultCredentialPath(home.root, a.kind(), a.account())
                           : a.credential_file();
    bool missing = false;
    std::string problem = channels::credentialProblem(path, geteuid(), missing);
    const channels::KindInfo* info = channels::kindInfo(a.kind());
    if (!problem.empty() && !(missing && info != nullptr && !info->credentialRequired))
      r.fail(name + ": " + problem, "chitin channels add " + a.kind() + " --account " +
                                        a.account() +
                                        " --token-file FILE, or fix the file as the message says");
    try {
      channels::egressRules(a, c.egress());
    } catch (const std::exception& e) {
      r.fail(name + ": " + e.what(), "correct its options in chitin.conf");
    }
    try {
      spawn::loadProfile(os, settings.profileDir, "channel-" + a.kind());
    } catch (const std::exception& e) {
      r.fail(name + ": no usable sandbox profile: " + e.what(),
             "this build has no " + a.kind() + " channel worker; remove the account or update");
    }
  }

  std::ostringstream sink;
  RemoteContext ctx{processEnvironment(), sink, sink, false};
  nlohmann::json status;
  if (runRequest(ctx, "channels.status", nlohmann::json::object(), false,
                 [&](const nlohmann::json& p, std::ostream&) { status = p; }) != 0)
    return;  // the gateway check below says why
  for (const auto& a : status.value("accounts", nlohmann::json::array())) {
    std::string name = "channel " + jsonString(a, "kind") + "/" + jsonString(a, "account");
    std::string state = jsonString(a, "state");
    std::string why = jsonString(a, "detail");
    std::string line = name + " in the gateway: " + state + (why.empty() ? "" : ": " + why);
    if (state == "connected" || state == "disabled") {
      r.ok(line + (jsonString(a, "identity").empty() ? "" : " as " + jsonString(a, "identity")));
    } else if (state == "failed") {
      r.fail(line, "fix what it says, then restart the gateway");
    } else if (state == "login_required") {
      r.warn(line, "chitin channels login " + jsonString(a, "kind"));
    } else {
      r.warn(line + (jsonUint(a, "restarts") > 0
                         ? " (restarted " + std::to_string(jsonUint(a, "restarts")) +
                               " times; last: " + jsonString(a, "lastExit") + ")"
                         : ""),
             "see `chitin channels status` and the gateway log");
    }
  }
}

}  // namespace

int runDoctor(const spawn::SpawnerSettings& settings, std::ostream& out) {
  Report r{out};

  if (access(settings.bwrapPath.c_str(), X_OK) == 0) {
    r.ok("bubblewrap: " + settings.bwrapPath);
  } else {
    r.fail("bubblewrap: not found at " + settings.bwrapPath, "apt-get install bubblewrap");
  }

  std::string clone = readLine("/proc/sys/kernel/unprivileged_userns_clone");
  std::string maxNs = readLine("/proc/sys/user/max_user_namespaces");
  std::string apparmor = readLine("/proc/sys/kernel/apparmor_restrict_unprivileged_userns");
  if (clone == "0") {
    r.fail("user namespaces: disabled for unprivileged users",
           "sysctl -w kernel.unprivileged_userns_clone=1 (and persist it in /etc/sysctl.d/)");
  } else if (maxNs == "0") {
    r.fail("user namespaces: user.max_user_namespaces is 0",
           "sysctl -w user.max_user_namespaces=15000");
  } else if (apparmor == "1") {
    r.warn("user namespaces: AppArmor restricts unprivileged user namespaces",
           "allow user namespaces for bwrap and chitin-supervisor (which gives each sandbox a "
           "pid namespace of its own) in AppArmor profiles, or sysctl -w "
           "kernel.apparmor_restrict_unprivileged_userns=0");
  } else {
    r.ok("user namespaces: available (max " + (maxNs.empty() ? std::string("?") : maxNs) + ")");
  }

  if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0) {
    r.ok("seccomp: supported by the kernel");
  } else {
    r.fail("seccomp: not supported by this kernel",
           "use a kernel built with CONFIG_SECCOMP_FILTER");
  }

  if (geteuid() == 0) {
    r.warn("sandbox: not tried as root (chitin never runs workers as uid 0)",
           "run `chitin doctor` as the service user, or start the gateway with --user NAME");
  } else {
    std::vector<std::string> said;
    spawn::SpawnerSettings quiet = settings;
    quiet.warn = [&said](const std::string& message) { said.push_back(message); };
    spawn::SystemSpawnOs os;
    spawn::Spawner spawner(quiet, os);
    if (auto problem = spawner.checkAvailable()) {
      r.fail("sandbox: a test worker could not start: " + *problem, "see the message above");
    } else {
      r.ok("sandbox: a test worker started under bwrap + seccomp");
      checkForkServer(r, spawner, said);
    }
  }

  checkCgroups(r, settings);
  // The gateway starts without libgit2 (it is loaded for the first snapshot), so only this says
  // before the first tool call that snapshots, and every call that needs one, would fail.
  if (std::string problem = audit::loadLibgit2(); problem.empty()) {
    r.ok(std::string("snapshots: libgit2 loads (") + audit::libgit2Soname() + ")");
  } else {
    std::string soname = audit::libgit2Soname();  // libgit2.so.1.5 is Debian's libgit2-1.5
    r.fail("snapshots: " + problem + "; no tool call that changes the workspace can run",
           "apt-get install libgit2-" + soname.substr(soname.rfind(".so.") + 4));
  }
  checkModel(r);
  checkChannels(r, settings);

  std::ostringstream sink;
  RemoteContext ctx{processEnvironment(), sink, sink, false};
  int health = runHealth(false, ctx);
  if (health == 0) {
    r.ok("gateway: answering");
  } else {
    std::string why = sink.str();
    while (!why.empty() && why.back() == '\n') why.pop_back();
    r.warn("gateway: " + (why.empty() ? std::string("not answering") : why),
           "start it with `chitin gateway` (or scripts/run)");
  }
  return r.failed ? 1 : 0;
}

}  // namespace chitin::cli
