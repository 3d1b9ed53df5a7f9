// SPDX-License-Identifier: Apache-2.0
// web_search's providers (see search.h).
// Runs in: worker (sandboxed)

#include "search.h"

#include <libxml/HTMLparser.h>
#include <libxml/tree.h>

#include <climits>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "extract.h"

namespace chitin::web {

namespace {

using nlohmann::json;

constexpr size_t MAX_FIELD = 2000;

std::string clip(std::string s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
    if (out.size() >= MAX_FIELD) break;
  }
  return out;
}

bool webUrl(const std::string& url) {
  return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0;
}

std::string field(const json& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->is_string() ? clip(it->get<std::string>()) : "";
}

// Search-result snippets carry <strong> marks (Brave, SearXNG): their text only.
std::string textOf(const std::string& maybeHtml) {
  if (maybeHtml.find('<') == std::string::npos) return maybeHtml;
  return clip(extractHtml("<p>" + maybeHtml + "</p>", "", false, MAX_FIELD).text);
}

std::vector<SearchHitText> fromJson(const json& list, const char* snippetKey, unsigned count) {
  std::vector<SearchHitText> hits;
  if (!list.is_array()) return hits;
  for (const auto& r : list) {
    if (hits.size() >= count) break;
    if (!r.is_object()) continue;
    SearchHitText hit{textOf(field(r, "title")), field(r, "url"), textOf(field(r, snippetKey))};
    if (webUrl(hit.url)) hits.push_back(std::move(hit));
  }
  return hits;
}

bool hasClass(const xmlNode* n, const char* cls) {
  xmlChar* v = xmlGetProp(n, BAD_CAST "class");
  if (v == nullptr) return false;
  std::string classes = " " + std::string(reinterpret_cast<const char*>(v)) + " ";
  xmlFree(v);
  return classes.find(std::string(" ") + cls + " ") != std::string::npos;
}

std::string contentOf(const xmlNode* n) {
  xmlChar* t = xmlNodeGetContent(n);
  std::string s = t ? reinterpret_cast<const char*>(t) : "";
  if (t) xmlFree(t);
  return clip(s);
}

// DuckDuckGo links go through its redirector: //duckduckgo.com/l/?uddg=<encoded>&rut=...
std::string ddgTarget(std::string href) {
  size_t at = href.find("uddg=");
  if (at != std::string::npos) {
    std::string value = href.substr(at + 5);
    value = value.substr(0, value.find('&'));
    return urlDecode(value);
  }
  return href;
}

std::vector<SearchHitText> fromDuckDuckGo(std::string_view body, unsigned count) {
  std::vector<SearchHitText> hits;
  htmlDocPtr doc = htmlReadMemory(
      body.data(), static_cast<int>(std::min<size_t>(body.size(), INT_MAX)), nullptr, "UTF-8",
      HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET);
  if (doc == nullptr) throw std::runtime_error("duckduckgo: the answer is not HTML");
  bool sawResults = false;
  // Iterative walk in document order (no recursion on attacker-chosen depth).
  const xmlNode* n = xmlDocGetRootElement(doc);
  const xmlNode* root = n;
  std::vector<SearchHitText> all;
  while (n != nullptr) {
    if (n->type == XML_ELEMENT_NODE) {
      if (hasClass(n, "results") || hasClass(n, "serp__results")) sawResults = true;
      if (hasClass(n, "result__a")) {
        xmlChar* href = xmlGetProp(n, BAD_CAST "href");
        std::string url = href ? ddgTarget(reinterpret_cast<const char*>(href)) : "";
        if (href) xmlFree(href);
        all.push_back({contentOf(n), url, ""});
      } else if (hasClass(n, "result__snippet") && !all.empty()) {
        all.back().snippet = contentOf(n);
      }
    }
    if (n->children != nullptr && n->type == XML_ELEMENT_NODE) {
      n = n->children;
      continue;
    }
    while (n != nullptr && n != root && n->next == nullptr) n = n->parent;
    if (n == nullptr || n == root) break;
    n = n->next;
  }
  xmlFreeDoc(doc);
  if (!sawResults && all.empty()) {
    throw std::runtime_error("duckduckgo: the answer has no result list (blocked, or a CAPTCHA)");
  }
  for (auto& hit : all) {
    if (hits.size() >= count) break;
    if (webUrl(hit.url)) hits.push_back(std::move(hit));
  }
  return hits;
}

}  // namespace

std::string urlEncode(std::string_view text) {
  static const char HEX[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += HEX[c >> 4];
      out += HEX[c & 15];
    }
  }
  return out;
}

std::string urlDecode(std::string_view text) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < text.size(); i++) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 &&
               hex(text[i + 2]) >= 0) {
      out += static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

std::string searchRequestUrl(const std::string& provider, const std::string& endpoint,
                             const std::string& query, unsigned count) {
  std::string q = urlEncode(query);
  std::string sep = endpoint.find('?') == std::string::npos ? "?" : "&";
  if (provider == "brave") return endpoint + sep + "q=" + q + "&count=" + std::to_string(count);
  if (provider == "searxng") {
    std::string base = endpoint;
    if (base.empty() || base.back() != '/') base += '/';
    return base + "search?q=" + q + "&format=json";
  }
  if (provider == "duckduckgo") return endpoint + sep + "q=" + q;
  return "";
}

std::vector<std::string> searchHeaders(const std::string& provider, const std::string& apiKey) {
  if (provider == "brave") {
    return {"Accept: application/json", "X-Subscription-Token: " + apiKey};
  }
  if (provider == "searxng") return {"Accept: application/json"};
  return {"Accept: text/html"};
}

std::vector<SearchHitText> parseSearchAnswer(const std::string& provider, std::string_view body,
                                             unsigned count) {
  if (provider == "duckduckgo") return fromDuckDuckGo(body, count);
  json answer = json::parse(body, nullptr, false);
  if (answer.is_discarded() || !answer.is_object()) {
    throw std::runtime_error(provider + ": the answer is not a JSON object");
  }
  if (provider == "brave") {
    auto web = answer.find("web");
    if (web == answer.end() || !web->is_object()) return {};  // no web results for the query
    auto results = web->find("results");
    return results == web->end() ? std::vector<SearchHitText>{}
                                 : fromJson(*results, "description", count);
  }
  if (provider == "searxng") {
    auto results = answer.find("results");
    if (results == answer.end()) throw std::runtime_error("searxng: the answer has no results");
    return fromJson(*results, "content", count);
  }
  throw std::runtime_error("unknown provider " + provider);
}

}  // namespace chitin::web
