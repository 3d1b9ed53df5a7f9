// SPDX-License-Identifier: Apache-2.0
// `chitin agent|status|health|sessions`: connect to the gateway, ask, print, map to exit codes.
// Runs in: CLI (the invoking user's process, unprivileged)

#include "remote-commands.h"

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <map>
#include <memory>
#include <ostream>
#include <sstream>
#include <vector>

#include "display-text.h"
#include "gateway-client.h"

namespace chitin::cli {
namespace {

using nlohmann::json;
using Kind = GatewayError::Kind;

constexpr const char* DEFAULT_URL = "ws://127.0.0.1:18789";
constexpr int ABORT_WAIT_MS = 3000;  // after SIGINT: how long the gateway gets to confirm
constexpr size_t SHOW_BYTES = 100;   // tool arguments/summaries on a progress line (not approvals)

std::string firstLine(std::string_view text) {
  text = text.substr(0, text.find('\n'));
  size_t start = text.find_first_not_of(" \t\r"), end = text.find_last_not_of(" \t\r");
  return start == std::string_view::npos ? "" : std::string(text.substr(start, end - start + 1));
}

// The first line of a small file; nullopt (and `problem` empty) if it does not exist.
std::optional<std::string> readLineFile(const std::string& path, bool secret,
                                        std::string& problem) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) problem = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream mode;
  mode << "0" << std::oct << (st.st_mode & 0777);
  if (!S_ISREG(st.st_mode)) problem = path + " is not a regular file";
  // Like ssh with a private key: a token others can read is no longer a secret.
  if (secret && (st.st_mode & 077) != 0)
    problem = path + " is accessible by other users (mode " + mode.str() + "); run `chmod 600 " +
              path + "`";
  std::ifstream in(path);
  std::string line;
  if (problem.empty() && !std::getline(in, line) && !in.eof()) problem = "cannot read " + path;
  return problem.empty() ? std::optional<std::string>(firstLine(line)) : std::nullopt;
}

std::string localUser(const EnvLookup& env) {
  if (auto user = env("USER"); user && !user->empty()) return *user;
  if (passwd* pw = getpwuid(getuid()); pw != nullptr) return pw->pw_name;
  return "uid" + std::to_string(getuid());
}

std::string chitinHome(const EnvLookup& env) {
  if (auto home = env("CHITIN_HOME"); home && !home->empty()) return *home;
  if (auto home = env("HOME"); home && !home->empty()) return *home + "/.chitin";
  if (passwd* pw = getpwuid(getuid()); pw != nullptr) return std::string(pw->pw_dir) + "/.chitin";
  return ".chitin";
}

// A progress line's excerpt of model text: escaped, and cut with "…" (see display-text.h).
std::string excerpt(const std::string& text,
                    DisplayBackslashes backslashes = DisplayBackslashes::MARK) {
  return displayCut(text, SHOW_BYTES, backslashes).text;
}

std::string durationText(uint64_t ms) {
  uint64_t s = ms / 1000, m = s / 60, h = m / 60, d = h / 24;
  if (d > 0) return std::to_string(d) + "d " + std::to_string(h % 24) + "h";
  if (h > 0) return std::to_string(h) + "h " + std::to_string(m % 60) + "m";
  if (m > 0) return std::to_string(m) + "m " + std::to_string(s % 60) + "s";
  return std::to_string(s) + "s";
}

// Reports a GatewayError the way the user can act on it, and returns the exit code.
int reportGatewayError(const GatewayError& e, const std::string& url, std::ostream& err) {
  err << "chitin: ";
  // A close reason or an error message is the peer's text.
  std::string what = displayLine(e.what()), code = displayLine(e.code());
  switch (e.kind()) {
    case Kind::UNREACHABLE:
      err << "gateway unreachable at " << url << ": " << what
          << " (is `chitin gateway` running?)\n";
      return EXIT_UNREACHABLE;
    case Kind::REJECTED:
      err << "the gateway at " << url
          << " refused the connection: " << (code.empty() ? "" : code + ": ") << what
          << (e.code() == "UNAUTHORIZED" ? " (check CHITIN_GATEWAY_TOKEN or "
                                           "$CHITIN_HOME/gateway.token)\n"
                                         : "\n");
      return EXIT_USAGE;
    case Kind::PROTOCOL:
      err << "protocol error talking to the gateway at ";
      break;
    case Kind::CONNECTION_LOST:
      err << "lost the connection to the gateway at ";
      break;
    case Kind::TIMEOUT:
      err << "no answer in time from the gateway at ";
      break;
  }
  err << url << ": " << what << "\n";
  return EXIT_UNREACHABLE;
}

