// SPDX-License-Identifier: Apache-2.0
// Slack's Web API (see slack-api.h).
// Runs in: worker (sandboxed)

#include "slack-api.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "utf8.h"

namespace chitin::channel::slack {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto CALL_BUDGET = std::chrono::seconds(60);
constexpr int MAX_ATTEMPTS = 6;
const char* USER_AGENT = "User-Agent: chitin-slack/0.1";

// Errors a retry cannot fix: the owner has to change a token, a scope or the app.
const std::set<std::string> AUTH_ERRORS = {
    "invalid_auth",           "not_authed",       "token_revoked",
    "token_expired",          "account_inactive", "missing_scope",
    "not_allowed_token_type", "no_permission",    "ekm_access_denied",
};

// "https://files.slack.com/x" -> "files.slack.com" (lower-case, no port); "" when unparseable.
std::string hostOf(const std::string& url) {
  size_t start = url.find("://");
  if (start == std::string::npos) return "";
  start += 3;
  size_t end = url.find_first_of("/?#", start);
  std::string authority =
      url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (authority.find('@') != std::string::npos) return "";  // userinfo: not a URL Slack makes
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    authority = close == std::string::npos ? "" : authority.substr(0, close + 1);
  } else {
    authority = authority.substr(0, authority.find(':'));
  }
  std::transform(authority.begin(), authority.end(), authority.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return authority;
}

std::string formEncode(const Json& args) {
  std::string body;
  for (const auto& [key, value] : args.items()) {
    if (!body.empty()) body += '&';
    std::string text = value.is_string()
                           ? value.get<std::string>()
                           : value.dump(-1, ' ', false, Json::error_handler_t::replace);
    body += percentEncode(key) + "=" + percentEncode(text);
  }
  return body;
}

std::string trimLine(std::string line) {
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
  size_t start = 0;
  while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start]))) ++start;
  return line.substr(start);
}

}  // namespace

ApiError::ApiError(const std::string& method, std::string code, const std::string& detail)
    : ChannelError("Slack " + method + ": " + clipUtf8(code, 80) + detail),
      code_(std::move(code)) {}

Tokens parseTokens(const std::string& credential) {
  Tokens tokens;
  size_t start = 0;
  while (start <= credential.size()) {
    size_t newline = credential.find('\n', start);
    std::string line = trimLine(credential.substr(
        start, newline == std::string::npos ? std::string::npos : newline - start));
    bool clean = true;
    for (char c : line) clean = clean && c > ' ' && c < 0x7f;
    if (!line.empty() && !clean) {
      throw ChannelError("the Slack credential holds a line with spaces or control characters");
    }
    if (line.rfind("xapp-", 0) == 0) {
      tokens.app = line;
    } else if (line.rfind("xoxb-", 0) == 0) {
      tokens.bot = line;
    } else if (!line.empty()) {
      throw ChannelError(
          "the Slack credential holds a line that is neither an app-level token "
          "(xapp-...) nor a bot token (xoxb-...)");
    }
    if (newline == std::string::npos) break;
    start = newline + 1;
  }
  if (tokens.app.empty() || tokens.bot.empty()) {
    throw ChannelError(std::string("the Slack credential must hold two lines, the app-level token "
                                   "(xapp-...) and the bot token (xoxb-...); missing: ") +
                       (tokens.app.empty() ? "the app-level token" : "the bot token"));
  }
  return tokens;
}

Api::Api(std::string apiRoot, Tokens tokens, const std::string& egressSocket, Host& host)
    : apiRoot_(std::move(apiRoot)),
      apiHost_(hostOf(apiRoot_)),
      tokens_(std::move(tokens)),
      host_(host),
      http_(egressSocket) {}

void Api::interrupt() { http_.interrupt(); }

bool Api::trustedHost(const std::string& url) const {
  std::string host = hostOf(url);
  if (host.empty()) return false;
  bool https = url.rfind("https://", 0) == 0;
  bool slack =
      host == "slack.com" || (host.size() > 10 && host.substr(host.size() - 10) == ".slack.com");
  // The API root's own host (a test fake, a proxy the owner set up) is trusted like Slack, over
  // whatever scheme the owner gave it.
  return (https && slack) || host == apiHost_;
}

