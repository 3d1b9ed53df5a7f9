// SPDX-License-Identifier: Apache-2.0
// The per-platform table and the egress allowlist of an account (see channel-kinds.h).
// Runs in: supervisor

#include "channel-kinds.h"

#include <arpa/inet.h>

#include <algorithm>

namespace chitin::channels {

namespace {

using Form = HostOption::Form;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

// Hosts the broker admits for the platform itself, and the options that move it elsewhere (a
// self-hosted Bot API server, a test fake, the owner's IRC network). Keep README.md's table in
// step.
const std::vector<KindInfo> KINDS = {
    {"telegram", {"api.telegram.org:443"}, {{"apiRoot", Form::URL, "", 0}}, false},
    {"discord",
     {"discord.com:443", "gateway.discord.gg:443", "*.discord.gg:443", "cdn.discordapp.com:443"},
     {{"apiRoot", Form::URL, "", 0}, {"gatewayUrl", Form::URL, "", 0}},
     false},
    {"slack",
     {"slack.com:443", "wss-primary.slack.com:443", "*.slack.com:443", "files.slack.com:443"},
     {{"apiRoot", Form::URL, "", 0}},
     false},
    // signal-cli runs where its owner put it: its URL is required by the platform.
    {"signal", {}, {{"url", Form::URL, "", 0}}, false, false},
    {"irc", {}, {{"server", Form::HOST, "port", 6697}}, false, false},
    {"email",
     {},
     {{"imapHost", Form::HOST, "imapPort", 993}, {"smtpHost", Form::HOST, "smtpPort", 587}},
     true},
    {"whatsapp",
     {"web.whatsapp.com:443", "*.whatsapp.net:443", "mmg.whatsapp.net:443"},
     {{"wsUrl", Form::URL, "", 0}},
     false,
     false},
};

uint16_t parsePort(const std::string& text, const std::string& what) {
  if (text.empty() || text.size() > 5 || text.find_first_not_of("0123456789") != std::string::npos)
    throw AccountError(what + ": expected a port 1-65535, got \"" + text + "\"");
  unsigned long n = std::stoul(text);
  if (n == 0 || n > 65535)
    throw AccountError(what + ": expected a port 1-65535, got \"" + text + "\"");
  return static_cast<uint16_t>(n);
}

// A host name as the broker takes it: DNS labels (optionally "*." in front), an IPv4 literal,
// or an IPv6 literal in brackets (kept with them).
std::string checkedHost(std::string host, const std::string& what, bool wildcardOk) {
  host = lower(host);
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    in6_addr v6;
    if (inet_pton(AF_INET6, host.substr(1, host.size() - 2).c_str(), &v6) == 1) return host;
    throw AccountError(what + ": \"" + host + "\" is not an IPv6 address");
  }
  std::string name = wildcardOk && host.rfind("*.", 0) == 0 ? host.substr(2) : host;
  bool ok = !name.empty() && name.size() <= 253 && name.front() != '.' && name.front() != '-' &&
            name.find("..") == std::string::npos;
  for (char c : name) ok = ok && (isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.');
  if (!ok) throw AccountError(what + ": expected a host name, got \"" + host + "\"");
  return host;
}

struct Url {
  std::string host;
  uint16_t port = 0;
};

Url parseUrl(const std::string& text, const std::string& what) {
  size_t sep = text.find("://");
  std::string scheme = sep == std::string::npos ? "" : lower(text.substr(0, sep));
  uint16_t port;
  if (scheme == "https" || scheme == "wss") {
    port = 443;
  } else if (scheme == "http" || scheme == "ws") {
    port = 80;
  } else {
    throw AccountError(what + ": expected an http(s):// or ws(s):// URL, got \"" + text + "\"");
  }
  std::string authority = text.substr(sep + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (authority.find('@') != std::string::npos)
    throw AccountError(what +
                       ": a URL with a user or password in it is refused (put the secret "
                       "in the credential file)");
  std::string host = authority;
  size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    host = authority.substr(0, colon);
    port = parsePort(authority.substr(colon + 1), what + " (port)");
  }
  return {checkedHost(host, what, false), port};
}

void add(std::vector<egress::Rule>& rules, egress::Rule rule) {
  for (auto& r : rules) {
    if (r.host == rule.host && r.port == rule.port) {
      r.privateOk = r.privateOk || rule.privateOk;
      return;
    }
  }
  rules.push_back(std::move(rule));
}

}  // namespace

const std::vector<KindInfo>& allKinds() { return KINDS; }

const KindInfo* kindInfo(const std::string& kind) {
  for (const auto& k : KINDS) {
    if (k.kind == kind) return &k;
  }
  return nullptr;
}

bool namesPrivateHost(const std::string& host) {
  std::string h = lower(host);
  if (h == "localhost" || h == "localhost.") return true;
  in_addr v4;
  in6_addr v6;
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return true;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']')
    return inet_pton(AF_INET6, h.substr(1, h.size() - 2).c_str(), &v6) == 1;
  return false;
}

egress::Rule hostPortRule(const std::string& text, const std::string& what, bool privateOk) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || (text.front() == '[' && text[colon - 1] != ']'))
    throw AccountError(what + ": expected \"host:port\", got \"" + text + "\"");
  egress::Rule rule;
  rule.host = checkedHost(text.substr(0, colon), what, true);
  rule.port = parsePort(text.substr(colon + 1), what);
  rule.privateOk = privateOk;
  rule.origin = what;
  return rule;
}

std::vector<egress::Rule> egressRules(const config::ChannelAccountConfig& account,
                                      const std::vector<std::string>& allowPrivate) {
  const KindInfo* info = kindInfo(account.kind());
  if (info == nullptr) throw AccountError("unknown channel kind \"" + account.kind() + "\"");
  std::string prefix = "channels " + account.kind() + "/" + account.account();
  std::vector<egress::Rule> rules;
  for (const auto& h : info->defaultHosts) add(rules, hostPortRule(h, account.kind(), false));
  for (const auto& option : info->hostOptions) {
    auto it = account.options().find(option.key);
    if (it == account.options().end() || it->second.empty()) continue;
    std::string what = prefix + " options." + option.key;
    egress::Rule rule;
    if (option.form == Form::URL) {
      Url url = parseUrl(it->second, what);
      rule.host = url.host;
      rule.port = url.port;
    } else {
      rule.host = checkedHost(it->second, what, false);
      rule.port = option.defaultPort;
      auto port = account.options().find(option.portKey);
      if (!option.portKey.empty() && port != account.options().end())
        rule.port = parsePort(port->second, prefix + " options." + option.portKey);
    }
    rule.privateOk = namesPrivateHost(rule.host);
    rule.origin = "options." + option.key;
    add(rules, std::move(rule));
  }
  for (const auto& entry : account.egress()) {
    bool named = std::find(allowPrivate.begin(), allowPrivate.end(), entry) != allowPrivate.end();
    auto rule = hostPortRule(entry, prefix + " egress", named);
    rule.origin = "egress";
    add(rules, std::move(rule));
  }
  return rules;
}

}  // namespace chitin::channels
