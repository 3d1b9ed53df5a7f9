// SPDX-License-Identifier: Apache-2.0
// The CLI commands that act through the gateway: `agent`, `status`, `health`, `sessions`.
// Runs in: CLI (the invoking user's process, unprivileged)
//
// main() parses arguments and calls one run*() function, which returns the process exit code.
// Connection settings: CHITIN_GATEWAY_URL and CHITIN_GATEWAY_TOKEN, each falling back to the
// file the supervisor writes under $CHITIN_HOME (default ~/.chitin): gateway.url (one line;
// absent = ws://127.0.0.1:18789) and gateway.token (one line, must not be readable by others).
//
// Exit codes: 0 ok; 1 the assistant, a tool or a request failed; 2 usage or configuration
// (no token, bad URL, token refused, invalid request); 3 the gateway cannot be
// reached or talked to. A connection that drops mid-run is 3, not 1: the gateway, not the
// assistant, failed, and the run's outcome is unknown to us (it may still finish).

#pragma once

#include <functional>
#include <iosfwd>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <variant>

namespace chitin::cli {

enum ExitCode : int {
  EXIT_OK = 0,
  EXIT_FAILED = 1,
  EXIT_USAGE = 2,
  EXIT_UNREACHABLE = 3,
};

// Reads an environment variable; main() passes processEnvironment(), tests a map.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup processEnvironment();

struct ConnectionSettings {
  std::string url;  // as configured, e.g. ws://127.0.0.1:18789
  std::string token;
  std::string user;  // the local user name, sent as client.user
};

// Why the settings could not be resolved; the message says what to do (exit code 2).
struct ConfigProblem {
  std::string message;
};

std::variant<ConnectionSettings, ConfigProblem> resolveConnectionSettings(const EnvLookup& env);

// What a command needs from its surroundings.
struct RemoteContext {
  EnvLookup env;
  std::ostream& out;         // results only (what scripts parse)
  std::ostream& err;         // progress, warnings and errors
  bool handleSigint = true;  // runAgent: SIGINT aborts the run instead of killing us
};

// A command line that cannot be run as written: `problem` on err, and EXIT_USAGE.
inline int usageError(RemoteContext& ctx, const std::string& problem) {
  ctx.err << "chitin: " << problem << "\n";
  return EXIT_USAGE;
}

struct AgentOptions {
  std::string message;     // -m TEXT (required, non-empty)
  std::string sessionKey;  // --session KEY; empty = the gateway's default for this user
  bool json = false;       // --json: one JSON object on stdout, nothing else
  int timeoutSeconds = 0;  // 0 = wait as long as the run takes (SIGINT still aborts)
};

// Sends one message and follows the run: tool progress on err, streamed text on out.
int runAgent(const AgentOptions& options, RemoteContext& context);
// `status`, `health`, `sessions` (sessions.list): readable lines, or the payload as JSON.
int runStatus(bool json, RemoteContext& context);
int runHealth(bool json, RemoteContext& context);
int runSessions(bool json, RemoteContext& context);

// Text from the gateway on the terminal. Every string a model, a worker or a remote sender could
// have chosen (replies, tool arguments and results, errors, session keys, sender ids, paths)
// goes through common/display-text.h before it is written, whether or not the output is a
// terminal: a pipe into `less -R` or a log viewed later is a terminal too.
// `key` of `object` as one line of display text (`fallback` if it is absent or empty).
std::string shown(const nlohmann::json& object, const char* key, std::string fallback = "");
// --json output: printable ASCII only (every other character as a \uXXXX escape), so not even
// a UTF-8 C1 control or a bidi override reaches a terminal raw; a JSON parser reads the exact
// text back.
std::string jsonForTerminal(const nlohmann::json& value, int indent = -1);

class GatewayClient;
struct Response;

// Connects and runs `body` with the client (several requests on one connection). Connection
// problems, and GatewayErrors `body` throws, are reported as for runRequest.
int withGateway(RemoteContext& context, const std::function<int(GatewayClient&)>& body);
// Reports a request the gateway answered with ok:false; returns the exit code for it.
int requestFailed(const std::string& what, const Response& res, std::ostream& err);

// One request: prints the payload with `print`, or as JSON. Exit codes as above; with `okKey`,
// 1 unless the payload holds that boolean true.
int runRequest(RemoteContext& context, const char* method, const nlohmann::json& params, bool json,
               const std::function<void(const nlohmann::json&, std::ostream&)>& print,
               const char* okKey = nullptr);

}  // namespace chitin::cli
