// SPDX-License-Identifier: Apache-2.0
// The `web_fetch` tool: one sandboxed worker per call fetches a URL through the egress broker,
// the supervisor deciding and granting every hop of it.
// Runs in: supervisor
//
// OpenClaw's name and arguments: {url, extractMode: "markdown"|"text", maxChars}. The guard
// decides the call as Action::"web_fetch" on Host::"<host of url>". Then, for each hop:
//   1. the hop's host:port becomes the worker's only broker rule (Endpoint::replaceRules;
//      privateOk only if the owner listed that exact host:port in egress.allow_private);
//   2. the worker GETs the URL (chitin-worker-web-fetch, sandbox-profiles/web-fetch.textproto)
//      and returns the page (extracted to Markdown or text in the worker) or a redirect;
//   3. a redirect is decided again by the guard (CallScope::decideHost: the policy on the new Host,
//      audited) and becomes the next hop, at most MAX_HOPS in all.
// The broker still resolves every name itself and refuses non-public addresses, so a policy
// that allows a Host never lets a name that resolves to loopback through. Whatever the worker
// returns is capped again here and made valid UTF-8; the guard taints the session with it.

#pragma once

#include <kj/async-io.h>
#include <uv.h>

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "config.pb.h"
#include "rules.h"
#include "tool-runner.h"
#include "web.capnp.h"

namespace chitin {

namespace egress {
class Broker;
}

struct WebFetchArgs {
  std::string url;
  bool markdown = true;
  uint32_t maxChars = 50000;
};

constexpr uint32_t WEB_FETCH_MAX_CHARS = 200000;  // the most a call may ask for
constexpr size_t WEB_FETCH_MAX_URL_BYTES = 8192;
constexpr uint32_t WEB_FETCH_MAX_HOPS = 5;  // the first request plus 4 redirects

// Checks a `web_fetch` call's parsed arguments and fills `out`; "" when valid, else a message
// for the model naming the argument and what was expected.
std::string parseWebFetchArguments(const nlohmann::json& args, WebFetchArgs& out);

// The Host a web tool's call is decided on: the canonical host and port of its URL (web_fetch,
// browse), of the search provider's endpoint (web_search: `searchEndpoint`), or nullopt when it
// has none (a browser action that loads nothing). Throws egress::RuleError for a URL that is not
// an http(s) URL with a valid host.
std::optional<egress::Rule> webHostOf(const std::string& tool, const nlohmann::json& args,
                                      const std::string& searchEndpoint = "");

// What the supervisor makes of one hop's answer (`result`, for `url`, the call's first URL being
// `firstUrl`): the outcome the model reads, or, for a redirect, the next URL (valid UTF-8, at
// most WEB_FETCH_MAX_URL_BYTES, not yet decided). Text is capped at `maxChars` characters and the
// whole at about `maxOutputBytes`, valid UTF-8 without NUL.
struct FetchReading {
  std::optional<ToolOutcome> outcome;
  std::string redirect;
};
FetchReading readFetchResult(rpc::FetchResult::Reader result, const std::string& url,
                             const std::string& firstUrl, uint32_t maxChars,
                             uint32_t maxOutputBytes);

// Whether `tool` brings content from the web into the session (and so taints it).
bool isWebTool(const std::string& tool);

// What the web tools (web_fetch, web_search) need to start a sandboxed worker with its own
// broker endpoint. `broker` may be null: the tools then fail with a message saying so.
struct WebToolContext {
  uv_loop_t* loop;
  kj::AsyncIoContext& io;
  spawn::Spawner& spawner;
  egress::Broker* broker;
};

struct WebFetchSettings {
  uint64_t maxBodyBytes = 2 << 20;  // per hop
  uint32_t timeoutMs = 30000;       // per hop, in the worker; the supervisor allows a bit more
  config::EgressConfig egress;      // allow_private decides privateOk for a granted host:port
  uint32_t maxOutputBytes = 65536;  // what the model reads, as for every tool (agent config)
};

// The model's tool executor with `web_fetch` handled here and every other tool passed on.
class WebFetchTool final : public ToolDecorator {
 public:
  WebFetchTool(ToolExecutor& inner, WebToolContext context, WebFetchSettings settings)
      : ToolDecorator(inner), context_(context), settings_(std::move(settings)) {}

  kj::Promise<ToolOutcome> run(const std::string& tool, const std::string& argumentsJson,
                               const std::string& workspaceDir,
                               const std::vector<std::string>& hiddenDirs,
                               CallScope* scope = nullptr) override;

 private:
  struct Call;
  kj::Promise<ToolOutcome> hop(Call* call, std::string url, uint32_t n);

  WebToolContext context_;
  WebFetchSettings settings_;
};

}  // namespace chitin
