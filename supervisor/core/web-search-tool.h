// SPDX-License-Identifier: Apache-2.0
// The `web_search` tool: one sandboxed worker per call asks the configured provider (Brave's
// Search API, a SearXNG instance's JSON API, or DuckDuckGo's HTML endpoint) and returns
// title/url/snippet results.
// Runs in: supervisor
//
// OpenClaw's name and arguments: {query, count}. The guard decides the call as
// Action::"web_search" on Host::"<the provider's host>" (the query in context.args). The worker
// gets one broker rule, the provider's host:port, and the Brave key (read here from
// $CHITIN_HOME/credentials/brave-search) in the request itself: it never sees a file, an
// environment variable or a second destination. Results are capped and cleaned here; the
// guard taints the session with them.
//
// Why DuckDuckGo as the provider that needs no key: its HTML endpoint
// (html.duckduckgo.com/html/) answers plain GETs without an account, a key or JavaScript, and
// its markup (a.result__a, .result__snippet) has been stable for years; the alternatives that
// need no key either require running an instance (SearXNG, supported separately) or forbid
// automated use outright.

#pragma once

#include <kj/async-io.h>
#include <uv.h>

#include <nlohmann/json_fwd.hpp>
#include <string>

#include "config.pb.h"
#include "rules.h"
#include "tool-runner.h"
#include "web-fetch-tool.h"

namespace chitin {

// The provider, endpoint and key file web_search uses: the config's, with defaults filled in.
struct SearchProvider {
  std::string provider;        // "duckduckgo" | "brave" | "searxng"
  std::string endpoint;        // http(s) URL
  std::string credentialPath;  // brave only
};
// Throws std::invalid_argument naming the setting when the config is not usable.
SearchProvider searchProvider(const config::WebSearchConfig& c, const std::string& homeDir);

// Checks a `web_search` call's arguments; "" when valid, else a message for the model.
std::string checkWebSearchArguments(const nlohmann::json& args);

// What the model reads of a search worker's `outcome` for `query` from provider `name`: at most
// 20 hits, each text capped, the whole at about `maxOutputBytes`, valid UTF-8 without NUL.
ToolOutcome searchOutcomeFrom(rpc::SearchOutcome::Reader outcome, const std::string& query,
                              const std::string& name, uint32_t maxOutputBytes);

struct WebSearchSettings {
  SearchProvider provider;
  std::string apiKey;  // brave: read by the supervisor at start
  uint32_t timeoutMs = 20000;
  uint32_t maxOutputBytes = 65536;
  config::EgressConfig egress;
};

class WebSearchTool final : public ToolDecorator {
 public:
  WebSearchTool(ToolExecutor& inner, WebToolContext context, WebSearchSettings settings)
      : ToolDecorator(inner), context_(context), settings_(std::move(settings)) {}

  kj::Promise<ToolOutcome> run(const std::string& tool, const std::string& argumentsJson,
                               const std::string& workspaceDir,
                               const std::vector<std::string>& hiddenDirs,
                               CallScope* scope = nullptr) override;
  std::string fixedEndpoint(const std::string& tool) const override {
    return tool == "web_search" ? settings_.provider.endpoint : ToolDecorator::fixedEndpoint(tool);
  }

 private:
  WebToolContext context_;
  WebSearchSettings settings_;
};

}  // namespace chitin
