// SPDX-License-Identifier: Apache-2.0
// Allowlists from chitin.conf: which destinations the owner's settings make privateOk, and what
// `chitin sandbox explain` shows for the model and channel profiles.
// Runs in: tests

#include <doctest/doctest.h>

#include "allowlists.h"

namespace chitin::egress {

TEST_CASE("rules: the owner's IP literals, localhost and allow_private entries are privateOk") {
  config::EgressConfig egress;
  auto model = [&](const std::string& url) { return modelRules(url, egress).at(0); };
  CHECK(model("http://127.0.0.1:11434/v1").privateOk);
  CHECK(model("http://127.0.0.1:11434/v1").text() == "127.0.0.1:11434");
  CHECK(model("http://[::1]:8080").privateOk);
  CHECK(model("http://localhost:11434").privateOk);
  CHECK(model("http://LOCALHOST.:11434").host == "localhost");
  CHECK_FALSE(model("https://api.openai.com/v1").privateOk);
  CHECK(model("https://api.openai.com/v1").text() == "api.openai.com:443");
  CHECK(model("http://ollama.lan/v1").text() == "ollama.lan:80");
  CHECK_FALSE(model("http://ollama.lan/v1").privateOk);
  CHECK(model("https://api.anthropic.com").origin == "model.base_url");
  egress.add_allow_private("Ollama.LAN:80");
  CHECK(model("http://ollama.lan/v1").privateOk);
  CHECK_FALSE(model("http://ollama.lan:8080/v1").privateOk);  // exact host:port only
  CHECK(modelRules("", egress).empty());
  CHECK_THROWS_WITH(
      modelRules("ftp://example.com", egress),
      "model base URL: expected an http:// or https:// URL, got \"ftp://example.com\"");
  CHECK_THROWS_WITH(modelRules("https://user:pw@example.com", egress),
                    "model base URL: a URL with user:password@ is not supported (put the secret "
                    "in a key file), got \"https://user:pw@example.com\"");

  config::ChannelAccountConfig account;
  account.set_kind("telegram");
  account.set_account("default");
  account.add_egress("10.0.0.5:8443");
  auto rules = channelRules(account, {"api.telegram.org:443"},
                            {{"api_root", "http://127.0.0.1:8081/bot"}}, egress);
  REQUIRE(rules.size() == 3);
  CHECK(rules[0].text() == "api.telegram.org:443");
  CHECK_FALSE(rules[0].privateOk);
  CHECK(rules[0].origin == "telegram platform");
  CHECK(rules[1].text() == "127.0.0.1:8081");
  CHECK(rules[1].privateOk);
  CHECK(rules[2].privateOk);
  egress.add_allow_private("not a rule");
  CHECK_THROWS_WITH(checkEgressConfig(egress),
                    "egress.allow_private: expected host:port (an IPv6 address in brackets: "
                    "[::1]:8080), got \"not a rule\"");
}

TEST_CASE("allowlists: explain shows each worker's rules and where they came from") {
  config::ChitinConfig config;
  std::string model = explainAllowlists("model", config, "http://127.0.0.1:11434/v1", nullptr);
  CHECK(model.find("  model:\n    127.0.0.1:11434  (model.base_url; a private address is allowed "
                   "for it)\n") != std::string::npos);
  CHECK(explainAllowlists("model", config, "", nullptr).find("model: nothing") !=
        std::string::npos);
  CHECK(explainAllowlists("model", config, "https://u:p@x.example", nullptr)
            .find("cannot be computed: model base URL: a URL with user:password@") !=
        std::string::npos);
  auto* account = config.mutable_channels()->add_account();
  account->set_kind("telegram");
  account->set_account("default");
  account->add_egress("files.example.org:443");
  auto hosts = [](const std::string& kind) {
    return kind == "telegram" ? std::vector<std::string>{"api.telegram.org:443"}
                              : std::vector<std::string>{};
  };
  std::string telegram = explainAllowlists("channel-telegram", config, "", hosts);
  CHECK(telegram.find("  channel:telegram:default:\n    api.telegram.org:443  (telegram "
                      "platform)\n    files.example.org:443  (channels account "
                      "telegram:default egress)\n") != std::string::npos);
  CHECK(explainAllowlists("channel-irc", config, "", hosts).find("no enabled irc account") !=
        std::string::npos);
  CHECK(explainAllowlists("exec", config, "", hosts)
            .find("none: this profile's workers are given "
                  "no egress socket") != std::string::npos);
}

}  // namespace chitin::egress