// A request the gateway answered with ok:false.
int reportRequestError(const std::string& what, const Response& res, std::ostream& err) {
  err << "chitin: " << what
      << " failed: " << (res.errorCode.empty() ? "" : displayLine(res.errorCode) + ": ")
      << (res.errorMessage.empty() ? "no message" : displayLine(res.errorMessage)) << "\n";
  bool usage = res.errorCode == "INVALID_REQUEST" || res.errorCode == "UNAUTHORIZED";
  return usage ? EXIT_USAGE : EXIT_FAILED;
}

// Resolves settings and connects; on failure reports and sets `exitCode`.
std::unique_ptr<GatewayClient> connectGateway(RemoteContext& ctx, int& exitCode) {
  auto resolved = resolveConnectionSettings(ctx.env);
  exitCode = EXIT_USAGE;
  if (auto* problem = std::get_if<ConfigProblem>(&resolved)) {
    ctx.err << "chitin: " << problem->message << "\n";
    return nullptr;
  }
  auto& settings = std::get<ConnectionSettings>(resolved);
  try {
    ClientOptions options;
    options.token = settings.token;
    options.user = settings.user;
    return std::make_unique<GatewayClient>(GatewayUrl::parse(settings.url), options);
  } catch (const std::invalid_argument& e) {
    ctx.err << "chitin: " << e.what() << "\n";
  } catch (const GatewayError& e) {
    // A timeout before we are connected means nobody usable answers there.
    bool timeout = e.kind() == Kind::TIMEOUT;
    exitCode = reportGatewayError(timeout ? GatewayError(Kind::UNREACHABLE, e.what()) : e,
                                  settings.url, ctx.err);
  }
  return nullptr;
}

// One request-and-print command (status, health, sessions).
// `healthKey`, if set, names a boolean the payload must hold true for exit code 0.
int runSimple(RemoteContext& ctx, const char* method, bool asJson,
              const std::function<void(const json&, const std::string& url, std::ostream&)>& print,
              const char* healthKey = nullptr, const json& params = json::object()) {
  int exitCode = EXIT_OK;
  std::unique_ptr<GatewayClient> client = connectGateway(ctx, exitCode);
  if (!client) return exitCode;
  try {
    Response res = client->request(method, params);
    if (!res.ok) return reportRequestError(method, res, ctx.err);
    if (asJson)
      ctx.out << jsonForTerminal(res.payload, 2) << "\n";
    else
      print(res.payload, client->url().text, ctx.out);
    return healthKey == nullptr || jsonBool(res.payload, healthKey) ? EXIT_OK : EXIT_FAILED;
  } catch (const GatewayError& e) {
    return reportGatewayError(e, client->url().text, ctx.err);
  }
}

void printStatus(const json& s, const std::string& url, std::ostream& out) {
  std::string model = shown(s, "modelProvider"), sandbox = shown(s, "sandbox");
  if (!jsonString(s, "model").empty()) model += " / " + shown(s, "model");
  if (!jsonBool(s, "modelConfigured")) model = "not configured (set a provider in chitin.conf)";
  out << "gateway   " << url << " (chitin " << shown(s, "version", "?") << ", up "
      << durationText(jsonUint(s, "uptimeMs")) << ")\n"
      << "home      " << shown(s, "home", "?") << "\n"
      << "model     " << model << "\n"
      << "sandbox   " << (sandbox.empty() ? "unknown" : sandbox) << "\n"
      << "sessions  " << jsonUint(s, "activeSessions") << " active, " << jsonUint(s, "activeRuns")
      << " running\n"
      << "spares    " << jsonUint(s, "spareSandboxes") << " tool sandboxes waiting (at most "
      << jsonUint(s, "spareSandboxesMax") << ")\n"
      << "clients   " << jsonUint(s, "connections") << " connected\n";
}