HttpResponse Api::perform(HttpRequest& request, const std::string& what) {
  auto deadline = Clock::now() + CALL_BUDGET;
  for (int attempt = 1;; ++attempt) {
    HttpResponse response = http_.perform(request);
    bool transient = response.status == 502 || response.status == 503 || response.status == 504;
    if ((response.status != 429 && !transient) || attempt == MAX_ATTEMPTS) return response;
    auto wait = response.status == 429
                    ? retryAfter(response, milliseconds(1000), std::chrono::hours(1))
                    : milliseconds(500 * attempt);
    if (Clock::now() + wait > deadline) {
      throw ChannelError(
          "Slack " + what + ": rate limited for " +
          std::to_string(std::chrono::duration_cast<std::chrono::seconds>(wait).count()) +
          " s, more than a call may wait");
    }
    if (!host_.sleepFor(wait)) throw ChannelError("the worker is stopping");
  }
}

Json Api::call(const std::string& method, const Json& args, bool form, bool app) {
  HttpRequest request;
  request.method = "POST";
  request.url = apiRoot_ + "/" + method;
  request.headers = {"Authorization: Bearer " + (app ? tokens_.app : tokens_.bot), USER_AGENT};
  if (form) {
    request.headers.push_back("Content-Type: application/x-www-form-urlencoded");
    request.body = formEncode(args);
  } else {
    request.headers.push_back("Content-Type: application/json; charset=utf-8");
    request.body = args.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  HttpResponse response = perform(request, method);
  if (response.status != 200) {
    throw ChannelError("Slack " + method + ": HTTP " + std::to_string(response.status));
  }
  auto answer = parsePlatformJson(response.body);
  if (!answer || !answer->is_object())
    throw ChannelError("Slack " + method + ": an answer that is not JSON");
  if (!boolField(*answer, "ok")) {
    std::string code = textField(*answer, "error");
    if (code.empty()) code = "unknown_error";
    std::string needed = textField(*answer, "needed");
    std::string detail = needed.empty() ? "" : " (needs the " + clipUtf8(needed, 80) + " scope)";
    if (AUTH_ERRORS.count(code)) throw AuthError(method, code, detail);
    throw ApiError(method, code, detail);
  }
  return *answer;
}

std::string Api::download(const std::string& url, size_t maxBytes) {
  if (!trustedHost(url)) {
    throw ChannelError("Slack file URL on host \"" + clipUtf8(hostOf(url), 80) +
                       "\" is not Slack's; not sending the token there");
  }
  HttpRequest request;
  request.url = url;
  request.headers = {"Authorization: Bearer " + tokens_.bot, USER_AGENT};
  request.maxResponseBytes = maxBytes;
  request.timeout = std::chrono::seconds(120);
  HttpResponse response = perform(request, "file download");
  // Without a valid token Slack redirects to its sign-in page instead of failing.
  if (response.status != 200) {
    throw ChannelError("Slack file download: HTTP " + std::to_string(response.status));
  }
  return std::move(response.body);
}

void Api::upload(const std::string& url, const std::string& bytes, const std::string& fileName) {
  if (!trustedHost(url)) {
    throw ChannelError("Slack upload URL on host \"" + clipUtf8(hostOf(url), 80) +
                       "\" is not Slack's");
  }
  HttpRequest request;
  request.method = "POST";
  request.url = url;
  request.headers = {"Content-Type: application/octet-stream", USER_AGENT};
  request.body = bytes;
  request.timeout = std::chrono::seconds(300);
  HttpResponse response = perform(request, "upload of " + clipUtf8(fileName, 80));
  if (response.status != 200) {
    throw ChannelError("Slack upload of " + clipUtf8(fileName, 80) + ": HTTP " +
                       std::to_string(response.status));
  }
}

}  // namespace chitin::channel::slack
