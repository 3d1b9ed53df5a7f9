// SPDX-License-Identifier: Apache-2.0
// The `browser` tool (see browser-tool.h).
// Runs in: supervisor

#include "browser-tool.h"

#include <fcntl.h>
#include <kj/debug.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>

#include "browser.capnp.h"
#include "rules.h"
#include "utf8.h"
#include "worker-host.h"

namespace chitin {

namespace {

using nlohmann::json;
using Action = rpc::BrowserRequest::Action;

constexpr size_t MAX_URL_BYTES = 8 << 10;
constexpr size_t MAX_TYPED_BYTES = 64 << 10;

const std::pair<const char*, Action> ACTIONS[] = {
    {"navigate", Action::NAVIGATE}, {"snapshot", Action::SNAPSHOT},
    {"click", Action::CLICK},       {"type", Action::TYPE},
    {"press", Action::PRESS},       {"screenshot", Action::SCREENSHOT},
    {"tabs", Action::TABS},         {"close", Action::CLOSE},
};

// The `ref` argument as the number the snapshot printed: 12, "12" or "[12]"; 0 if it is none.
uint32_t refOf(const json& ref) {
  if (ref.is_number_unsigned() && ref.get<uint64_t>() <= UINT32_MAX)
    return static_cast<uint32_t>(ref.get<uint64_t>());
  if (ref.is_number_integer() && ref.get<int64_t>() > 0 && ref.get<int64_t>() <= UINT32_MAX)
    return static_cast<uint32_t>(ref.get<int64_t>());
  if (!ref.is_string()) return 0;
  std::string s = ref.get<std::string>();
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) return 0;
  return static_cast<uint32_t>(std::stoul(s));
}

const std::string* stringArg(const json& args, const char* key) {
  auto it = args.find(key);
  return it != args.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

bool present(const json& args, const char* key) {
  auto it = args.find(key);
  return it != args.end() && !it->is_null();
}

// openat2 beneath `dirFd`, refusing every symlink on the way (a planted link is never followed,
// even one that stays inside the workspace: the file lands where the name says or nowhere).
long openNoLinks(int dirFd, const char* path, uint64_t flags, uint64_t mode) {
  struct open_how how {};
  how.flags = flags;
  how.mode = mode;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return syscall(SYS_openat2, dirFd, path, &how, sizeof(how));
}

std::string utcStamp() {
  struct timespec now {};
  clock_gettime(CLOCK_REALTIME, &now);
  struct tm tm {};
  gmtime_r(&now.tv_sec, &tm);
  char text[64];
  strftime(text, sizeof(text), "%Y-%m-%dT%H-%M-%S", &tm);
  char millis[24];
  snprintf(millis, sizeof(millis), ".%03ldZ", now.tv_nsec / 1000000);
  return std::string(text) + millis;
}

// The agent's profile directory, created private; refused if anything on the way is a symlink
// or not ours (a planted link would put this agent's cookies, or another's, somewhere else).
std::string ensureProfileDir(const std::string& stateDir, const std::string& agentId) {
  for (char c : agentId) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'))
      throw std::runtime_error("agent id \"" + agentId + "\" is not usable as a directory name");
  }
  if (agentId.empty()) throw std::runtime_error("the agent id is empty");
  std::string path = stateDir;
  for (const std::string& part : {std::string("browser"), agentId}) {
    path += "/" + part;
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
      throw std::runtime_error("cannot create " + path + ": " + strerror(errno));
    struct stat st {};
    if (lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
      throw std::runtime_error(path + " is not a directory of the service user");
    if ((st.st_mode & 0777) != 0700 && chmod(path.c_str(), 0700) != 0)
      throw std::runtime_error("cannot make " + path + " private: " + strerror(errno));
  }
  return path;
}

ToolOutcome errorOutcome(std::string text) {
  return ToolOutcome{ToolOutcome::Status::ERROR, "error: " + std::move(text)};
}

}  // namespace

std::string checkBrowserArguments(const json& args) {
  const std::string* action = stringArg(args, "action");
  if (action == nullptr)
    return "missing required argument \"action\" (one of navigate, snapshot, click, type, press, "
           "screenshot, tabs, close)";
  bool known = false;
  for (const auto& [name, value] : ACTIONS) known = known || *action == name;
  if (!known)
    return "argument \"action\": expected one of navigate, snapshot, click, type, press, "
           "screenshot, tabs, close; got \"" +
           clipUtf8(*action, 40) + "\"";
  for (const char* key : {"url", "text", "key"}) {
    if (present(args, key) && stringArg(args, key) == nullptr)
      return std::string("argument \"") + key + "\" must be a string";
    if (const std::string* s = stringArg(args, key); s && s->find('\0') != std::string::npos)
      return std::string("argument \"") + key + "\" contains a NUL byte";
  }
  if (*action == "navigate") {
    const std::string* url = stringArg(args, "url");
    if (url == nullptr) return "action \"navigate\" needs argument \"url\" (an http(s) URL)";
    if (url->size() > MAX_URL_BYTES) return "argument \"url\" is longer than 8 KiB";
    try {
      egress::urlRule(*url, "argument \"url\"");
    } catch (const egress::RuleError& e) {
      return e.what();
    }
  }
  if (*action == "click" || *action == "type") {
    if (!present(args, "ref"))
      return "action \"" + *action + "\" needs argument \"ref\" (a number from the last snapshot)";
    if (refOf(args["ref"]) == 0)
      return "argument \"ref\" must be a positive number from the last snapshot, e.g. 12";
  }
  if (*action == "type") {
    const std::string* text = stringArg(args, "text");
    if (text == nullptr) return "action \"type\" needs argument \"text\" (a string)";
    if (text->size() > MAX_TYPED_BYTES) return "argument \"text\" is longer than 64 KiB";
  }
  if (*action == "press") {
    const std::string* key = stringArg(args, "key");
    if (key == nullptr || key->empty() || key->size() > 32)
      return "action \"press\" needs argument \"key\" (a key name such as \"Enter\", \"Tab\" or "
             "\"a\")";
  }
  return "";
}

std::string safeFileName(const std::string& suggested) {
  std::string name = suggested.substr(
      suggested.find_last_of('/') == std::string::npos ? 0 : suggested.find_last_of('/') + 1);
  for (char& c : name) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) c = '_';
  }
  // Cut first, then drop leading dots: the last 100 bytes of a long name may begin with one.
  if (name.size() > 100) name = name.substr(name.size() - 100);
  while (!name.empty() && name.front() == '.') name.erase(0, 1);
  return name.empty() ? "download" : name;
}

