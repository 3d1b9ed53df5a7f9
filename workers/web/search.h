// SPDX-License-Identifier: Apache-2.0
// web_search's providers: the request each expects and the results parsed from its answer.
// Runs in: worker (sandboxed)
//
// Written from the providers' documentation: Brave Search API (GET /res/v1/web/search?q=&count=,
// header X-Subscription-Token, JSON web.results[].{title,url,description}); SearXNG's JSON API
// (GET <instance>/search?q=&format=json, results[].{title,url,content}); DuckDuckGo's HTML
// endpoint (GET html.duckduckgo.com/html/?q=, results as a.result__a / .result__snippet, links
// through /l/?uddg=<encoded URL>). Pure functions over attacker-influenced bytes.

#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace chitin::web {

struct SearchHitText {
  std::string title;
  std::string url;
  std::string snippet;
};

// The request URL for `provider` at `endpoint`; "" for an unknown provider.
std::string searchRequestUrl(const std::string& provider, const std::string& endpoint,
                             const std::string& query, unsigned count);

// Extra request headers ("Name: value").
std::vector<std::string> searchHeaders(const std::string& provider, const std::string& apiKey);

// The hits in a provider's answer (at most `count`, only http(s) URLs); throws
// std::runtime_error naming the provider when the answer is not what its API returns.
std::vector<SearchHitText> parseSearchAnswer(const std::string& provider, std::string_view body,
                                             unsigned count);

// "%XX"-encoding of everything but unreserved characters (RFC 3986).
std::string urlEncode(std::string_view text);
// Inverse of urlEncode ("+" as a space); invalid escapes kept as they are.
std::string urlDecode(std::string_view text);

}  // namespace chitin::web