void printHealth(const json& h, const std::string& url, std::ostream& out) {
  out << (jsonBool(h, "ok") ? "ok" : "unhealthy") << ": chitin " << shown(h, "version", "?")
      << " at " << url << ", up " << durationText(jsonUint(h, "uptimeMs")) << "\n";
}

void printSessions(const json& p, const std::string&, std::ostream& out) {
  json sessions = p.contains("sessions") ? p["sessions"] : json::array();
  if (!sessions.is_array() || sessions.empty()) {
    out << "no sessions\n";
    return;
  }
  // Session keys carry sender ids from chat platforms.
  size_t keyWidth = 3;
  for (const json& s : sessions) keyWidth = std::max(keyWidth, shown(s, "key").size());
  out << std::left << std::setw(int(keyWidth)) << "KEY"
      << "  ACTIVE  MESSAGES  TAINTED  UPDATED\n";
  bool anyTainted = false;
  for (const json& s : sessions) {
    anyTainted = anyTainted || jsonBool(s, "tainted");
    out << std::left << std::setw(int(keyWidth)) << shown(s, "key") << "  " << std::setw(6)
        << (jsonBool(s, "active") ? "yes" : "no") << "  " << std::right << std::setw(8)
        << jsonUint(s, "messages") << "  " << std::left << std::setw(7)
        << (jsonBool(s, "tainted") ? "yes" : "no") << "  " << shown(s, "updatedAt", "-") << "\n";
  }
  if (anyTainted) {
    out << "tainted: the history these sessions replay holds content from outside, so writes, "
           "commands and sends ask you first; `chitin sessions --json` says why, `chitin "
           "sessions reset KEY` starts one over\n";
  }
}

// ---- agent ----

// SIGINT → one byte on a pipe the client polls, so the wait returns and we can send agent.abort.
int gSigintPipe = -1;

void onSigint(int) {
  int saved = errno;
  [[maybe_unused]] ssize_t n = write(gSigintPipe, "i", 1);
  errno = saved;
}

class SigintPipe {
 public:
  SigintPipe() {
    if (pipe2(fds_, O_NONBLOCK | O_CLOEXEC) != 0)
      throw std::system_error(errno, std::generic_category(), "pipe2");
    gSigintPipe = fds_[1];
    struct sigaction sa {};
    sa.sa_handler = onSigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &previous_);
  }
  ~SigintPipe() {
    sigaction(SIGINT, &previous_, nullptr);
    gSigintPipe = -1;
    close(fds_[0]);
    close(fds_[1]);
  }
  int readFd() const { return fds_[0]; }

 private:
  int fds_[2];
  struct sigaction previous_ {};
};

// One tool call as the user sees it: "⚙ exec {"command":"ls"} …".
std::string toolHead(const json& tool) {
  std::string text = jsonString(tool, "argumentsJson");
  json args = json::parse(text, nullptr, false);
  if (!args.is_discarded()) {
    // JSON's own escapes stay as they are; what JSON leaves raw (bidi, invisible) is escaped.
    text = excerpt(args.dump(-1, ' ', false, json::error_handler_t::replace),
                   DisplayBackslashes::AS_IS);
  } else {
    text = excerpt(text);
  }
  return "⚙ " + shown(tool, "name") + (text.empty() ? "" : " " + text) + " …";
}

// Follows one run's `agent` events: prints progress (human mode) and remembers the tools.
class RunView {
 public:
  RunView(RemoteContext& ctx, bool asJson) : ctx_(ctx), json_(asJson) {}

  void setRunId(const std::string& runId) {
    runId_ = runId;
    std::vector<json> early = std::move(early_);
    for (const json& payload : early) onAgentEvent(payload);
  }

