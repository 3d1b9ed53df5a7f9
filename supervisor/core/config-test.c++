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

}  // namespace
}  // namespace chitin
