// SPDX-License-Identifier: Apache-2.0
// Tests for chitin.conf parsing, defaults and environment overrides.
// Runs in: test

#include "config.h"

#include <doctest/doctest.h>

#include <map>

namespace chitin {
namespace {

EnvLookup envOf(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string noFile(const std::string& path) { throw std::runtime_error("no such file"); }

std::string errorOf(const std::string& text) {
  try {
    parseConfig(text, "/h/chitin.conf");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("config: the shipped example parses and yields the documented defaults") {
  auto c = parseConfig(EXAMPLE_CONFIG, "example");
  CHECK(c.gateway().bind() == "127.0.0.1");
  CHECK(c.gateway().port() == 18789);
  CHECK(c.agent().id() == "main");
  CHECK(c.agent().max_steps() == 16);
  CHECK(c.sandbox().bwrap_path() == "/usr/bin/bwrap");
  CHECK(c.model().provider() == config::ModelConfig::PROVIDER_UNSPECIFIED);
  CHECK(c.snapshots().keep_days() == 30);
  CHECK(c.snapshots().keep_snapshots() == 1000);
  CHECK(c.snapshots().max_store_bytes() == 2ull << 30);
  CHECK(c.snapshots().max_depth() == 256);
  CHECK(c.snapshots().max_file_bytes() == 64ull << 20);
  CHECK(c.snapshots().time_limit_seconds() == 60);
}

TEST_CASE("config: errors name file:line:column") {
  // protobuf points just past the unknown name.
  CHECK(errorOf("gateway {\n  prot: 1\n}\n").rfind("/h/chitin.conf:2:7: Message type", 0) == 0);
  CHECK(errorOf("model { provider: OPENIA }\n").find("/h/chitin.conf:1:") == 0);
  CHECK(errorOf("gateway { port: -3 }").find("/h/chitin.conf:1:") == 0);
  CHECK(errorOf("gateway {").find("/h/chitin.conf:1:") == 0);
  CHECK(errorOf("agent { id: \"main\" id: \"x\" }").find("specified multiple times") !=
        std::string::npos);
}

TEST_CASE("config: semantic checks name the setting") {
  CHECK(errorOf("gateway { port: 70000 }").find("gateway.port") != std::string::npos);
  CHECK(errorOf("gateway { max_connections: 20000 }")
            .find("gateway.max_connections must be at "
                  "most 16384, got 20000") != std::string::npos);
  CHECK(parseConfig("", "c").gateway().max_connections() == 1024);
  CHECK(errorOf("agent { id: \"../evil\" }").find("agent.id") != std::string::npos);
  CHECK(errorOf("agent { max_steps: 1000 }").find("agent.max_steps") != std::string::npos);
  CHECK(errorOf("snapshots { max_depth: 5000 }").find("snapshots.max_depth") != std::string::npos);
}

TEST_CASE("config: environment overrides the model settings") {
  auto c = parseConfig("model { provider: ANTHROPIC model: \"claude\" }", "c");
  auto m = resolveModelSettings(c, envOf({}), noFile);
  CHECK(m.provider == config::ModelConfig::ANTHROPIC);
  CHECK(m.baseUrl == "https://api.anthropic.com");
  CHECK(m.configured());

  m = resolveModelSettings(c,
                           envOf({{"CHITIN_MODEL_PROVIDER", "openai"},
                                  {"CHITIN_MODEL_BASE_URL", "http://127.0.0.1:9/v1"},
                                  {"CHITIN_MODEL", "m1"},
                                  {"CHITIN_MODEL_API_KEY", "sk-test"}}),
                           noFile);
  CHECK(m.provider == config::ModelConfig::OPENAI);
  CHECK(m.baseUrl == "http://127.0.0.1:9/v1");
  CHECK(m.model == "m1");
  CHECK(m.apiKey == "sk-test");
}

TEST_CASE("config: an embedding model needs an OpenAI-compatible provider and a plain name") {
  auto ok = parseConfig("model { provider: OPENAI model: \"m\" embedding_model: \"e1\" }", "c");
  CHECK(resolveModelSettings(ok, envOf({}), noFile).embeddingModel == "e1");
  CHECK(resolveModelSettings(parseConfig("model { provider: OPENAI model: \"m\" }", "c"), envOf({}),
                             noFile)
            .embeddingModel.empty());
  auto anthropic =
      parseConfig("model { provider: ANTHROPIC model: \"claude\" embedding_model: \"e1\" }", "c");
  CHECK_THROWS_WITH_AS(resolveModelSettings(anthropic, envOf({}), noFile),
                       doctest::Contains("model.embedding_model: \"e1\" needs provider OPENAI"),
                       ConfigError);
  auto spaced =
      parseConfig("model { provider: OPENAI model: \"m\" embedding_model: \"a b\" }", "c");
  CHECK_THROWS_WITH_AS(resolveModelSettings(spaced, envOf({}), noFile),
                       doctest::Contains("model.embedding_model: expected a model name"),
                       ConfigError);
}

TEST_CASE("config: the API key file is read and trimmed; a bad one is a clear error") {
  auto c = parseConfig("model { provider: OPENAI model: \"m\" api_key_file: \"/k\" }", "c");
  auto m = resolveModelSettings(c, envOf({}), [](const std::string& p) {
    CHECK(p == "/k");
    return std::string("sk-from-file\n");
  });
  CHECK(m.apiKey == "sk-from-file");
  CHECK_THROWS_WITH_AS(resolveModelSettings(c, envOf({}), noFile),
                       doctest::Contains("model API key file /k"), ConfigError);
}

TEST_CASE("config: bad environment values are rejected by name") {
  auto c = parseConfig("", "c");
  CHECK_THROWS_WITH_AS(resolveModelSettings(c, envOf({{"CHITIN_MODEL_PROVIDER", "gpt"}}), noFile),
                       doctest::Contains("CHITIN_MODEL_PROVIDER"), ConfigError);
  CHECK_THROWS_WITH_AS(
      resolveModelSettings(c, envOf({{"CHITIN_MODEL_PROVIDER", "openai"}}), noFile),
      doctest::Contains("no model name"), ConfigError);
  CHECK_THROWS_WITH_AS(resolveModelSettings(c,
                                            envOf({{"CHITIN_MODEL_PROVIDER", "openai"},
                                                   {"CHITIN_MODEL", "m"},
                                                   {"CHITIN_MODEL_BASE_URL", "ftp://x"}}),
                                            noFile),
                       doctest::Contains("http:// or https://"), ConfigError);
  auto none = resolveModelSettings(c, envOf({}), noFile);
  CHECK_FALSE(none.configured());
}

TEST_CASE("config: channel accounts get their defaults") {
  auto c = parseConfig("channels { account { kind: \"telegram\" } }", "c");
  REQUIRE(c.channels().account_size() == 1);
  CHECK(c.channels().account(0).account() == "default");
  CHECK(c.channels().ack_reaction() == "\xF0\x9F\x91\x80");
  CHECK(c.channels().max_attachment_bytes() == 20u << 20);
  // An empty reaction is the owner's "none", not a missing one.
  CHECK(parseConfig("channels { ack_reaction: \"\" }", "c").channels().ack_reaction() == "");
  // The example's channel section is commented out: no accounts.
  CHECK(parseConfig(EXAMPLE_CONFIG, "example").channels().account_size() == 0);
  // Every kind the config accepts is one the channel host knows (channel-kinds-test.c++).
  CHECK(channelKinds().size() == 7);
}

TEST_CASE("config: channel account errors name the account and what was expected") {
  CHECK(errorOf("channels { account { kind: \"matrix\" } }")
            .find("channels.account[0].kind: expected one of telegram, discord, slack, signal, "
                  "irc, email, whatsapp, got \"matrix\"") != std::string::npos);
  CHECK(errorOf("channels { account { kind: \"irc\" account: \"Libera\" } }")
            .find("channels.account[0] (irc).account: expected 1-32 of a-z 0-9 _ -") !=
        std::string::npos);
  CHECK(errorOf("channels { account { kind: \"irc\" account: \"" + std::string(33, 'a') + "\" } }")
            .find(".account: expected") != std::string::npos);
  CHECK(
      errorOf("channels { account { kind: \"slack\" } account { kind: \"slack\" } }")
          .find("channels.account[1] (slack): account \"default\" of slack is configured twice") !=
      std::string::npos);
  CHECK(errorOf("channels { account { kind: \"slack\" } account { kind: \"slack\" account: "
                "\"work\" } }") == "");
  CHECK(errorOf("channels { account { kind: \"email\" credential_file: \"pw\" } }")
            .find("credential_file: expected an absolute path") != std::string::npos);
  CHECK(errorOf("channels { account { kind: \"irc\" options { key: \"a b\" value: \"x\" } } }")
            .find("options: expected a key") != std::string::npos);
  CHECK(errorOf("channels { account { kind: \"irc\" options { key: \"nick\" value: \"a\\nb\" } } }")
            .find("options[nick]: expected one line") != std::string::npos);
  for (const char* bad : {"example.org", "example.org:0", "example.org:70000", ":443",
                          "exa mple.org:443", "[::1:443", "http://x:443"}) {
    CAPTURE(bad);
    CHECK(errorOf(std::string("channels { account { kind: \"irc\" egress: \"") + bad + "\" } }")
              .find("/h/chitin.conf: channels.account[0] (irc).egress: ") == 0);
  }
  for (const char* good :
       {"irc.libera.chat:6697", "*.slack.com:443", "[::1]:6667", "127.0.0.1:8080"}) {
    CAPTURE(good);
    CHECK(errorOf(std::string("channels { account { kind: \"irc\" egress: \"") + good + "\" } }") ==
          "");
  }
  CHECK(errorOf("channels { max_attachment_bytes: 33554433 }").find("at most 33554432") !=
        std::string::npos);
}

TEST_CASE("config: agent.session_reset is off by default and checked") {
  auto c = parseConfig("", "c");
  CHECK(c.agent().session_reset().daily_at() == "");
  CHECK(c.agent().session_reset().idle_minutes() == 0);
  c = parseConfig("agent { session_reset { daily_at: \"04:30\" idle_minutes: 90 } }", "c");
  CHECK(c.agent().session_reset().daily_at() == "04:30");
  CHECK_THROWS_WITH_AS(parseConfig("agent { session_reset { daily_at: \"25:00\" } }", "/h/c.conf"),
                       "/h/c.conf: agent.session_reset.daily_at: expected \"HH:MM\" (00:00-23:59), "
                       "got \"25:00\"",
                       ConfigError);
}

}  // namespace
}  // namespace chitin