std::string writeBeneathWorkspace(const std::string& workspaceDir, const std::string& dir,
                                  const std::string& name, const std::string& data) {
  int root = ::open(workspaceDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return "the workspace cannot be opened";
  KJ_DEFER(::close(root));
  if (mkdirat(root, dir.c_str(), 0755) != 0 && errno != EEXIST)
    return "cannot create " + dir + "/: " + strerror(errno);
  long sub = openNoLinks(root, dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (sub < 0) return dir + "/ is not a plain directory of the workspace: " + strerror(errno);
  KJ_DEFER(::close(static_cast<int>(sub)));
  long fd = openNoLinks(static_cast<int>(sub), name.c_str(),
                        O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return "cannot create " + dir + "/" + name + ": " + strerror(errno);
  KJ_DEFER(::close(static_cast<int>(fd)));
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(static_cast<int>(fd), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return "cannot write " + dir + "/" + name + ": " + strerror(errno);
    done += static_cast<size_t>(n);
  }
  return "";
}

// ---------------------------------------------------------------------------------------------

// Which call may load documents now: the one running, if any. Shared with the gate object,
// which the RPC system may keep a little longer than the session. Outside the anonymous namespace
// because BrowserTool::Session holds one.
struct BrowserGateState {
  CallScope* current = nullptr;
  // Between calls: the last call's decider, for the connections a page's scripts go on making.
  CallScope::ConnectionDecider afterwards;
};

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class Gate final : public rpc::NavigationGate::Server {
 public:
  explicit Gate(std::shared_ptr<BrowserGateState> state) : state_(std::move(state)) {}

 protected:
  kj::Promise<void> decide(DecideContext context) override {
    auto results = context.getResults();
    auto raw = context.getParams().getUrl();
    std::string url(raw.begin(), raw.size());
    std::string reason;
    if (state_->current == nullptr) {
      // A page's timer or refresh between calls: nobody is there to decide for.
      reason = "no browser call is running";
    } else if (url.size() > MAX_URL_BYTES) {
      reason = "the URL is longer than 8 KiB";
    } else {
      // Non-http(s) schemes (file:, chrome:, data: documents) are refused by the scope before
      // the policy is asked; every decision is audited there.
      reason = state_->current->decideHost("browse", url, Initiator::PAGE);
    }
    results.setAllowed(reason.empty());
    results.setReason(reason);
    return kj::READY_NOW;
  }

 private:
  std::shared_ptr<BrowserGateState> state_;
};
#pragma GCC diagnostic pop

}  // namespace

struct BrowserTool::Session {
  std::string key;
  uint64_t generation = 0;
  std::shared_ptr<BrowserGateState> gate = std::make_shared<BrowserGateState>();
  // Destroyed in reverse: the client first, then the worker (killed), then its endpoint.
  std::unique_ptr<egress::Endpoint> endpoint;
  kj::Own<WorkerHost> host;
  rpc::BrowserWorker::Client client = nullptr;
  bool busy = false;
  kj::Promise<void> watch = nullptr;
  kj::Promise<void> idle = nullptr;
};

BrowserTool::BrowserTool(ToolExecutor& inner, uv_loop_t* loop, kj::AsyncIoContext& io,
                         spawn::Spawner& spawner, egress::Broker& broker,
                         BrowserToolSettings settings)
    : ToolDecorator(inner),
      loop_(loop),
      io_(io),
      spawner_(spawner),
      broker_(broker),
      settings_(std::move(settings)),
      tasks_(taskErrors_) {}

BrowserTool::~BrowserTool() noexcept(false) { shutdown(); }

void BrowserTool::shutdown() {
  for (auto& [key, session] : sessions_) {
    session->gate->current = nullptr;
    session->gate->afterwards = nullptr;
  }
  sessions_.clear();
}

void BrowserTool::forget(const std::string& key, uint64_t generation, const std::string& why) {
  auto it = sessions_.find(key);
  if (it == sessions_.end() || it->second->generation != generation) return;
  spdlog::info("session {}: browser stopped ({})", key, why);
  it->second->gate->current = nullptr;
  it->second->gate->afterwards = nullptr;
  sessions_.erase(it);
}

void BrowserTool::sessionEnded(const std::string& sessionKey) {
  auto it = sessions_.find(sessionKey);
  if (it != sessions_.end()) forget(sessionKey, it->second->generation, "the session was reset");
  inner_.sessionEnded(sessionKey);
}

BrowserTool::Session& BrowserTool::sessionFor(const std::string& key) {
  auto found = sessions_.find(key);
  if (found != sessions_.end() && !found->second->host->exited()) return *found->second;
  if (found != sessions_.end()) sessions_.erase(found);

  // The agent's profile is one Chromium's at a time (two writing the same cookie database would
  // corrupt it): another session's idle browser is stopped first (run() refused a busy one).
  std::vector<std::pair<std::string, uint64_t>> others;
  for (auto& [otherKey, other] : sessions_) others.emplace_back(otherKey, other->generation);
  for (auto& [otherKey, generation] : others)
    forget(otherKey, generation, "session " + key + " of the same agent needs the profile");

  auto session = std::make_unique<Session>();
  session->key = key;
  session->generation = ++generations_;
  std::string profile = ensureProfileDir(settings_.stateDir, settings_.agentId);
  // Pages load from anywhere public; the owner's private destinations stay exactly as listed.
  std::vector<egress::Rule> rules = egress::publicWebRules("browser");
  for (const auto& entry : settings_.egress.allow_private())
    rules.push_back(egress::parseRule(entry, "egress.allow_private", true));
  session->endpoint = broker_.open("browser:" + key, std::move(rules));
  // Every host the pages connect to (a third party's script, an image, a beacon) is decided by
  // the policy too, for the call that is running: the broker alone would admit any public host,
  // so a host list in the policy would stop the documents and not what they send elsewhere.
  session->endpoint->setAdmission(
      [gate = session->gate](const std::string& host, uint16_t port) -> std::string {
        if (gate->current != nullptr) return gate->current->decideConnection("browse", host, port);
        if (gate->afterwards) return gate->afterwards("browse", host, port);
        return "no browser call has run";
      });
  spawn::SpawnRequest request;
  request.profile = "browser";
  request.vars = {{"STATE_DIR", profile}};
  request.egressSocket = session->endpoint->socketPath();
  session->host =
      kj::heap<WorkerHost>(loop_, io_, spawner_.spawn(request), "browser worker of " + key,
                           readerOptionsFor(rpc::MAX_RESULT_BYTES));
  session->client = session->host->bootstrap<rpc::BrowserWorker>();
  auto start = session->client.startRequest();
  start.setGate(kj::heap<Gate>(session->gate));
  // Calls on one capability are delivered in order: the first `act` queues behind this.
  tasks_.add(start.send().ignoreResult());
  uint64_t generation = session->generation;
  session->watch = session->host->onExit().then([this, key, generation](WorkerExit e) {
    spdlog::warn("session {}: browser worker {}", key, e.describe());
    tasks_.add(kj::evalLater([this, key, generation]() { forget(key, generation, "exited"); }));
  });
  spdlog::info("session {}: browser started (profile {})", key, profile);
  auto& slot = sessions_[key];
  slot = std::move(session);
  return *slot;
}

kj::Promise<ToolOutcome> BrowserTool::run(const std::string& tool, const std::string& argumentsJson,
                                          const std::string& workspaceDir,
                                          const std::vector<std::string>& hiddenDirs,
                                          CallScope* scope) {
  if (tool != "browser") return inner_.run(tool, argumentsJson, workspaceDir, hiddenDirs, scope);
  json args =
      json::parse(argumentsJson.empty() ? std::string("{}") : argumentsJson, nullptr, false);
  std::string problem =
      args.is_object() ? checkBrowserArguments(args) : "arguments must be a JSON object";
  if (!problem.empty()) return errorOutcome(problem);
  // Only the guard runs the browser: it knows the session and decides every document.
  if (scope == nullptr) return errorOutcome("the browser runs only for a session's call");
  for (auto& [key, other] : sessions_) {
    if (key != scope->sessionKey() && other->busy)
      return errorOutcome(
          "the browser profile of this agent is in use by another session's browser action; try "
          "again in a moment");
  }
  Session* session = nullptr;
  try {
    session = &sessionFor(scope->sessionKey());
  } catch (const spawn::SandboxUnavailable& e) {
    return errorOutcome(std::string("the browser could not start because its sandbox could not "
                                    "be set up: ") +
                        e.what());
  } catch (const std::exception& e) {
    spdlog::error("cannot start the browser of {}: {}", scope->sessionKey(), e.what());
    return errorOutcome("the browser could not be started (see the gateway log)");
  } catch (const kj::Exception& e) {
    spdlog::error("cannot start the browser of {}: {}", scope->sessionKey(),
                  e.getDescription().cStr());
    return errorOutcome("the browser could not be started (see the gateway log)");
  }
  if (session->busy)
    return errorOutcome("another browser action of this session is still running; wait for it");
  return act(*session, std::move(args), workspaceDir, *scope);
}

kj::Promise<ToolOutcome> BrowserTool::act(Session& session, json args, std::string workspaceDir,
                                          CallScope& scope) {
  std::string action = args["action"].get<std::string>();
  auto request = session.client.actRequest();
  auto r = request.initRequest();
  for (const auto& [name, value] : ACTIONS)
    if (action == name) r.setAction(value);
  if (const std::string* url = stringArg(args, "url")) r.setUrl(*url);
  if (present(args, "ref")) r.setRef(refOf(args["ref"]));
  if (const std::string* text = stringArg(args, "text")) r.setText(*text);
  if (const std::string* key = stringArg(args, "key")) r.setKey(*key);

  // While this call runs, its scope decides what the page may load; nothing else does.
  session.busy = true;
  session.gate->current = &scope;
  session.gate->afterwards = scope.decideConnectionsAfterwards();
  session.idle = nullptr;
  std::string key = session.key;
  uint64_t generation = session.generation;
  // The page the call was about, for the taint source when the worker reports none.
  std::string asked = action == "navigate" ? args["url"].get<std::string>() : "";
  auto settled = std::make_shared<bool>(false);
  // Ends the action: whatever happened, the gate closes and the idle clock starts again. A call
  // cancelled mid-action (an abort) leaves the worker busy with it: that browser is stopped.
  auto end = [this, key, generation, settled]() {
    auto it = sessions_.find(key);
    if (it == sessions_.end() || it->second->generation != generation) return;
    Session& s = *it->second;
    s.gate->current = nullptr;
    s.busy = false;
    if (!*settled) {
      tasks_.add(kj::evalLater([this, key, generation]() {
        forget(key, generation, "its call was cancelled mid-action");
      }));
      return;
    }
    s.idle = io_.provider->getTimer()
                 .afterDelay(settings_.idleSeconds * kj::SECONDS)
                 .then([this, key, generation]() {
                   tasks_.add(kj::evalLater(
                       [this, key, generation]() { forget(key, generation, "idle"); }));
                 });
  };
  return io_.provider->getTimer()
      .timeoutAfter(settings_.actionTimeoutSeconds * kj::SECONDS, request.send())
      .then(
          [this, action, workspaceDir, settled,
           asked](capnp::Response<rpc::BrowserWorker::ActResults>&& response) {
            *settled = true;
            ToolOutcome outcome = outcomeOf(response.getResult(), action, workspaceDir);
            if (outcome.untrustedSource == "(no page)" && !asked.empty())
              outcome.untrustedSource = clipUtf8(asked, 300);
            return outcome;
          },
          [this, key, generation, settled, asked](kj::Exception&& e) {
            *settled = true;
            bool died = e.getType() == kj::Exception::Type::DISCONNECTED;
            spdlog::warn("session {}: browser action failed: {}", key, e.getDescription().cStr());
            auto it = sessions_.find(key);
            if (!died && it != sessions_.end() && it->second->generation == generation) {
              // A timeout, or an answer that broke the protocol: stop it, a fresh one starts next.
              it->second->host->kill("browser action failed: " +
                                     std::string(e.getDescription().cStr()));
            }
            ToolOutcome outcome = errorOutcome(
                died ? "the browser stopped unexpectedly; the next browser call starts a new one"
                     : "the browser did not finish the action in time (or broke the protocol) "
                       "and was stopped; the next browser call starts a new one");
            // What it loaded before failing may be in the page's text the model saw earlier;
            // the call is counted as web content all the same.
            outcome.untrustedSource =
                asked.empty() ? std::string("(no page)") : clipUtf8(asked, 300);
            return outcome;
          })
      .attach(kj::defer(kj::mv(end)));
}

ToolOutcome browserOutcomeFrom(rpc::BrowserResult::Reader result) {
  ToolOutcome outcome;
  auto rawText = result.isOk() ? result.getOk() : result.getFailed();
  std::string text = sanitizeUtf8(kj::ArrayPtr<const char>(rawText.begin(), rawText.size())).cStr();
  if (text.size() > MAX_BROWSER_TEXT_BYTES) {
    size_t total = text.size();
    size_t cut = utf8BoundaryAtOrBefore(kj::ArrayPtr<const char>(text.data(), text.size()),
                                        MAX_BROWSER_TEXT_BYTES);
    text.resize(cut);
    text += "\n[chitin: cut at " + std::to_string(cut) + " of " + std::to_string(total) +
            " bytes; the rest of the page is not shown]";
  }
  outcome.status = result.isOk() ? ToolOutcome::Status::OK : ToolOutcome::Status::ERROR;
  outcome.content = result.isOk() ? text : "error: " + text;
  auto rawUrl = result.getUrl();
  std::string url = clipUtf8(std::string_view(rawUrl.begin(), rawUrl.size()), 300);
  // The guard says which tool: "browser: <url>".
  outcome.untrustedSource = url.empty() ? std::string("(no page)") : url;
  if (!url.empty()) outcome.content += "\n[page: " + url + "]";
  return outcome;
}

ToolOutcome BrowserTool::outcomeOf(rpc::BrowserResult::Reader result, const std::string& action,
                                   const std::string& workspaceDir) {
  ToolOutcome outcome = browserOutcomeFrom(result);
  auto png = result.getScreenshot();
  if (action == "screenshot" && png.size() > 0) {
    static const char MAGIC[] = "\x89PNG\r\n\x1a\n";
    std::string data(reinterpret_cast<const char*>(png.begin()), png.size());
    std::string name = utcStamp() + ".png";
    std::string problem = data.compare(0, 8, MAGIC, 8) == 0
                              ? writeBeneathWorkspace(workspaceDir, "screenshots", name, data)
                              : std::string("the browser's screenshot is not a PNG");
    if (problem.empty()) {
      outcome.content += "\nscreenshot saved to screenshots/" + name + " (" +
                         std::to_string(data.size()) + " bytes)";
    } else {
      outcome.status = ToolOutcome::Status::ERROR;
      outcome.content += "\nerror: the screenshot was not saved: " + problem;
    }
  }
  auto downloads = result.getDownloads();
  for (size_t i = 0; i < downloads.size() && i < rpc::MAX_DOWNLOADS_PER_RESULT; ++i) {
    auto file = downloads[i];
    auto rawName = file.getName();
    std::string base = safeFileName(std::string(rawName.begin(), rawName.size()));
    std::string data(reinterpret_cast<const char*>(file.getData().begin()), file.getData().size());
    // A new name each time: an existing file is never overwritten by a page.
    std::string problem, name;
    for (int n = 0; n < 100; ++n) {
      size_t dot = base.rfind('.');
      name = n == 0 ? base
                    : (dot == std::string::npos || dot == 0
                           ? base + "-" + std::to_string(n)
                           : base.substr(0, dot) + "-" + std::to_string(n) + base.substr(dot));
      problem = writeBeneathWorkspace(workspaceDir, "downloads", name, data);
      if (problem.find("File exists") == std::string::npos) break;
    }
    outcome.content += problem.empty() ? "\ndownloaded to downloads/" + name + " (" +
                                             std::to_string(data.size()) + " bytes)"
                                       : "\nerror: a download was not saved: " + problem;
  }
  if (downloads.size() > rpc::MAX_DOWNLOADS_PER_RESULT)
    outcome.content += "\n[chitin: " + std::to_string(downloads.size() - rpc::MAX_DOWNLOADS_PER_RESULT) +
                       " more downloads were dropped]";
  return outcome;
}

}  // namespace chitin
