// SPDX-License-Identifier: Apache-2.0
// Unit tests of the IRC wire code: parsing (tags, prefix, parameters), casemapping, mentions,
// CTCP, inbound text cleaning, line splitting at 512 bytes, SASL PLAIN, flood pacing, options.
// Runs in: tests
//
// The live behaviour (registration, SASL, DMs, channels, reconnect) is tested against real
// ngircd and InspIRCd servers in tests/channels/test_irc.py.

#include <doctest/doctest.h>

#include <algorithm>

#include "irc-message.h"
#include "irc-platform.h"

namespace chitin::channel::irc {
namespace {

using namespace std::chrono_literals;

TEST_CASE("irc: a line with tags, prefix and trailing parameter parses") {
  auto m = parseLine(
      "@time=2021-01-02T03:04:05.678Z;account=alice;x=a\\sb\\:c\\\\d\\ :Alice!al@host.example "
      "privmsg #chitin :hello there: world");
  REQUIRE(m);
  CHECK(m->command == "PRIVMSG");
  CHECK(m->prefix.nick == "Alice");
  CHECK(m->prefix.user == "al");
  CHECK(m->prefix.host == "host.example");
  REQUIRE(m->params.size() == 2);
  CHECK(m->param(0) == "#chitin");
  CHECK(m->param(1) == "hello there: world");
  CHECK(m->tag("account") == "alice");
  CHECK(m->tag("x") == "a b;c\\d");  // escapes undone, the trailing lone backslash dropped
  CHECK(m->tag("missing") == "");
  CHECK(m->param(5) == "");
}

TEST_CASE("irc: lines without prefix, with many params, and junk") {
  auto ping = parseLine("PING :irc.test.local");
  REQUIRE(ping);
  CHECK(ping->prefix.nick.empty());
  CHECK(ping->param(0) == "irc.test.local");
  auto numeric = parseLine(":srv 005 bot CASEMAPPING=ascii CHANTYPES=# :are supported");
  REQUIRE(numeric);
  CHECK(numeric->command == "005");
  CHECK(numeric->params.size() == 4);
  auto server = parseLine(":irc.server NOTICE * :*** Looking up");
  REQUIRE(server);
  CHECK(server->prefix.nick == "irc.server");
  CHECK(server->prefix.host.empty());
  CHECK_FALSE(parseLine(""));
  CHECK_FALSE(parseLine("@a=b"));
  CHECK_FALSE(parseLine(":only.prefix"));
  CHECK_FALSE(parseLine("@" + std::string(9000, 'a') + " PING x"));
  // More than 15 parameters: the 15th takes the rest, as RFC 2812 says.
  auto many = parseLine("CMD 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17");
  REQUIRE(many);
  CHECK(many->params.size() == 15);
  CHECK(many->params.back() == "15 16 17");
}

TEST_CASE("irc: RFC 1459 casemapping folds []\\~ and the mapping follows ISUPPORT") {
  CHECK(lowerIrc("Nick[A]\\~", CaseMapping::RFC1459) == "nick{a}|^");
  CHECK(lowerIrc("Nick[A]\\~", CaseMapping::STRICT_RFC1459) == "nick{a}|~");
  CHECK(lowerIrc("Nick[A]\\~", CaseMapping::ASCII) == "nick[a]\\~");
  CHECK(caseMappingFromToken("ascii") == CaseMapping::ASCII);
  CHECK(caseMappingFromToken("whatever") == CaseMapping::RFC1459);
}

TEST_CASE("irc: the nick is a mention only as a whole word") {
  auto rfc = CaseMapping::RFC1459;
  CHECK(mentions("chitin: what time is it", "chitin", rfc));
  CHECK(mentions("hey @Chitin, hi", "chitin", rfc));
  CHECK(mentions("ask CHITIN", "chitin", rfc));
  CHECK(mentions("bot{x} hello", "bot[x]", rfc));  // same nick under rfc1459
  CHECK_FALSE(mentions("chitinous shells", "chitin", rfc));
  CHECK_FALSE(mentions("mychitin", "chitin", rfc));
  CHECK_FALSE(mentions("chitin_ is another bot", "chitin", rfc));
  CHECK_FALSE(mentions("no one here", "chitin", rfc));
  CHECK_FALSE(mentions("anything", "", rfc));
}

TEST_CASE("irc: CTCP is recognised, with or without the closing \\x01") {
  auto action = parseCtcp(
      "\x01"
      "ACTION waves\x01");
  REQUIRE(action);
  CHECK(action->command == "ACTION");
  CHECK(action->argument == "waves");
  auto version = parseCtcp("\x01version");
  REQUIRE(version);
  CHECK(version->command == "VERSION");
  CHECK(version->argument.empty());
  CHECK_FALSE(parseCtcp("plain text"));
  CHECK_FALSE(parseCtcp("\x01\x01"));
}

TEST_CASE("irc: inbound text loses formatting and controls, and Latin-1 becomes UTF-8") {
  CHECK(cleanInboundText("\x02"
                         "bold\x0f \x03"
                         "04,12red\x03 \x1ditalic\x1d") == "bold red italic");
  CHECK(cleanInboundText("a\x01"
                         "b\x7f") == "ab\x7f");
  CHECK(cleanInboundText("caf\xe9") == "caf\xc3\xa9");
  CHECK(cleanInboundText("caf\xc3\xa9 \xf0\x9f\x98\x80") == "caf\xc3\xa9 \xf0\x9f\x98\x80");
  CHECK(cleanInboundText("tab\there") == "tab\there");
}

TEST_CASE("irc: targets and nicks that could break a line are refused") {
  CHECK(validTarget("#chitin"));
  CHECK(validTarget("alice"));
  CHECK_FALSE(validTarget(""));
  CHECK_FALSE(validTarget("a b"));
  CHECK_FALSE(validTarget("#a,#b"));
  CHECK_FALSE(validTarget(":x"));
  CHECK_FALSE(validTarget("x\r\nQUIT"));
  CHECK_FALSE(validTarget(std::string("x\0y", 3)));
  CHECK(validNick("chitin"));
  CHECK(validNick("[bot]`_^{|}-1"));
  CHECK_FALSE(validNick("1bot"));
  CHECK_FALSE(validNick("-bot"));
  CHECK_FALSE(validNick("bot!x"));
  CHECK_FALSE(validNick(""));
}

TEST_CASE("irc: ids are escaped into printable ASCII, distinct ones staying distinct") {
  CHECK(escapeId("nick:alice") == "nick:alice");
  CHECK(escapeId("nick:caf\xc3\xa9 x%") == "nick:caf%C3%A9%20x%25");
  CHECK(escapeId("a%20") != escapeId("a "));
  CHECK(plainAscii("#chitin"));
  CHECK_FALSE(plainAscii("#caf\xc3\xa9"));
  CHECK_FALSE(plainAscii(""));
}

TEST_CASE("irc: a long reply becomes lines of at most 512 bytes as others receive them") {
  std::string ourPrefix = "chitin!~chitin@some.host.example";
  std::string word = "z\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 ";  // 1-, 2-, 3- and 4-byte characters
  std::string text;
  for (int i = 0; i < 200; ++i) text += word;
  auto lines = privmsgLines("#chitin", text, ourPrefix.size());
  REQUIRE(lines.size() >= 4);
  std::string joined;
  for (const std::string& line : lines) {
    CHECK(line.rfind("PRIVMSG #chitin :", 0) == 0);
    CHECK((":" + ourPrefix + " " + line + "\r\n").size() <= 512);
    std::string body = line.substr(17);
    // Each piece is whole UTF-8: it never starts with a continuation byte.
    CHECK((static_cast<unsigned char>(body.front()) & 0xC0) != 0x80);
    joined += body;
  }
  auto squash = [](std::string s) {
    s.erase(std::remove(s.begin(), s.end(), ' '), s.end());
    return s;
  };
  CHECK(squash(joined) == squash(text));
}

TEST_CASE("irc: newlines make lines, empty lines vanish, and CR/NUL cannot inject a command") {
  auto lines =
      privmsgLines("alice", "one\r\n\n  \ntwo\rQUIT :x\nthree" + std::string(1, '\0') + "four",
                   conservativePrefixBytes("chitin"));
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "PRIVMSG alice :one");
  CHECK(lines[1] == "PRIVMSG alice :twoQUIT :x");
  CHECK(lines[2] == "PRIVMSG alice :threefour");
  auto action = privmsgLines("#c", "/me waves", 10);
  REQUIRE(action.size() == 1);
  CHECK(action[0] ==
        "PRIVMSG #c :\x01"
        "ACTION waves\x01");
}

TEST_CASE("irc: the conservative prefix assumes a long host") {
  CHECK(conservativePrefixBytes("chitin") == 6 + 1 + 10 + 1 + 63);
}

TEST_CASE("irc: server-time parses to ms and rejects junk") {
  CHECK(parseServerTime("2011-10-19T16:40:51.620Z") == 1319042451620);
  CHECK(parseServerTime("2011-10-19T16:40:51Z") == 1319042451000);
  CHECK_FALSE(parseServerTime("2011-10-19 16:40:51Z"));
  CHECK_FALSE(parseServerTime("2011-13-19T16:40:51Z"));
  CHECK_FALSE(parseServerTime("2011-10-19T16:40:51.x2Z"));
  CHECK_FALSE(parseServerTime(""));
}

TEST_CASE("irc: SASL PLAIN matches the IRCv3 example and splits at 400 bytes") {
  // IRCv3 sasl-3.1: jilles / sesame.
  auto lines = saslPlainLines("jilles", "sesame");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0] == "AUTHENTICATE amlsbGVzAGppbGxlcwBzZXNhbWU=");
  // 300 raw bytes encode to exactly 400: a "+" must follow.
  auto exact = saslPlainLines("u", std::string(300 - 4, 'p'));
  REQUIRE(exact.size() == 2);
  CHECK(exact[0].size() == 13 + 400);
  CHECK(exact[1] == "AUTHENTICATE +");
  auto longer = saslPlainLines("u", std::string(400, 'p'));
  REQUIRE(longer.size() == 2);
  CHECK(longer[1].size() < 13 + 400);
}

