// SPDX-License-Identifier: Apache-2.0
// Egress allowlists: normalization, parsing, matching (see rules.h).
// Runs in: supervisor

#include "rules.h"

#include "hosts-file-resolver.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <string.h>
#include <strings.h>

#include "lazy-library.h"

namespace chitin::egress {

namespace {

// libidn2 (with libunistring) only for a host name that is not ASCII: opened then, not at every
// start (lazy-library.h).
enum Idn2 : size_t { IDN2_TO_ASCII, IDN2_STRERROR, IDN2_FREE };
LazyLibrary& idn2() {
  static LazyLibrary lib("libidn2.so.0", {"idn2_to_ascii_8z", "idn2_strerror", "idn2_free"});
  return lib;
}

[[noreturn]] void fail(const std::string& message) { throw RuleError(message); }

constexpr size_t MAX_NAME = 253;
constexpr size_t MAX_LABEL = 63;

std::optional<std::string> canonicalIp(const std::string& text) {
  unsigned char bytes[16];
  char out[INET6_ADDRSTRLEN];
  // inet_pton only: the dotted quad, never "127.1", "0x7f.1" or "2130706433" (those stay names
  // and never match an IP rule; what they resolve to is judged by address.h anyway).
  if (inet_pton(AF_INET, text.c_str(), bytes) == 1) {
    return std::string(inet_ntop(AF_INET, bytes, out, sizeof(out)));
  }
  if (text.find(':') != std::string::npos && inet_pton(AF_INET6, text.c_str(), bytes) == 1) {
    return std::string(inet_ntop(AF_INET6, bytes, out, sizeof(out)));
  }
  return std::nullopt;
}

bool checkName(const std::string& name, std::string* why) {
  auto no = [&](const std::string& reason) {
    if (why != nullptr) *why = reason;
    return false;
  };
  if (name.empty()) return no("the host is empty");
  if (name.size() > MAX_NAME) return no("the host is longer than 253 bytes");
  size_t label = 0;
  for (size_t i = 0; i <= name.size(); i++) {
    if (i == name.size() || name[i] == '.') {
      if (label == 0) return no("the host has an empty label");
      if (label > MAX_LABEL) return no("a label of the host is longer than 63 bytes");
      label = 0;
      continue;
    }
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return no("the host contains a character other than a-z, 0-9, '-', '_' and '.'");
    label++;
  }
  return true;
}

uint16_t parsePort(const std::string& text, const std::string& what, const std::string& whole) {
  bool digits = !text.empty() && text.size() <= 5;
  for (char c : text) digits = digits && c >= '0' && c <= '9';
  unsigned long value = digits ? std::stoul(text) : 0;
  if (value == 0 || value > 65535) {
    fail(what + ": expected host:port with a port 1..65535, got \"" + whole + "\"");
  }
  return static_cast<uint16_t>(value);
}

}  // namespace

std::string Rule::text() const {
  if (anyPublic) return "any public host:" + std::to_string(port);
  bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::optional<std::string> normalizeHost(const std::string& input, std::string* why) {
  std::string host = input;
  if (host.find('\0') != std::string::npos) {
    if (why != nullptr) *why = "the host contains a NUL byte";
    return std::nullopt;
  }
  if (!host.empty() && host.back() == '.') host.pop_back();  // one: "example.com." is absolute
  if (auto ip = canonicalIp(host)) return ip;
  bool ascii = true;
  for (char& c : host) {
    if (static_cast<unsigned char>(c) >= 0x80) ascii = false;
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!ascii) {
    // UTF-8 to the A-label form ("bücher.example" -> "xn--bcher-kva.example"), as a resolver
    // would send it; what IDNA2008 (UTS#46 non-transitional) refuses is refused.
    std::string missing;
    auto toAscii = idn2().function<decltype(&::idn2_to_ascii_8z)>(IDN2_TO_ASCII, missing);
    if (toAscii == nullptr) {
      // Not checked, not allowed.
      if (why != nullptr)
        *why = "an internationalized name cannot be checked here (" + missing + ")";
      return std::nullopt;
    }
    char* out = nullptr;
    int rc = toAscii(host.c_str(), &out, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
    if (rc != IDN2_OK) {
      auto describe = idn2().resolvedAs<decltype(&::idn2_strerror)>(IDN2_STRERROR);
      if (why != nullptr)
        *why = std::string("not a valid internationalized name (") + describe(rc) + ")";
      return std::nullopt;
    }
    host = out;
    idn2().resolvedAs<decltype(&::idn2_free)>(IDN2_FREE)(out);
  }
  if (!checkName(host, why)) return std::nullopt;
  return host;
}

bool isIpLiteral(const std::string& host) {
  auto ip = canonicalIp(host);
  return ip && *ip == host;
}

Rule parseRule(const std::string& text, const std::string& what, bool privateOk) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      fail(what + ": expected [IPv6]:port, got \"" + text + "\"");
    }
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
    if (!canonicalIp(host) || host.find(':') == std::string::npos) {
      fail(what + ": \"" + host + "\" in brackets is not an IPv6 address (in \"" + text + "\")");
    }
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) {
      fail(what + ": expected host:port (an IPv6 address in brackets: [::1]:8080), got \"" + text +
           "\"");
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  Rule rule;
  rule.port = parsePort(port, what, text);
  rule.privateOk = privateOk;
  bool wildcard = host.rfind("*.", 0) == 0;
  std::string why;
  auto normal = normalizeHost(wildcard ? host.substr(2) : host, &why);
  if (!normal) fail(what + ": " + why + " (in \"" + text + "\")");
  if (wildcard && isIpLiteral(*normal)) {
    fail(what + ": a wildcard needs a domain suffix, not an address (in \"" + text + "\")");
  }
  rule.host = wildcard ? "*." + *normal : *normal;
  return rule;
}

bool matches(const Rule& rule, const std::string& host, uint16_t port) {
  if (port != rule.port) return false;
  if (rule.anyPublic) return !rule.privateOk;  // a public rule that claims privateOk is a bug
  if (rule.host.rfind("*.", 0) == 0) {
    std::string suffix = rule.host.substr(1);  // ".example.com"
    return host.size() > suffix.size() &&
           host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0;
  }
  return host == rule.host;
}

std::vector<Rule> publicWebRules(const std::string& origin) {
  std::vector<Rule> rules;
  for (uint16_t port : {80, 443}) {
    Rule r;
    r.host = "*";
    r.port = port;
    r.anyPublic = true;
    r.origin = origin;
    rules.push_back(r);
  }
  return rules;
}

const Rule* findRule(const std::vector<Rule>& rules, const std::string& host, uint16_t port) {
  // A rule naming the host wins over "any public host": it may be the owner's privateOk one.
  for (auto& rule : rules) {
    if (!rule.anyPublic && matches(rule, host, port)) return &rule;
  }
  for (auto& rule : rules) {
    if (rule.anyPublic && matches(rule, host, port)) return &rule;
  }
  return nullptr;
}

Rule urlRule(const std::string& url, const std::string& what) {
  std::string rest;
  uint16_t defaultPort = 0;
  for (auto [scheme, port] : {std::pair<const char*, uint16_t>{"http://", 80}, {"https://", 443}}) {
    size_t n = strlen(scheme);
    if (url.size() > n && strncasecmp(url.c_str(), scheme, n) == 0) {
      rest = url.substr(n);
      defaultPort = port;
    }
  }
  if (defaultPort == 0) fail(what + ": expected an http:// or https:// URL, got \"" + url + "\"");
  std::string authority = rest.substr(0, rest.find_first_of("/?#"));
  if (authority.find('@') != std::string::npos) {
    fail(what +
         ": a URL with user:password@ is not supported (put the secret in a key file), "
         "got \"" +
         url + "\"");
  }
  bool v6 = !authority.empty() && authority[0] == '[';
  size_t colon = v6 ? authority.find("]:") : authority.rfind(':');
  if (v6 && colon != std::string::npos) colon++;
  std::string hostPort =
      colon == std::string::npos ? authority + ":" + std::to_string(defaultPort) : authority;
  return parseRule(hostPort, what, false);
}

bool listedPrivate(const Rule& rule, const config::EgressConfig& egress) {
  for (auto& entry : egress.allow_private()) {
    Rule listed = parseRule(entry, "egress.allow_private", true);
    if (listed.host == rule.host && listed.port == rule.port) return true;
  }
  return false;
}

Rule ownerRule(Rule rule, const config::EgressConfig& egress) {
  if (isIpLiteral(rule.host) || rule.host == "localhost" || listedPrivate(rule, egress)) {
    rule.privateOk = true;
  }
  return rule;
}

void checkEgressConfig(const config::EgressConfig& egress) {
  for (auto& entry : egress.allow_private()) parseRule(entry, "egress.allow_private", true);
  const std::string& hosts = egress.resolver_hosts_file();
  if (!hosts.empty()) {
    if (hosts[0] != '/') {
      fail("egress.resolver_hosts_file: expected an absolute path, got \"" + hosts + "\"");
    }
    readHostsFile(hosts);  // throws naming the file and line
  }
}

}  // namespace chitin::egress