  void onEvent(const Event& event) {
    if (event.name == "agent") onAgentEvent(event.payload);
    // A call of this run waits for the owner: say what and how to answer.
    // The description is shown whole: it is already display text (and says so itself when the
    // gateway shortened it); the full call is one command away.
    if (event.name == "approval.requested" && !json_ && !runId_.empty() &&
        jsonString(event.payload, "runId") == runId_) {
      endToolLine();
      settleText();
      if (outDirty_) ctx_.err << "\n";  // both streams may share the terminal: a fresh line
      outDirty_ = false;
      std::string id = shown(event.payload, "id");
      ctx_.err << "⏸ waiting for confirmation: "
               << displayText(jsonString(event.payload, "description"),
                              {DisplayLayout::LINE, DisplayBackslashes::AS_IS})
               << "\n  full call: chitin approvals show " << id
               << "\n  approve: chitin approvals approve " << id
               << "   deny: chitin approvals deny " << id << "\n"
               << std::flush;
    }
  }

  // Prints the end of the run; returns the exit code.
  int finish(const json& result, const std::string& acceptedSession) {
    std::string status = jsonString(result, "status"), error = jsonString(result, "error");
    std::string reply = jsonString(result, "reply"), runId = jsonString(result, "runId", runId_);
    json tools = result.contains("tools") ? result["tools"] : json::array();
    if (!tools.is_array() || tools.empty()) {  // the result did not list them: use the events
      tools = json::array();
      for (const std::string& id : toolOrder_) tools.push_back(tools_[id]);
    }
    if (json_) {
      json out = {{"reply", reply},
                  {"session", jsonString(result, "sessionKey", acceptedSession)},
                  {"runId", runId},
                  {"status", status},
                  {"tools", json::array()}};
      for (const json& t : tools) {
        json args = json::parse(jsonString(t, "argumentsJson"), nullptr, false);
        if (args.is_discarded()) args = jsonString(t, "argumentsJson");  // not JSON: as given
        out["tools"].push_back({{"id", jsonString(t, "id")},
                                {"name", jsonString(t, "name")},
                                {"arguments", args},
                                {"status", jsonString(t, "status")},
                                {"summary", jsonString(t, "summary")}});
      }
      if (!error.empty()) out["error"] = error;
      ctx_.out << jsonForTerminal(out) << "\n";
    } else {
      endToolLine();
      if (!streamed_) writeText(reply);  // a gateway that did not stream: show the whole reply
      writeShown(text_.finish());
      if (outDirty_) ctx_.out << "\n";
      ctx_.out.flush();
      if (status != "ok")
        ctx_.err << "chitin: run " << displayLine(runId) << " "
                 << (status.empty() ? "failed" : displayLine(status))
                 << (error.empty() ? "" : ": " + displayLine(error)) << "\n";
    }
    return status == "ok" ? EXIT_OK : EXIT_FAILED;
  }

 private:
  void onAgentEvent(const json& payload) {
    if (runId_.empty()) {
      early_.push_back(payload);  // arrived before the accepted answer told us our runId
      return;
    }
    if (jsonString(payload, "runId") != runId_) return;
    std::string stream = jsonString(payload, "stream");
    if (stream == "assistant" && !jsonString(payload, "delta").empty()) {
      endToolLine();
      streamed_ = true;
      writeText(jsonString(payload, "delta"));
    } else if (stream == "tool" && payload.contains("tool") && payload["tool"].is_object()) {
      std::string id = jsonString(payload["tool"], "id");
      if (tools_.find(id) == tools_.end()) toolOrder_.push_back(id);
      json& tool = tools_[id];
      tool.update(payload["tool"]);  // start and end may each carry only some fields
      if (jsonString(payload, "phase") == "start") toolStarted(tool);
      if (jsonString(payload, "phase") == "end") toolEnded(tool);
    }
  }

  void toolStarted(const json& tool) {
    if (json_) return;
    endToolLine();
    settleText();
    ctx_.out.flush();
    // Keep the terminal readable when both streams share it: start on a fresh line.
    if (outDirty_) ctx_.err << "\n";
    outDirty_ = false;
    ctx_.err << toolHead(tool) << std::flush;
    openTool_ = jsonString(tool, "id");
  }

