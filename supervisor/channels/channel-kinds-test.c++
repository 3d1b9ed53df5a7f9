// SPDX-License-Identifier: Apache-2.0
// Tests for the per-platform table and the egress allowlist of an account.
// Runs in: test

#include "channel-kinds.h"

#include <doctest/doctest.h>

#include "config.h"

namespace chitin::channels {
namespace {

config::ChannelAccountConfig configured(const std::string& kind,
                                        std::map<std::string, std::string> options = {},
                                        std::vector<std::string> egress = {}) {
  config::ChannelAccountConfig a;
  a.set_kind(kind);
  a.set_account("default");
  for (auto& [k, v] : options) (*a.mutable_options())[k] = v;
  for (auto& e : egress) a.add_egress(e);
  return a;
}

config::EgressConfig allowing(std::vector<std::string> privateOnes) {
  config::EgressConfig e;
  for (auto& p : privateOnes) e.add_allow_private(p);
  return e;
}

std::vector<std::string> shown(const std::vector<egress::Rule>& rules) {
  std::vector<std::string> out;
  for (auto& r : rules) out.push_back(r.text() + (r.privateOk ? " private" : ""));
  return out;
}

const config::EgressConfig NONE;

TEST_CASE("channel kinds: every kind the config accepts has an entry, and no other") {
  CHECK(allKinds().size() == channelKinds().size());
  for (const auto& kind : channelKinds()) {
    CAPTURE(kind);
    CHECK(kindInfo(kind) != nullptr);
  }
  CHECK(kindInfo("matrix") == nullptr);
}

TEST_CASE("channel egress: the platform's own hosts by default") {
  auto telegram = egressRules(configured("telegram"), NONE);
  CHECK(shown(telegram) == std::vector<std::string>{"api.telegram.org:443"});
  CHECK(telegram[0].origin == "telegram platform");
  CHECK(egressRules(configured("discord"), NONE).size() == 4);
  CHECK(shown(egressRules(configured("slack"), NONE))[2] == "*.slack.com:443");
  CHECK(egressRules(configured("whatsapp"), NONE).size() == 3);
  CHECK(egressRules(configured("signal"), NONE).empty());
  CHECK(egressRules(configured("irc"), NONE).empty());
  CHECK(egressRules(configured("email"), NONE).empty());
}

TEST_CASE(
    "channel egress: hosts the options name are added; a literal private address is "
    "the owner's explicit choice") {
  auto rules = egressRules(configured("telegram", {{"apiRoot", "http://127.0.0.1:8081/x"}}), NONE);
  CHECK(shown(rules) == std::vector<std::string>{"api.telegram.org:443", "127.0.0.1:8081 private"});
  CHECK(rules[1].origin == "channels account telegram:default option apiRoot");
  CHECK(shown(egressRules(configured("signal", {{"url", "http://localhost:8080"}}), NONE)) ==
        std::vector<std::string>{"localhost:8080 private"});
  CHECK(shown(egressRules(configured("whatsapp", {{"wsUrl", "ws://127.0.0.1:9/ws/chat"}}), NONE))
            .back() == "127.0.0.1:9 private");
  CHECK(shown(egressRules(configured("discord", {{"gatewayUrl", "wss://gw.example.org"}}), NONE))
            .back() == "gw.example.org:443");
  CHECK(shown(egressRules(configured("irc", {{"server", "irc.libera.chat"}}), NONE)) ==
        std::vector<std::string>{"irc.libera.chat:6697"});
  CHECK(shown(egressRules(configured("irc", {{"server", "IRC.Example.org."}, {"port", "6667"}}),
                          NONE)) == std::vector<std::string>{"irc.example.org:6667"});
  CHECK(
      shown(egressRules(
          configured("email",
                     {{"imapHost", "imap.example.org"}, {"smtpHost", "::1"}, {"smtpPort", "2525"}}),
          NONE)) == std::vector<std::string>{"imap.example.org:993", "[::1]:2525 private"});
  // The same host twice is one rule.
  CHECK(
      egressRules(configured("telegram", {{"apiRoot", "https://api.telegram.org"}}), NONE).size() ==
      1);
  // A name is private only when egress.allow_private lists it.
  CHECK(shown(egressRules(configured("signal", {{"url", "http://signal.lan:8080"}}),
                          allowing({"signal.lan:8080"}))) ==
        std::vector<std::string>{"signal.lan:8080 private"});
}

TEST_CASE(
    "channel egress: the account's own list; private only when egress.allow_private "
    "names it too") {
  auto rules = egressRules(configured("slack", {}, {"files.example.org:443", "10.0.0.5:8443"}),
                           allowing({"10.0.0.5:8443"}));
  CHECK(shown(rules).back() == "10.0.0.5:8443 private");
  CHECK(shown(rules)[4] == "files.example.org:443");
  CHECK(rules[4].origin == "channels account slack:default egress");
  // An IP literal the owner wrote in the account's list is their explicit choice too.
  CHECK(egressRules(configured("irc", {}, {"10.0.0.5:8443"}), NONE)[0].privateOk);
  CHECK_FALSE(egressRules(configured("irc", {}, {"irc.lan:6697"}), NONE)[0].privateOk);
}

TEST_CASE("channel egress: unusable option values are refused, naming the account and option") {
  CHECK_THROWS_WITH_AS(egressRules(configured("telegram", {{"apiRoot", "ftp://x"}}), NONE),
                       doctest::Contains("channels account telegram:default option apiRoot: "
                                         "expected an http:// or https:// URL"),
                       AccountError);
  CHECK_THROWS_WITH_AS(
      egressRules(configured("telegram", {{"apiRoot", "https://user:pw@api.example.org"}}), NONE),
      doctest::Contains("user:password@"), AccountError);
  CHECK_THROWS_WITH_AS(egressRules(configured("irc", {{"server", "a b"}}), NONE),
                       doctest::Contains("option server"), AccountError);
  CHECK_THROWS_WITH_AS(
      egressRules(configured("irc", {{"server", "x.org"}, {"port", "99999"}}), NONE),
      doctest::Contains("option server"), AccountError);
  CHECK_THROWS_AS(egressRules(configured("signal", {{"url", "http://[zz]:1"}}), NONE),
                  AccountError);
  CHECK_THROWS_AS(egressRules(configured("irc", {}, {":443"}), NONE), AccountError);
}

}  // namespace
}  // namespace chitin::channels
