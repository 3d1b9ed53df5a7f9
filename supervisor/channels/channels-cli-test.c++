// SPDX-License-Identifier: Apache-2.0
// Tests for `chitin channels list | add | remove`: the config edits and the credential files.
// Runs in: test

#include "channels-cli.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <sstream>

#include "channels-test-support.h"

namespace chitin::channels {
namespace {

using testing::account;
using testing::TempHome;

TEST_CASE("channels add: a config without a channels section gets one at the end") {
  std::string text = "# mine\ngateway { port: 1 }  # keep\n";
  auto a = account("irc", "libera");
  (*a.mutable_options())["server"] = "irc.libera.chat";
  (*a.mutable_options())["nick"] = "chi\"tin";
  a.add_egress("irc.example.org:6697");
  std::string out = addAccountToConfig(text, "c", a);
  CHECK(out == text +
                   "\nchannels {\n"
                   "  account {\n"
                   "    kind: \"irc\"\n"
                   "    account: \"libera\"\n"
                   "    options { key: \"nick\" value: \"chi\\\"tin\" }\n"
                   "    options { key: \"server\" value: \"irc.libera.chat\" }\n"
                   "    egress: \"irc.example.org:6697\"\n"
                   "  }\n"
                   "}\n");
  auto c = parseConfig(out, "c");
  CHECK(c.channels().account(0).options().at("nick") == "chi\"tin");
  // The shipped example (its channels section is commented out) takes one too.
  CHECK(parseConfig(addAccountToConfig(EXAMPLE_CONFIG, "c", account("telegram")), "c")
            .channels()
            .account_size() == 1);
}

TEST_CASE("channels add: an existing section gets the account before its closing brace") {
  std::string text =
      "channels {\n"
      "\t# the eyes\n"
      "  ack_reaction: \"\"\n"
      "  account { kind: \"slack\" }\n"
      "}\n"
      "agent { id: \"main\" }\n";
  std::string out = addAccountToConfig(text, "c", account("telegram"));
  CHECK(out ==
        "channels {\n"
        "\t# the eyes\n"
        "  ack_reaction: \"\"\n"
        "  account { kind: \"slack\" }\n"
        "  account {\n"
        "    kind: \"telegram\"\n"
        "  }\n"
        "}\n"
        "agent { id: \"main\" }\n");
  std::string oneLine = "channels { ack_reaction: \"x\" } agent { id: \"main\" }\n";
  auto c = parseConfig(addAccountToConfig(oneLine, "c", account("discord")), "c");
  CHECK(c.channels().account(0).kind() == "discord");
  CHECK(c.channels().ack_reaction() == "x");
  CHECK(c.agent().id() == "main");
}

TEST_CASE("channels add: refused for an account that exists or a config that does not parse") {
  std::string text = "channels { account { kind: \"telegram\" } }\n";
  CHECK_THROWS_WITH_AS(addAccountToConfig(text, "/h/chitin.conf", account("telegram")),
                       doctest::Contains("telegram/default is configured already"), ConfigError);
  CHECK(parseConfig(addAccountToConfig(text, "c", account("telegram", "two")), "c")
            .channels()
            .account_size() == 2);
  CHECK_THROWS_WITH_AS(addAccountToConfig("gateway {", "/h/chitin.conf", account("irc")),
                       doctest::Contains("/h/chitin.conf:1:"), ConfigError);
  auto bad = account("irc");
  (*bad.mutable_options())["a b"] = "x";
  CHECK_THROWS_WITH_AS(addAccountToConfig("", "c", bad), doctest::Contains("expected a key"),
                       ConfigError);
}

TEST_CASE("channels remove: the account's lines go, nothing else") {
  std::string text =
      "# top\n"
      "channels {\n"
      "  account {\n"
      "    kind: \"telegram\"\n"
      "  }\n"
      "\taccount { kind: \"irc\" account: \"libera\" }  \n"
      "  ack_reaction: \"\"  # none\n"
      "}\n";
  std::string out = removeAccountFromConfig(text, "c", "telegram", "default");
  CHECK(out ==
        "# top\n"
        "channels {\n"
        "\taccount { kind: \"irc\" account: \"libera\" }  \n"
        "  ack_reaction: \"\"  # none\n"
        "}\n");
  CHECK(removeAccountFromConfig(out, "c", "irc", "libera") ==
        "# top\n"
        "channels {\n"
        "  ack_reaction: \"\"  # none\n"
        "}\n");
  CHECK(removeAccountFromConfig("channels { account { kind: \"irc\" } ack_reaction: \"\" }", "c",
                                "irc", "default") == "channels {  ack_reaction: \"\" }");
  CHECK_THROWS_WITH_AS(removeAccountFromConfig(text, "c", "irc", "default"),
                       doctest::Contains("no channel account irc/default"), ConfigError);
}

struct Cli {
  TempHome home;
  std::stringstream in, out, err;
  int run(std::vector<std::string> args, const std::string& input = "") {
    in.str(input);
    in.clear();
    out.str("");
    err.str("");
    ChannelsCliEnv env{home.path, in};
    return channelsCommand(args, env, out, err);
  }
};

TEST_CASE("chitin channels add | list | remove in a home") {
  Cli cli;
  CHECK(cli.run({"add", "telegram", "--token-stdin", "--option", "apiRoot=http://127.0.0.1:9"},
                "123:abc\n") == 0);
  CHECK(cli.out.str().find("added telegram/default") == 0);
  CHECK(cli.home.read("credentials/telegram-default") == "123:abc\n");
  struct stat st;
  REQUIRE(stat((cli.home.path + "/credentials/telegram-default").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto c = parseConfig(cli.home.read("chitin.conf"), "c");
  REQUIRE(c.channels().account_size() == 1);
  CHECK(c.channels().account(0).options().at("apiRoot") == "http://127.0.0.1:9");
  CHECK(cli.home.read("chitin.conf").find("# chitin.conf -- protobuf text format") == 0);

  cli.home.write("tok", "xoxb-1\n", 0600);
  CHECK(cli.run({"add", "slack", "--account", "work", "--token-file", cli.home.path + "/tok"}) ==
        0);
  CHECK(cli.run({"add", "whatsapp"}) == 0);  // no secret needed
  CHECK(cli.run({"add", "discord"}) == 2);
  CHECK(cli.err.str().find("discord needs a token") != std::string::npos);
  CHECK(cli.run({"add", "telegram", "--token-stdin"}, "x") == 2);
  CHECK(cli.err.str().find("configured already") != std::string::npos);
  CHECK(cli.run({"add", "matrix", "--token-stdin"}, "x") == 2);
  CHECK(cli.err.str().find("KIND: expected one of telegram") != std::string::npos);
  CHECK(cli.run({"add", "irc", "--option", "server=a b"}) == 2);
  CHECK(cli.err.str().find("channels account irc:default option server") != std::string::npos);

  CHECK(cli.run({"list"}) == 0);
  std::string list = cli.out.str();
  CHECK(list.find("telegram/default\n  credential  " + cli.home.path +
                  "/credentials/telegram-default (ok)") != std::string::npos);
  CHECK(list.find("may reach   api.telegram.org:443, 127.0.0.1:9 (private)") != std::string::npos);
  CHECK(list.find("whatsapp/default\n  credential  none (none needed)") != std::string::npos);
  CHECK(list.find("123:abc") == std::string::npos);  // never the secret

  REQUIRE(mkdir((cli.home.path + "/state/channels").c_str(), 0700) == 0);
  REQUIRE(mkdir((cli.home.path + "/state/channels/telegram").c_str(), 0700) == 0);
  REQUIRE(mkdir((cli.home.path + "/state/channels/telegram/default").c_str(), 0700) == 0);
  cli.home.write("state/channels/telegram/default/offset", "42");
  CHECK(cli.run({"remove", "telegram"}) == 0);
  CHECK(cli.out.str().find("deleted its credential") != std::string::npos);
  CHECK(cli.out.str().find("deleted its state directory") != std::string::npos);
  CHECK(stat((cli.home.path + "/state/channels/telegram/default").c_str(), &st) != 0);
  CHECK(stat((cli.home.path + "/credentials/telegram-default").c_str(), &st) != 0);
  CHECK(parseConfig(cli.home.read("chitin.conf"), "c").channels().account_size() == 2);
  CHECK(cli.run({"remove", "telegram"}) == 2);
  CHECK(cli.run({"frobnicate"}) == 2);
}

}  // namespace
}  // namespace chitin::channels
