// SPDX-License-Identifier: Apache-2.0
// The per-platform table and the egress allowlist of an account (see channel-kinds.h).
// Runs in: supervisor

#include "channel-kinds.h"

#include "allowlists.h"

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

// "wss://host/x" as the broker's URL parser takes it: a WebSocket URL names host and port the
// same way as the HTTP URL it upgrades from.
std::string asHttpUrl(const std::string& url) {
  std::string scheme = lower(url.substr(0, url.find("://") + 1));
  if (scheme == "ws:") return "http" + url.substr(2);
  if (scheme == "wss:") return "https" + url.substr(3);
  return url;
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

std::vector<egress::Rule> egressRules(const config::ChannelAccountConfig& account,
                                      const config::EgressConfig& egress) {
  const KindInfo* info = kindInfo(account.kind());
  if (info == nullptr) throw AccountError("unknown channel kind \"" + account.kind() + "\"");
  std::string where = "channels account " + account.kind() + ":" + account.account();
  std::vector<std::pair<std::string, std::string>> urls;
  std::vector<egress::Rule> hosts;
  try {
    for (const auto& option : info->hostOptions) {
      auto it = account.options().find(option.key);
      if (it == account.options().end() || it->second.empty()) continue;
      if (option.form == Form::URL) {
        urls.emplace_back(option.key, asHttpUrl(it->second));
        continue;
      }
      std::string port = std::to_string(option.defaultPort);
      auto p = account.options().find(option.portKey);
      if (!option.portKey.empty() && p != account.options().end()) port = p->second;
      std::string host = it->second.find(':') != std::string::npos && it->second[0] != '['
                             ? "[" + it->second + "]"  // a bare IPv6 address
                             : it->second;
      egress::Rule rule = egress::ownerRule(
          egress::parseRule(host + ":" + port, where + " option " + option.key, false), egress);
      rule.origin = where + " option " + option.key;
      hosts.push_back(std::move(rule));
    }
    std::vector<egress::Rule> rules;
    for (auto& rule : egress::channelRules(account, info->defaultHosts, urls, egress))
      add(rules, std::move(rule));
    for (auto& rule : hosts) add(rules, std::move(rule));
    return rules;
  } catch (const egress::RuleError& e) {
    throw AccountError(e.what());
  }
}

}  // namespace chitin::channels