  void toolEnded(const json& tool) {
    if (json_) return;
    if (openTool_ != jsonString(tool, "id")) {
      endToolLine();
      ctx_.err << toolHead(tool);
    }
    openTool_.reset();
    std::string status = shown(tool, "status", "done"), summary = jsonString(tool, "summary");
    ctx_.err << " " << status;
    if (status != "ok" && !summary.empty()) ctx_.err << ": " << excerpt(firstLine(summary));
    ctx_.err << std::endl;
  }

  void endToolLine() {
    if (openTool_) ctx_.err << "\n";
    openTool_.reset();
  }

  // Model text for the terminal: escaped as it streams (a delta may split an escape sequence or
  // a UTF-8 character; the escaper holds the part it cannot decide yet).
  void writeText(const std::string& text) {
    if (json_ || text.empty()) return;
    writeShown(text_.feed(text));
  }
  // Before other output takes the terminal: what the escaper holds, written out.
  void settleText() {
    if (!json_) writeShown(text_.flush());
  }
  void writeShown(const std::string& shownText) {
    if (shownText.empty()) return;
    ctx_.out << shownText << std::flush;
    outDirty_ = shownText.back() != '\n';
  }

  RemoteContext& ctx_;
  bool json_;
  std::string runId_;
  std::vector<json> early_;
  std::map<std::string, json> tools_;
  std::vector<std::string> toolOrder_;
  std::optional<std::string> openTool_;  // a "⚙ name args …" line waiting for its status
  bool streamed_ = false;
  bool outDirty_ = false;  // stdout's last character is not a newline
  DisplayEscaper text_{{DisplayLayout::BLOCK, DisplayBackslashes::MARK}};
};

}  // namespace

std::string shown(const json& object, const char* key, std::string fallback) {
  std::string text = jsonString(object, key);
  return text.empty() ? fallback : displayLine(text);
}

std::string jsonForTerminal(const json& value, int indent) {
  return value.dump(indent, ' ', true, json::error_handler_t::replace);
}

EnvLookup processEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    return value == nullptr ? std::nullopt : std::optional<std::string>(value);
  };
}

std::variant<ConnectionSettings, ConfigProblem> resolveConnectionSettings(const EnvLookup& env) {
  std::string home = chitinHome(env), problem;
  // The variable if set and non-empty, else the file's first line (empty if absent).
  auto setting = [&](const char* variable, const char* file, bool secret) -> std::string {
    if (auto value = env(variable); value && !value->empty()) return *value;
    return readLineFile(home + "/" + file, secret, problem).value_or("");
  };
  ConnectionSettings settings{setting("CHITIN_GATEWAY_URL", "gateway.url", false), "",
                              localUser(env)};
  if (problem.empty()) settings.token = setting("CHITIN_GATEWAY_TOKEN", "gateway.token", true);
  if (!problem.empty()) return ConfigProblem{problem};
  if (settings.url.empty()) settings.url = DEFAULT_URL;
  if (settings.token.empty())
    return ConfigProblem{
        "no gateway token: set CHITIN_GATEWAY_TOKEN, or start `chitin gateway` as "
        "this user; it writes " +
        home + "/gateway.token"};
  return settings;
}

