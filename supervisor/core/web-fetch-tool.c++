// SPDX-License-Identifier: Apache-2.0
// The `web_fetch` tool, hop by hop (see web-fetch-tool.h).
// Runs in: supervisor

#include "web-fetch-tool.h"

#include <capnp/message.h>
#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "broker.h"
#include "utf8.h"
#include "web.capnp.h"
#include "worker-host.h"

namespace chitin {

namespace {

using nlohmann::json;

// What the supervisor allows beyond the worker's own per-hop deadline before it kills it.
constexpr uint32_t FETCH_GRACE_MS = 5000;

// Whether `text` is an http(s) URL without spaces or control bytes (the host is checked by
// egress::urlRule).
bool plainUrl(const std::string& text) {
  for (unsigned char c : text) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

// At most `maxChars` code points of valid UTF-8 without NUL.
std::string capText(const std::string& raw, uint32_t maxChars, bool& cut) {
  std::string clean =
      sanitizeUtf8(kj::ArrayPtr<const char>(raw.data(), raw.size())).cStr();  // stops at NUL
  size_t chars = 0;
  for (size_t i = 0; i < clean.size(); i++) {
    if ((static_cast<unsigned char>(clean[i]) & 0xc0) != 0x80 && chars++ == maxChars) {
      clean.resize(i);
      cut = true;
      break;
    }
  }
  return clean;
}

// `url` with its host in the canonical form the policy decided on (IDN as punycode, an IP
// literal as inet_ntop writes it) and an explicit port: the worker requests exactly the
// destination that was decided and granted, whatever its URL parser makes of other spellings.
std::string canonicalUrl(const std::string& url, const egress::Rule& rule) {
  size_t scheme = url.find("://");
  size_t start = scheme + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string rest = end == std::string::npos ? "/" : url.substr(end);
  if (!rest.empty() && rest[0] != '/') rest = "/" + rest;
  std::string host = rule.host.find(':') != std::string::npos ? "[" + rule.host + "]" : rule.host;
  std::string lowerScheme = url.substr(0, scheme);
  for (char& ch : lowerScheme) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return lowerScheme + "://" + host + ":" + std::to_string(rule.port) + rest;
}

}  // namespace

bool isWebTool(const std::string& tool) {
  return tool == "web_fetch" || tool == "web_search" || tool == "browse";
}

std::string parseWebFetchArguments(const json& args, WebFetchArgs& out) {
  auto url = args.find("url");
  if (url == args.end() || !url->is_string()) return "argument \"url\" must be a string (a URL)";
  out.url = url->get<std::string>();
  if (out.url.size() > WEB_FETCH_MAX_URL_BYTES) return "argument \"url\" is longer than 8 KiB";
  if (!plainUrl(out.url)) {
    return "argument \"url\" contains spaces or control characters (percent-encode them)";
  }
  try {
    egress::urlRule(out.url, "argument \"url\"");
  } catch (const egress::RuleError& e) {
    return e.what();
  }
  if (auto mode = args.find("extractMode"); mode != args.end() && !mode->is_null()) {
    if (!mode->is_string() || (*mode != "markdown" && *mode != "text")) {
      return "argument \"extractMode\" must be \"markdown\" or \"text\"";
    }
    out.markdown = *mode == "markdown";
  }
  if (auto max = args.find("maxChars"); max != args.end() && !max->is_null()) {
    if (!max->is_number_integer() || max->get<int64_t>() < 1) {
      return "argument \"maxChars\" must be a positive whole number";
    }
    out.maxChars = static_cast<uint32_t>(
        std::min<int64_t>(max->get<int64_t>(), static_cast<int64_t>(WEB_FETCH_MAX_CHARS)));
  }
  return "";
}

std::optional<egress::Rule> webHostOf(const std::string& tool, const json& args,
                                      const std::string& searchEndpoint) {
  if (tool == "web_search") {
    if (searchEndpoint.empty()) throw egress::RuleError("web_search has no provider configured");
    return egress::urlRule(searchEndpoint, "web_search.url");
  }
  auto url = args.find("url");
  if (tool == "browse" && (url == args.end() || !url->is_string())) return std::nullopt;
  if (url == args.end() || !url->is_string()) {
    throw egress::RuleError("argument \"url\": expected an http:// or https:// URL");
  }
  return egress::urlRule(url->get<std::string>(), "argument \"url\"");
}

struct WebFetchTool::Call {
  WebFetchArgs args;
  CallScope* scope;
  std::unique_ptr<egress::Endpoint> endpoint;
  kj::Own<WorkerHost> host;
  rpc::WebFetcher::Client fetcher = nullptr;
  std::string firstUrl;
};

FetchReading readFetchResult(rpc::FetchResult::Reader result, const std::string& url,
                             const std::string& firstUrl, uint32_t maxChars,
                             uint32_t maxOutputBytes) {
  FetchReading reading;
  bool ignored = false;
  if (result.isFailed()) {
    reading.outcome = ToolOutcome{
        ToolOutcome::Status::ERROR,
        "error: fetching " + url + " failed: " + capText(result.getFailed(), 2000, ignored)};
    return reading;
  }
  if (result.isRedirect()) {
    reading.redirect = capText(result.getRedirect(), WEB_FETCH_MAX_URL_BYTES, ignored);
    return reading;
  }
  auto page = result.getPage();
  bool cut = page.getTruncated();
  std::string text = capText(page.getText(), maxChars, cut);
  std::string out = "URL: " + url + "\n";
  if (url != firstUrl) out += "Redirected from: " + firstUrl + "\n";
  out += "Status: " + std::to_string(result.getStatus()) + "\n";
  out += "Content-Type: " + capText(page.getContentType(), 200, ignored) + "\n";
  std::string title = capText(page.getTitle(), 500, ignored);
  if (!title.empty()) out += "Title: " + title + "\n";
  if (cut) out += "Truncated: yes (body or text over the limit)\n";
  out += "\n" + text;
  if (out.size() > maxOutputBytes) {
    out.resize(
        utf8BoundaryAtOrBefore(kj::ArrayPtr<const char>(out.data(), out.size()), maxOutputBytes));
    out += "\n[output truncated by the supervisor at the tool output limit]";
  }
  reading.outcome =
      ToolOutcome{result.getStatus() >= 400 ? ToolOutcome::Status::ERROR : ToolOutcome::Status::OK,
                  std::move(out)};
  return reading;
}

kj::Promise<ToolOutcome> WebFetchTool::run(const std::string& tool,
                                           const std::string& argumentsJson,
                                           const std::string& workspaceDir,
                                           const std::vector<std::string>& hiddenDirs,
                                           CallScope* scope) {
  if (tool != "web_fetch") return inner_.run(tool, argumentsJson, workspaceDir, hiddenDirs, scope);
  auto call = kj::heap<Call>();
  call->scope = scope;
  json args =
      json::parse(argumentsJson.empty() ? std::string("{}") : argumentsJson, nullptr, false);
  std::string problem = args.is_object() ? parseWebFetchArguments(args, call->args)
                                         : "arguments must be a JSON object";
  if (!problem.empty()) return ToolOutcome{ToolOutcome::Status::ERROR, "error: " + problem};
  if (context_.broker == nullptr) {
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: web_fetch is unavailable: the gateway has no egress broker"};
  }
  call->firstUrl = call->args.url;
  try {
    // No rule yet: each hop is granted after it was decided.
    call->endpoint = context_.broker->open("tool:web_fetch", {});
    spawn::SpawnRequest request;
    request.profile = "web-fetch";
    request.egressSocket = call->endpoint->socketPath();
    call->host = kj::heap<WorkerHost>(context_.loop, context_.io, context_.spawner.spawn(request),
                                      "tool worker web_fetch",
                                      readerOptionsFor(rpc::MAX_FETCH_RESULT_BYTES));
  } catch (const spawn::SandboxUnavailable& e) {
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       std::string("error: web_fetch did not run because its sandbox could not "
                                   "be set up: ") +
                           e.what()};
  } catch (const kj::Exception& e) {
    spdlog::error("cannot start the web_fetch worker: {}", e.getDescription().cStr());
    return ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: web_fetch did not run: its worker could not be started"};
  }
  call->fetcher = call->host->bootstrap<rpc::WebFetcher>();
  auto exited = call->host->onExit();
  std::string url = call->args.url;
  auto result = hop(call.get(), url, 1);
  // A worker that dies before answering is an outcome, not a fault.
  return result
      .catch_([exited = kj::mv(exited)](kj::Exception&& e) mutable -> kj::Promise<ToolOutcome> {
        if (e.getType() == kj::Exception::Type::DISCONNECTED) {
          return exited.then([](WorkerExit exit) {
            return ToolOutcome{ToolOutcome::Status::ERROR,
                               "error: web_fetch stopped before answering: " + exit.describe()};
          });
        }
        spdlog::warn("web_fetch failed: {}", e.getDescription().cStr());
        return ToolOutcome{ToolOutcome::Status::ERROR, "error: web_fetch failed"};
      })
      .attach(kj::mv(call));
}

kj::Promise<ToolOutcome> WebFetchTool::hop(Call* call, std::string url, uint32_t n) {
  egress::Rule grant;
  try {
    grant = egress::urlRule(url, "the URL");
  } catch (const egress::RuleError& e) {
    return ToolOutcome{ToolOutcome::Status::ERROR, std::string("error: ") + e.what()};
  }
  grant.privateOk = egress::listedPrivate(grant, settings_.egress);
  grant.origin = "web_fetch hop " + std::to_string(n);
  call->endpoint->replaceRules({grant});

  auto request = call->fetcher.fetchRequest();
  auto r = request.initRequest();
  r.setUrl(canonicalUrl(url, grant));
  r.setMarkdown(call->args.markdown);
  r.setMaxChars(call->args.maxChars);
  r.setMaxBodyBytes(settings_.maxBodyBytes);
  r.setTimeoutMs(settings_.timeoutMs);
  Call* c = call;
  WorkerHost* host = call->host.get();
  auto deadline = context_.io.provider->getTimer()
                      .afterDelay((settings_.timeoutMs + FETCH_GRACE_MS) * kj::MILLISECONDS)
                      .then([host, this]() -> kj::Promise<ToolOutcome> {
                        host->kill("web_fetch deadline");
                        return ToolOutcome{ToolOutcome::Status::ERROR,
                                           "error: web_fetch timed out after " +
                                               std::to_string(settings_.timeoutMs / 1000) + " s"};
                      });
  return request.send()
      .then([this, c, url, n](capnp::Response<rpc::WebFetcher::FetchResults>&& response)
                -> kj::Promise<ToolOutcome> {
        FetchReading reading = readFetchResult(response.getResult(), url, c->firstUrl,
                                               c->args.maxChars, settings_.maxOutputBytes);
        if (reading.outcome) return kj::mv(*reading.outcome);
        const std::string& next = reading.redirect;
        if (n >= WEB_FETCH_MAX_HOPS) {
          return ToolOutcome{ToolOutcome::Status::ERROR,
                             "error: more than " + std::to_string(WEB_FETCH_MAX_HOPS - 1) +
                                 " redirects from " + c->firstUrl + " (the last to " + next + ")"};
        }
        std::string why = c->scope == nullptr
                              ? "no further destination is allowed"
                              : c->scope->decideHost("web_fetch", next, Initiator::REDIRECT);
        if (!why.empty()) {
          return ToolOutcome{ToolOutcome::Status::DENIED, "denied: " + url + " redirects to " +
                                                              next + ", which is refused: " + why};
        }
        return hop(c, next, n + 1);
      })
      .exclusiveJoin(kj::mv(deadline));
}

}  // namespace chitin
