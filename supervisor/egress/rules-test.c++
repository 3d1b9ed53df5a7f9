// SPDX-License-Identifier: Apache-2.0
// Allowlist rules: normalization (case, trailing dot, IDN, IP literals), parsing with
// user-facing errors, wildcard matching, and which rules the owner's settings make privateOk.
// Runs in: tests

#include <doctest/doctest.h>

#include "rules.h"

namespace chitin::egress {

namespace {

std::string parseError(const std::string& text) {
  try {
    parseRule(text, "egress.allow_private", false);
  } catch (const RuleError& e) {
    return e.what();
  }
  return "(parsed)";
}

std::string normalized(const std::string& host) {
  std::string why;
  auto out = normalizeHost(host, &why);
  return out ? *out : "refused: " + why;
}

}  // namespace

TEST_CASE("rules: hosts are normalized the same way for the owner's rules and the worker's asks") {
  CHECK(normalized("API.Telegram.ORG") == "api.telegram.org");
  CHECK(normalized("api.telegram.org.") == "api.telegram.org");
  CHECK(normalized("api.telegram.org..") == "refused: the host has an empty label");
  CHECK(normalized("bücher.example") == "xn--bcher-kva.example");
  CHECK(normalized("BÜCHER.example.") == "xn--bcher-kva.example");
  CHECK(normalized("xn--bcher-kva.example") == "xn--bcher-kva.example");
  CHECK(normalized("\xff\xfe.example").rfind("refused: not a valid internationalized name", 0) ==
        0);
  CHECK(normalized("") == "refused: the host is empty");
  CHECK(normalized(".") == "refused: the host is empty");
  CHECK(normalized("a b.example") ==
        "refused: the host contains a character other than a-z, 0-9, '-', '_' and '.'");
  CHECK(normalized("evil.example/x") ==
        "refused: the host contains a character other than a-z, 0-9, '-', '_' and '.'");
  CHECK(normalized(std::string("a\0b", 3)) == "refused: the host contains a NUL byte");
  CHECK(normalized(std::string(64, 'a') + ".example") ==
        "refused: a label of the host is longer than 63 bytes");
  CHECK(normalized(
            std::string(250, 'a').replace(60, 1, ".").replace(120, 1, ".").replace(180, 1, ".") +
            ".example") == "refused: the host is longer than 253 bytes");
  // IP literals in their canonical spelling; other numeric spellings stay names (and never
  // match an IP rule).
  CHECK(normalized("127.0.0.1") == "127.0.0.1");
  CHECK(normalized("0:0:0:0:0:0:0:1") == "::1");
  CHECK(normalized("::FFFF:7F00:1") == "::ffff:127.0.0.1");
  CHECK(normalized("2130706433") == "2130706433");
  CHECK(isIpLiteral("::1"));
  CHECK(isIpLiteral("10.0.0.1"));
  CHECK_FALSE(isIpLiteral("127.1"));
  CHECK_FALSE(isIpLiteral("localhost"));
}

TEST_CASE("rules: parsing host:port, [v6]:port and *.suffix:port, with errors naming the input") {
  Rule rule = parseRule("API.Example.com.:443", "x", false);
  CHECK(rule.host == "api.example.com");
  CHECK(rule.port == 443);
  CHECK(rule.text() == "api.example.com:443");
  CHECK(parseRule("[::1]:11434", "x", true).host == "::1");
  CHECK(parseRule("[::1]:11434", "x", true).text() == "[::1]:11434");
  CHECK(parseRule("*.Slack.com:443", "x", false).host == "*.slack.com");
  CHECK(parseError("example.com") ==
        "egress.allow_private: expected host:port (an IPv6 address in brackets: [::1]:8080), got "
        "\"example.com\"");
  CHECK(parseError("::1:80") ==
        "egress.allow_private: expected host:port (an IPv6 address in brackets: [::1]:8080), got "
        "\"::1:80\"");
  CHECK(parseError("example.com:0") ==
        "egress.allow_private: expected host:port with a port 1..65535, got \"example.com:0\"");
  CHECK(parseError("example.com:65536") ==
        "egress.allow_private: expected host:port with a port 1..65535, got "
        "\"example.com:65536\"");
  CHECK(parseError("example.com:+80") ==
        "egress.allow_private: expected host:port with a port 1..65535, got \"example.com:+80\"");
  CHECK(parseError("[example.com]:80") ==
        "egress.allow_private: \"example.com\" in brackets is not an IPv6 address (in "
        "\"[example.com]:80\")");
  CHECK(parseError("*.10.0.0.1:80") ==
        "egress.allow_private: a wildcard needs a domain suffix, not an address (in "
        "\"*.10.0.0.1:80\")");
  CHECK(parseError("exa mple.com:80") ==
        "egress.allow_private: the host contains a character other than a-z, 0-9, '-', '_' and "
        "'.' (in \"exa mple.com:80\")");
}

TEST_CASE("rules: exact hosts and ports; *.suffix matches subdomains only") {
  std::vector<Rule> rules = {parseRule("api.telegram.org:443", "x", false),
                             parseRule("*.slack.com:443", "x", false)};
  CHECK(findRule(rules, "api.telegram.org", 443) == &rules[0]);
  CHECK(findRule(rules, "api.telegram.org", 80) == nullptr);
  CHECK(findRule(rules, "telegram.org", 443) == nullptr);
  CHECK(findRule(rules, "api.telegram.org.evil.example", 443) == nullptr);
  CHECK(findRule(rules, "wss-primary.slack.com", 443) == &rules[1]);
  CHECK(findRule(rules, "a.b.slack.com", 443) == &rules[1]);
  CHECK(findRule(rules, "slack.com", 443) == nullptr);
  CHECK(findRule(rules, "evilslack.com", 443) == nullptr);
}

}  // namespace chitin::egress
