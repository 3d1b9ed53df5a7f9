// SPDX-License-Identifier: Apache-2.0
// The `web_search` tool (see web-search-tool.h).
// Runs in: supervisor

#include "web-search-tool.h"

#include <capnp/message.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

#include "broker.h"
#include "utf8.h"
#include "web.capnp.h"
#include "worker-host.h"

namespace chitin {

namespace {

using nlohmann::json;

constexpr size_t MAX_QUERY_BYTES = 1000;
constexpr uint32_t SEARCH_GRACE_MS = 5000;

std::string clean(capnp::Text::Reader text, size_t max) {
  std::string raw(text.begin(), std::min<size_t>(text.size(), max));
  return sanitizeUtf8(kj::ArrayPtr<const char>(raw.data(), raw.size())).cStr();
}

}  // namespace

ToolOutcome searchOutcomeFrom(rpc::SearchOutcome::Reader outcome, const std::string& query,
                              const std::string& name, uint32_t cap) {
  if (outcome.isFailed()) {
    return ToolOutcome{ToolOutcome::Status::ERROR, "error: web_search (" + name + ") failed: " +
                                                       clean(outcome.getFailed(), 2000)};
  }
  auto hits = outcome.getHits();
  std::string out = "Search results for \"" + query + "\" (" + name + "):\n";
  if (hits.size() == 0) out += "\n(no results)\n";
  unsigned n = 0;
  for (auto hit : hits) {
    if (++n > 20) break;
    out += "\n" + std::to_string(n) + ". " + clean(hit.getTitle(), 500) + "\n   " +
           clean(hit.getUrl(), 2000) + "\n";
    std::string snippet = clean(hit.getSnippet(), 1000);
    if (!snippet.empty()) out += "   " + snippet + "\n";
    if (out.size() > cap) break;
  }
  if (out.size() > cap) {
    size_t end = cap;
    while (end > 0 && (static_cast<unsigned char>(out[end]) & 0xc0) == 0x80) end--;
    out.resize(end);
  }
  return ToolOutcome{ToolOutcome::Status::OK, std::move(out)};
}

SearchProvider searchProvider(const config::WebSearchConfig& c, const std::string& homeDir) {
  SearchProvider p;
  p.provider = c.provider().empty() ? "duckduckgo" : c.provider();
  p.endpoint = c.url();
  if (p.provider == "brave") {
    if (p.endpoint.empty()) p.endpoint = "https://api.search.brave.com/res/v1/web/search";
    p.credentialPath =
        c.credential_file().empty() ? homeDir + "/credentials/brave-search" : c.credential_file();
  } else if (p.provider == "duckduckgo") {
    if (p.endpoint.empty()) p.endpoint = "https://html.duckduckgo.com/html/";
  } else if (p.provider == "searxng") {
    if (p.endpoint.empty()) {
      throw std::invalid_argument(
          "web_search.url: the searxng provider needs your instance's URL (e.g. "
          "\"https://searx.example.org/\")");
    }
  } else {
    throw std::invalid_argument(
        "web_search.provider: expected \"duckduckgo\", \"brave\" or "
        "\"searxng\", got \"" +
        c.provider() + "\"");
  }
  try {
    egress::urlRule(p.endpoint, "web_search.url");
  } catch (const egress::RuleError& e) {
    throw std::invalid_argument(e.what());
  }
  return p;
}

std::string checkWebSearchArguments(const json& args) {
  auto query = args.find("query");
  if (query == args.end() || !query->is_string() || query->get<std::string>().empty()) {
    return "argument \"query\" must be a non-empty string";
  }
  if (query->get<std::string>().size() > MAX_QUERY_BYTES) {
    return "argument \"query\" is longer than 1000 bytes";
  }
  if (query->get<std::string>().find('\0') != std::string::npos) {
    return "argument \"query\" contains a NUL byte";
  }
  if (auto count = args.find("count"); count != args.end() && !count->is_null()) {
    if (!count->is_number_integer() || count->get<int64_t>() < 1 || count->get<int64_t>() > 20) {
      return "argument \"count\" must be a whole number from 1 to 20";
    }
  }
  return "";
}

kj::Promise<ToolOutcome> WebSearchTool::run(const std::string& tool,
                                            const std::string& argumentsJson,
                                            const std::string& workspaceDir,
                                            const std::vector<std::string>& hiddenDirs,
                                            CallScope* scope) {
  if (tool != "web_search") return inner_.run(tool, argumentsJson, workspaceDir, hiddenDirs, scope);
  json args =
      json::parse(argumentsJson.empty() ? std::string("{}") : argumentsJson, nullptr, false);
  std::string problem =
      args.is_object() ? checkWebSearchArguments(args) : "arguments must be a JSON object";
  if (!problem.empty()) return ToolOutcome{ToolOutcome::Status::ERROR, "error: " + problem};
  if (context_.broker == nullptr) {
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: web_search is unavailable: the gateway has no egress broker"};
  }
  const SearchProvider& provider = settings_.provider;
  if (provider.provider == "brave" && settings_.apiKey.empty()) {
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: web_search (Brave) has no API key: put it in " +
                           provider.credentialPath + " (mode 0600) and restart the gateway"};
  }
  std::unique_ptr<egress::Endpoint> endpoint;
  kj::Own<WorkerHost> host;
  try {
    // The provider's host:port and nothing else (privateOk only as the owner wrote it).
    egress::Rule rule =
        egress::ownerRule(egress::urlRule(provider.endpoint, "web_search.url"), settings_.egress);
    rule.origin = "web_search." + provider.provider;
    endpoint = context_.broker->open("tool:web_search", {rule});
    spawn::SpawnRequest request;
    request.profile = "web-search";
    request.egressSocket = endpoint->socketPath();
    host = kj::heap<WorkerHost>(context_.loop, context_.io, context_.spawner.spawn(request),
                                "tool worker web_search",
                                readerOptionsFor(rpc::MAX_SEARCH_OUTCOME_BYTES));
  } catch (const spawn::SandboxUnavailable& e) {
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       std::string("error: web_search did not run because its sandbox could not "
                                   "be set up: ") +
                           e.what()};
  } catch (const std::exception& e) {
    spdlog::error("cannot start the web_search worker: {}", e.what());
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: web_search did not run: its worker could not be started"};
  } catch (const kj::Exception& e) {
    spdlog::error("cannot start the web_search worker: {}", e.getDescription().cStr());
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: web_search did not run: its worker could not be started"};
  }
  auto searcher = host->bootstrap<rpc::WebSearcher>();
  auto request = searcher.searchRequest();
  auto r = request.initRequest();
  r.setProvider(provider.provider);
  r.setEndpoint(provider.endpoint);
  r.setApiKey(settings_.apiKey);
  std::string query = args["query"].get<std::string>();
  r.setQuery(query);
  r.setCount(static_cast<uint8_t>(args.value("count", 5)));
  r.setTimeoutMs(settings_.timeoutMs);
  WorkerHost* stoppable = host.get();
  auto deadline =
      context_.io.provider->getTimer()
          .afterDelay((settings_.timeoutMs + SEARCH_GRACE_MS) * kj::MILLISECONDS)
          .then([stoppable]() -> kj::Promise<ToolOutcome> {
            stoppable->kill("web_search deadline");
            return ToolOutcome{ToolOutcome::Status::ERROR, "error: web_search timed out"};
          });
  uint32_t cap = settings_.maxOutputBytes;
  std::string name = provider.provider;
  auto exited = host->onExit();
  return request.send()
      .then([query, cap, name](capnp::Response<rpc::WebSearcher::SearchResults>&& response) {
        return searchOutcomeFrom(response.getOutcome(), query, name, cap);
      })
      .exclusiveJoin(kj::mv(deadline))
      .catch_([exited = kj::mv(exited)](kj::Exception&& e) mutable -> kj::Promise<ToolOutcome> {
        if (e.getType() == kj::Exception::Type::DISCONNECTED) {
          return exited.then([](WorkerExit exit) {
            return ToolOutcome{ToolOutcome::Status::ERROR,
                               "error: web_search stopped before answering: " + exit.describe()};
          });
        }
        spdlog::warn("web_search failed: {}", e.getDescription().cStr());
        return ToolOutcome{ToolOutcome::Status::ERROR, "error: web_search failed"};
      })
      .attach(kj::mv(host), kj::mv(endpoint));
}

}  // namespace chitin