TEST_CASE("irc: the token bucket lets a burst through, then one line per interval") {
  TokenBucket bucket(4, 2000ms);
  auto t = TokenBucket::Clock::now();
  for (int i = 0; i < 4; ++i) CHECK(bucket.take(t).count() == 0);
  auto wait = bucket.take(t);
  CHECK(wait > 1900ms);
  CHECK(wait <= 2001ms);
  CHECK(bucket.take(t + 1000ms) > 900ms);
  CHECK(bucket.take(t + 2001ms).count() == 0);
  CHECK(bucket.take(t + 2001ms) > 1900ms);
  // A long pause refills no more than the burst.
  for (int i = 0; i < 4; ++i) CHECK(bucket.take(t + 60s).count() == 0);
  CHECK(bucket.take(t + 60s).count() > 0);
}

TEST_CASE("irc: options are checked and unknown keys refused") {
  Settings settings;
  settings.options = {{"server", "irc.example.org"}, {"nick", "chitin"}, {"channels", "#a, #b"}};
  IrcConfig c = ircConfigFromSettings(settings);
  CHECK(c.port == 6697);
  CHECK(c.tls);
  CHECK(c.username == "chitin");
  CHECK(c.channels == std::vector<std::string>{"#a", "#b"});

  auto refused = [](std::map<std::string, std::string> options, const char* needle) {
    Settings s;
    s.options = std::move(options);
    try {
      ircConfigFromSettings(s);
      FAIL("accepted: ", needle);
    } catch (const ChannelError& e) {
      CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, e.what());
    }
  };
  refused({{"nick", "chitin"}}, "\"server\"");
  refused({{"server", "irc.example.org"}, {"nick", "9lives"}}, "\"nick\"");
  refused({{"server", "irc.example.org"}, {"nick", "c"}, {"channels", "chitin"}}, "\"channels\"");
  refused({{"server", "irc.example.org"}, {"nick", "c"}, {"port", "70000"}}, "\"port\"");
  refused({{"server", "irc.example.org"}, {"nick", "c"}, {"tls", "maybe"}}, "\"tls\"");
  refused({{"server", "irc.example.org"}, {"nick", "c"}, {"tls", "false"}}, "\"port\"");
  refused({{"server", "irc.example.org"}, {"nick", "c"}, {"colour", "red"}}, "\"colour\"");
}

}  // namespace
}  // namespace chitin::channel::irc
