// SPDX-License-Identifier: Apache-2.0
// Tests for the per-platform table and the egress allowlist of an account.
// Runs in: test

#include "channel-kinds.h"

#include <doctest/doctest.h>

#include "config.h"

namespace chitin::channels {
namespace {

config::ChannelAccountConfig account(const std::string& kind,
                                     std::map<std::string, std::string> options = {},
                                     std::vector<std::string> egress = {}) {
  config::ChannelAccountConfig a;
  a.set_kind(kind);
  a.set_account("default");
  for (auto& [k, v] : options) (*a.mutable_options())[k] = v;
  for (auto& e : egress) a.add_egress(e);
  return a;
}

std::vector<std::string> shown(const std::vector<egress::Rule>& rules) {
  std::vector<std::string> out;
  for (auto& r : rules)
    out.push_back(r.host + ":" + std::to_string(r.port) + (r.privateOk ? " private" : "") + " " +
                  r.origin);
  return out;
}

TEST_CASE("channel kinds: every kind the config accepts has an entry, and no other") {
  CHECK(allKinds().size() == channelKinds().size());
  for (const auto& kind : channelKinds()) {
    CAPTURE(kind);
    CHECK(kindInfo(kind) != nullptr);
  }
  CHECK(kindInfo("matrix") == nullptr);
}

TEST_CASE("channel egress: the platform's own hosts by default") {
  CHECK(shown(egressRules(account("telegram"), {})) ==
        std::vector<std::string>{"api.telegram.org:443 telegram"});
  CHECK(shown(egressRules(account("discord"), {})).size() == 4);
  CHECK(shown(egressRules(account("slack"), {}))[2] == "*.slack.com:443 slack");
  CHECK(shown(egressRules(account("whatsapp"), {})).size() == 3);
  CHECK(egressRules(account("signal"), {}).empty());
  CHECK(egressRules(account("irc"), {}).empty());
  CHECK(egressRules(account("email"), {}).empty());
}

TEST_CASE(
    "channel egress: hosts the options name are added; a literal private address is "
    "the owner's explicit choice") {
  CHECK(shown(egressRules(account("telegram", {{"apiRoot", "http://127.0.0.1:8081/x"}}), {})) ==
        std::vector<std::string>{"api.telegram.org:443 telegram",
                                 "127.0.0.1:8081 private options.apiRoot"});
  CHECK(shown(egressRules(account("signal", {{"url", "http://localhost:8080"}}), {})) ==
        std::vector<std::string>{"localhost:8080 private options.url"});
  CHECK(shown(egressRules(account("irc", {{"server", "irc.libera.chat"}}), {})) ==
        std::vector<std::string>{"irc.libera.chat:6697 options.server"});
  CHECK(shown(egressRules(account("irc", {{"server", "IRC.Example.org."}, {"port", "6667"}}),
                          {})) == std::vector<std::string>{"irc.example.org:6667 options.server"});
  CHECK(shown(egressRules(account("email", {{"imapHost", "imap.example.org"},
                                            {"smtpHost", "[::1]"},
                                            {"smtpPort", "2525"}}),
                          {})) == std::vector<std::string>{"imap.example.org:993 options.imapHost",
                                                           "[::1]:2525 private options.smtpHost"});
  // The same host twice is one rule.
  CHECK(egressRules(account("telegram", {{"apiRoot", "https://api.telegram.org"}}), {}).size() ==
        1);
}

TEST_CASE(
    "channel egress: the account's own list; private only when egress.allow_private "
    "names it too") {
  auto rules = egressRules(account("slack", {}, {"files.example.org:443", "10.0.0.5:8443"}),
                           {"10.0.0.5:8443"});
  CHECK(shown(rules).back() == "10.0.0.5:8443 private egress");
  CHECK(shown(rules)[4] == "files.example.org:443 egress");
  CHECK_FALSE(egressRules(account("irc", {}, {"10.0.0.5:8443"}), {})[0].privateOk);
}

TEST_CASE("channel egress: unusable option values are refused, naming the account and option") {
  CHECK_THROWS_WITH_AS(egressRules(account("telegram", {{"apiRoot", "ftp://x"}}), {}),
                       doctest::Contains("channels telegram/default options.apiRoot: expected an "
                                         "http(s):// or ws(s):// URL"),
                       AccountError);
  CHECK_THROWS_WITH_AS(
      egressRules(account("telegram", {{"apiRoot", "https://user:pw@api.example.org"}}), {}),
      doctest::Contains("user or password"), AccountError);
  CHECK_THROWS_WITH_AS(egressRules(account("irc", {{"server", "a b"}}), {}),
                       doctest::Contains("options.server: expected a host name"), AccountError);
  CHECK_THROWS_WITH_AS(egressRules(account("irc", {{"server", "x.org"}, {"port", "99999"}}), {}),
                       doctest::Contains("options.port: expected a port 1-65535"), AccountError);
  CHECK_THROWS_AS(egressRules(account("signal", {{"url", "http://[zz]:1"}}), {}), AccountError);
  CHECK_THROWS_AS(hostPortRule(":443", "x", false), AccountError);
  CHECK_THROWS_AS(hostPortRule("", "x", false), AccountError);
}

}  // namespace
}  // namespace chitin::channels