int runAgent(const AgentOptions& options, RemoteContext& ctx) {
  if (options.message.empty() || options.timeoutSeconds < 0) {
    ctx.err << (options.message.empty()
                    ? "chitin agent: a message is required (-m TEXT)\n"
                    : "chitin agent: the timeout must be 0 (none) or seconds\n");
    return EXIT_USAGE;
  }
  // Installed before connecting so a ^C at any point ends in an orderly way.
  std::optional<SigintPipe> sigint;
  if (ctx.handleSigint) sigint.emplace();
  int exitCode = EXIT_OK;
  std::unique_ptr<GatewayClient> client = connectGateway(ctx, exitCode);
  if (!client) return exitCode;

  RunView view(ctx, options.json);
  client->setEventHandler([&](const Event& event) { view.onEvent(event); });
  if (sigint) client->setWakeFd(sigint->readFd());
  json params = {{"message", options.message}};
  if (!options.sessionKey.empty()) params["sessionKey"] = options.sessionKey;

  std::string runId, session;
  bool aborting = false;
  auto sendAbort = [&] {
    if (runId.empty() || aborting) return;
    aborting = true;
    if (!options.json) ctx.err << "\nchitin: aborting run " << displayLine(runId) << " …\n";
    client->send("agent.abort", {{"runId", runId}});
  };
  try {
    std::string id = client->send("agent", params);
    bool interrupted = false;
    int timeoutMs = options.timeoutSeconds > 0 ? options.timeoutSeconds * 1000 : -1;
    for (;;) {
      std::optional<Response> res;
      try {
        res = client->waitFor(id, interrupted ? ABORT_WAIT_MS : timeoutMs);
      } catch (const GatewayError& e) {
        if (e.kind() != Kind::TIMEOUT) throw;
        if (interrupted) {
          ctx.err << "chitin: the gateway did not confirm the abort of run " << displayLine(runId)
                  << " within " << ABORT_WAIT_MS / 1000 << " s\n";
          return EXIT_FAILED;
        }
        ctx.err << "chitin: run " << (runId.empty() ? "(not started)" : displayLine(runId))
                << " did not finish within " << options.timeoutSeconds << " s\n";
        interrupted = true;
        sendAbort();
        continue;
      }
      if (!res) {  // SIGINT
        if (interrupted) {
          ctx.err << "chitin: interrupted again; leaving run " << displayLine(runId)
                  << " to the gateway\n";
          return EXIT_FAILED;
        }
        interrupted = true;
        sendAbort();  // if the run is not accepted yet, this happens once it is
        continue;
      }
      if (!res->ok) return reportRequestError("agent", *res, ctx.err);
      if (jsonString(res->payload, "status") == "accepted") {
        runId = jsonString(res->payload, "runId");
        session = jsonString(res->payload, "sessionKey");
        view.setRunId(runId);
        if (interrupted) sendAbort();
        continue;
      }
      int code = view.finish(res->payload, session);
      return interrupted ? EXIT_FAILED : code;
    }
  } catch (const GatewayError& e) {
    if (e.kind() == Kind::CONNECTION_LOST && !runId.empty()) {
      ctx.err << "\nchitin: connection to the gateway at " << client->url().text
              << " lost during run " << displayLine(runId) << ": " << displayLine(e.what())
              << " (the run's outcome is unknown; see `chitin sessions`)\n";
      return EXIT_UNREACHABLE;
    }
    return reportGatewayError(e, client->url().text, ctx.err);
  }
}

int runStatus(bool asJson, RemoteContext& ctx) {
  return runSimple(ctx, "status", asJson, printStatus);
}

int runHealth(bool asJson, RemoteContext& ctx) {
  return runSimple(ctx, "health", asJson, printHealth, "ok");
}

int runSessions(bool asJson, RemoteContext& ctx) {
  return runSimple(ctx, "sessions.list", asJson, printSessions);
}

int withGateway(RemoteContext& ctx, const std::function<int(GatewayClient&)>& body) {
  int exitCode = EXIT_OK;
  std::unique_ptr<GatewayClient> client = connectGateway(ctx, exitCode);
  if (!client) return exitCode;
  try {
    return body(*client);
  } catch (const GatewayError& e) {
    return reportGatewayError(e, client->url().text, ctx.err);
  }
}

int requestFailed(const std::string& what, const Response& res, std::ostream& err) {
  return reportRequestError(what, res, err);
}

int runRequest(RemoteContext& ctx, const char* method, const nlohmann::json& params, bool asJson,
               const std::function<void(const nlohmann::json&, std::ostream&)>& print,
               const char* okKey) {
  return runSimple(
      ctx, method, asJson,
      [&](const json& payload, const std::string&, std::ostream& out) { print(payload, out); },
      okKey, params);
}

}  // namespace chitin::cli
