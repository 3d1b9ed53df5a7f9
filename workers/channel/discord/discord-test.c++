// SPDX-License-Identifier: Apache-2.0
// The Discord platform in-process against tests/fakes/fake_discord.py: receiving, replying,
// typing, reactions, files both ways, rate limits, heartbeat loss, op 7/9, fatal close codes,
// and a restart that resumes from /state.
// Runs in: tests

#include <doctest/doctest.h>

#include <fstream>

#include "discord-message.h"
#include "discord.h"
#include "test-fake.h"

namespace chitin::channel::discord {
namespace {

using namespace std::chrono_literals;
using testing::Fake;
using testing::Json;
using testing::Running;

const std::string TOKEN = "test-bot-token";
const std::string BOT = "100000000000000001";  // the fake's bot user
const std::string ALICE = "200000000000000002";
const std::string DM = "300000000000000003";
const std::string GUILD_CHANNEL = "400000000000000004";
const Json ALICE_USER = {{"id", ALICE}, {"username", "alice"}, {"discriminator", "0"}};

struct Setup {
  explicit Setup(int heartbeatMs = 41250, std::map<std::string, std::string> options = {},
                 std::string token = TOKEN)
      : fake("CHITIN_FAKE_DISCORD",
             {"--token", TOKEN, "--heartbeat-ms", std::to_string(heartbeatMs)}) {
    settings.kind = "discord";
    settings.account = "default";
    settings.credential = token + "\n";
    settings.egressSocket = "";
    settings.stateDir = fake.dir();
    settings.options = {{"apiRoot", fake.base() + "/api/v10"}};
    for (auto& [k, v] : options) settings.options[k] = v;
    host.sleepScale = 0.05;
  }
  std::unique_ptr<Platform> make() { return makeDiscord(settings, host); }
  // A user's message, dispatched by the fake as MESSAGE_CREATE.
  std::string say(const std::string& text, const std::string& channel = DM, Json extra = {}) {
    Json m = {{"channel_id", channel}, {"author", ALICE_USER}, {"content", text}};
    if (channel != DM) m["guild_id"] = "500000000000000005";
    for (auto& [k, v] : extra.items()) m[k] = v;
    return fake.control("message", m)["id"];
  }
  Fake fake;
  Settings settings;
  TestHost host;
};

TEST_CASE("discord: a DM, a guild mention, a reply to us and an unaddressed guild message") {
  Setup s;
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  CHECK(s.host.identity() == "chitin");
  auto identify = s.fake.control("state")["connections"][0]["identify"];
  CHECK(identify["intents"] == (1 | (1 << 9) | (1 << 12) | (1 << 15)));
  CHECK(identify["token"] == TOKEN);

  s.say("hello in private");
  s.say("<@" + BOT + "> hi there", GUILD_CHANNEL,
        {{"mentions", Json::array({{{"id", BOT}, {"username", "chitin"}}})}});
  Json ours =
      s.fake.control("message", {{"channel_id", GUILD_CHANNEL},
                                 {"author", {{"id", BOT}, {"username", "chitin"}, {"bot", true}}},
                                 {"content", "an earlier answer"}});
  s.say("replying to you", GUILD_CHANNEL,
        {{"referenced_message", {{"id", ours["id"]}, {"author", {{"id", BOT}}}}},
         {"message_reference", {{"message_id", ours["id"]}}},
         {"type", 19}});
  s.say("just chatting", GUILD_CHANNEL);
  s.fake.control(
      "message",
      {{"channel_id", GUILD_CHANNEL},
       {"author", {{"id", "600000000000000006"}, {"username", "otherbot"}, {"bot", true}}},
       {"content", "beep"}});
  s.say("alice joined", GUILD_CHANNEL, {{"type", 7}});
  s.say("last", DM);
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 5; }));
  auto d = s.host.delivered();
  CHECK(d[0].text == "hello in private");
  CHECK(!d[0].group);
  CHECK(d[0].chatId == DM);
  CHECK(d[0].senderId == ALICE);
  CHECK(d[0].senderName == "alice");
  CHECK(d[0].timestampMs > 1600000000000);
  CHECK(d[1].group);
  CHECK(d[1].mentioned);
  CHECK(d[1].text == "@chitin hi there");
  CHECK(d[2].mentioned);  // a reply to our message
  CHECK(d[2].replyTo == ours["id"]);
  CHECK(d[3].text == "just chatting");
  CHECK(!d[3].mentioned);
  CHECK(d[4].text == "last");  // our own, the bot's and the join notice were skipped
}

TEST_CASE("discord: a long reply goes out in 2000-character chunks, the first one replying") {
  Setup s;
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  std::string question = s.say("tell me a lot");
  std::string paragraph(900, 'x');
  std::string text;
  for (int i = 0; i < 5; ++i) text += "**Part " + std::to_string(i) + "** " + paragraph + "\n\n";
  Outbound reply{DM, text, question, "", {}};
  auto ids = platform->send(reply);
  auto posted = s.fake.log("message_posted");
  REQUIRE(posted.size() == ids.size());
  CHECK(ids.size() >= 3);
  size_t total = 0;
  for (size_t i = 0; i < posted.size(); ++i) {
    std::string content = posted[i]["content"];
    total += content.size();
    CHECK(content.size() <= 2000);  // ASCII: bytes are code points here
    CHECK(posted[i]["allowed_mentions"]["parse"] == Json::array({"users"}));
    CHECK(posted[i]["message_reference"].is_null() == (i != 0));
  }
  CHECK(posted[0]["message_reference"]["message_id"] == question);
  CHECK(std::string(posted[0]["content"]).rfind("**Part 0**", 0) == 0);
  CHECK(total >= 5 * 900);
}

TEST_CASE("discord: typing and a URL-encoded reaction reach Discord; bad ids are refused") {
  Setup s;
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  std::string id = s.say("hi");
  platform->typing(DM, true);
  platform->typing(DM, false);  // nothing to send: Discord's indicator ends by itself
  platform->react(DM, id, "👀");
  CHECK(s.fake.log("typing").size() == 1);
  auto reactions = s.fake.log("reaction");
  REQUIRE(reactions.size() == 1);
  CHECK(reactions[0]["emoji"] == "👀");
  CHECK(reactions[0]["raw"] == "%F0%9F%91%80");
  CHECK_THROWS_WITH_AS(platform->react(DM, "../../users/@me", "👀"), doctest::Contains("numeric id"),
                       ChannelError);
  CHECK_THROWS_WITH_AS(platform->send({"general", "x", "", "", {}}),
                       doctest::Contains("numeric id"), ChannelError);
  CHECK_THROWS_WITH_AS(platform->react(DM, "999", "👀"), doctest::Contains("Unknown Message"),
                       ChannelError);
}

TEST_CASE("discord: a message to a person's user id goes to the DM opened with them") {
  Setup s;
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  s.say("hi", GUILD_CHANNEL);  // the fake now knows alice as a user
  auto ids = platform->send({ALICE, "a note for you", "", "", {}});
  CHECK(ids.size() == 1);
  platform->send({ALICE, "and another", "", "", {}});
  auto opened = s.fake.log("dm_opened");
  REQUIRE(opened.size() == 1);  // once: the DM channel is remembered
  CHECK(opened[0]["recipient_id"] == ALICE);
  auto posted = s.fake.log("message_posted");
  REQUIRE(posted.size() == 2);
  CHECK(posted[0]["channel_id"] == opened[0]["channel_id"]);
  CHECK(posted[1]["channel_id"] == opened[0]["channel_id"]);
}

TEST_CASE("discord: an attachment is fetched within the cap; a larger one arrives without data") {
  Setup s;
  s.settings.maxAttachmentBytes = 1000;
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  Json small = s.fake.control("attachment", {{"filename", "notes.txt"},
                                             {"data_b64", "AQEB"},  // 3 bytes
                                             {"content_type", "text/plain"}});
  Json big =
      s.fake.control("attachment", {{"filename", "big.bin"}, {"data_b64", std::string(2000, 'A')}});
  s.say("files", DM, {{"attachments", Json::array({small, big})}});
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 1; }));
  auto files = s.host.delivered()[0].attachments;
  REQUIRE(files.size() == 2);
  CHECK(files[0].name == "notes.txt");
  CHECK(files[0].mimeType == "text/plain");
  CHECK(files[0].data == "\x01\x01\x01");
  CHECK(files[1].name == "big.bin");
  CHECK(files[1].data.empty());
  CHECK(files[1].size == 1500);
  CHECK(s.fake.log("attachment_download").size() == 1);  // the big one was never requested
}

TEST_CASE("discord: a file goes out as multipart payload_json + files[0]") {
  Setup s;
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  Attachment file{"report.csv", "text/csv", "a,b\n1,2\n", 8};
  auto ids = platform->send({DM, "here", "", "", {file}});
  CHECK(ids.size() == 2);
  auto posted = s.fake.log("message_posted");
  REQUIRE(posted.size() == 2);
  CHECK(posted[1]["files"][0]["filename"] == "report.csv");
  CHECK(posted[1]["files"][0]["size"] == 8);
  CHECK(posted[1]["files"][0]["field"] == "files[0]");
  CHECK(posted[1]["files"][0]["content_type"] == "text/csv");
  // Blank text is no message of its own: only the file goes.
  CHECK(platform->send({DM, " \n\n ", "", "", {file}}).size() == 1);
  CHECK_THROWS_WITH_AS(platform->send({DM, " ", "", "", {}}), doctest::Contains("nothing to send"),
                       ChannelError);
}

TEST_CASE("discord: a 429 is waited out for retry_after, and an empty bucket before sending") {
  Setup s;
  s.host.sleepScale = 1.0;  // real waits, measured
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  std::string route = "POST /channels/{channel_id}/messages";
  s.fake.control("rate_limit", {{"route", route}, {"retry_after", 0.4}});
  auto start = std::chrono::steady_clock::now();
  platform->send({DM, "after a 429", "", "", {}});
  CHECK(std::chrono::steady_clock::now() - start >= 350ms);
  CHECK(s.fake.log("429").size() == 1);
  CHECK(s.fake.log("message_posted").size() == 1);

  // A bucket of 2 per 0.6 s: the third send waits for the reset instead of earning a 429.
  s.fake.control("config", {{"buckets", {{route, {2, 0.6}}}}});
  start = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) platform->send({DM, "burst " + std::to_string(i), "", "", {}});
  CHECK(std::chrono::steady_clock::now() - start >= 300ms);
  CHECK(s.fake.log("429").size() == 1);
  CHECK(s.fake.log("bucket_exhausted").empty());
  CHECK(s.fake.log("message_posted").size() == 4);

  // A global limit is honoured too.
  s.fake.control("rate_limit", {{"route", route}, {"retry_after", 0.3}, {"global", true}});
  start = std::chrono::steady_clock::now();
  platform->send({DM, "after a global 429", "", "", {}});
  CHECK(std::chrono::steady_clock::now() - start >= 250ms);
}

TEST_CASE("discord: heartbeat ACKs stop (zombie): resume, nothing lost or doubled") {
  Setup s(300);
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  s.say("one");
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 1; }));
  s.fake.control("zombie");
  s.say("two");
  s.say("three");
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 3; }));
  std::this_thread::sleep_for(300ms);
  CHECK(s.host.delivered().size() == 3);
  CHECK(s.host.delivered()[1].text == "two");
  CHECK(s.host.delivered()[2].text == "three");
  auto connections = s.fake.control("state")["connections"];
  REQUIRE(connections.size() == 2);
  CHECK(connections[1]["path"] == "/resume");
  CHECK(connections[1]["resume"]["seq"] == 2);  // READY was 1, "one" was 2
  CHECK(connections[1]["identify"].is_null());
  CHECK(s.host.lastDetail(State::RECONNECTING).find("no heartbeat ACK") != std::string::npos);
  // The resumed connection beats with the last sequence number seen.
  REQUIRE(s.host.waitUntil(
      [&] { return !s.fake.control("state")["connections"][1]["heartbeats"].empty(); }, 3s));
  CHECK(s.fake.control("state")["connections"][1]["heartbeats"][0]["d"] >= 4);
}

TEST_CASE("discord: a delivery slower than the heartbeat is no zombie") {
  Setup s(300);
  s.host.deliverDelay = 1000ms;  // the ACKs wait unread meanwhile
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  s.say("slow one");
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 1; }));
  std::this_thread::sleep_for(700ms);
  CHECK(s.fake.control("state")["connections"].size() == 1);
  CHECK(s.host.stateCount(State::RECONNECTING) == 0);
  // Beats went on while the reader was busy.
  CHECK(s.fake.control("state")["connections"][0]["heartbeats"].size() >= 4);
}

TEST_CASE("discord: op 7 resumes, op 9 non-resumable identifies anew, op 1 gets a beat") {
  Setup s(5000);
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  s.fake.control("reconnect");
  REQUIRE(s.host.waitUntil([&] { return s.host.stateCount(State::CONNECTED) == 2; }));
  auto connections = s.fake.control("state")["connections"];
  CHECK(connections[1]["resume"]["session_id"] == s.fake.control("state")["session"]["id"]);
  CHECK(!connections[1]["resume"].is_null());
  CHECK(connections[0]["client_close_code"] == 4900);  // not 1000: the session lives on

  s.fake.control("request_heartbeat");
  REQUIRE(s.host.waitUntil(
      [&] { return !s.fake.control("state")["connections"][1]["heartbeats"].empty(); }, 3s));

  s.fake.control("invalid_session", {{"resumable", false}});
  REQUIRE(s.host.waitUntil([&] { return s.host.stateCount(State::CONNECTED) == 3; }));
  connections = s.fake.control("state")["connections"];
  CHECK(!connections[2]["identify"].is_null());
  CHECK(connections[2]["resume"].is_null());
  bool paused = false;  // Discord asks for 1-5 s before identifying again
  for (auto d : s.host.sleeps()) paused = paused || (d >= 1000ms && d <= 5000ms);
  CHECK(paused);
  s.say("after a new session");
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 1; }));
}

TEST_CASE("discord: fatal close codes end in FAILED with what to fix; others resume") {
  SUBCASE("4004: the token") {
    Setup s;
    auto platform = s.make();
    Running running(*platform, s.host);
    REQUIRE(s.host.waitForState(State::CONNECTED, 1));
    s.fake.control("close", {{"code", 4004}, {"reason", "Authentication failed."}});
    REQUIRE(s.host.waitForState(State::FAILED, 1));
    CHECK(s.host.lastDetail(State::FAILED).find("refused the bot token") != std::string::npos);
    REQUIRE(s.host.waitUntil([&] { return running.returned.load(); }, 3s));
  }
  SUBCASE("4014: a privileged intent not enabled in the portal") {
    Setup s;
    s.fake.control("config", {{"allowed_privileged", 0}});
    auto platform = s.make();
    Running running(*platform, s.host);
    REQUIRE(s.host.waitForState(State::FAILED, 1));
    CHECK(s.host.lastDetail(State::FAILED).find("Message Content Intent") != std::string::npos);
  }
  SUBCASE("4000: resume") {
    Setup s;
    auto platform = s.make();
    Running running(*platform, s.host);
    REQUIRE(s.host.waitForState(State::CONNECTED, 1));
    s.fake.control("close", {{"code", 4000}, {"reason", "Unknown error."}});
    REQUIRE(s.host.waitUntil([&] { return s.host.stateCount(State::CONNECTED) == 2; }));
    CHECK(!s.fake.control("state")["connections"][1]["resume"].is_null());
    CHECK(s.host.stateCount(State::FAILED) == 0);
  }
  SUBCASE("a refused token fails before the gateway") {
    Setup s(41250, {}, "wrong-token");
    auto platform = s.make();
    Running running(*platform, s.host);
    REQUIRE(s.host.waitForState(State::FAILED, 1));
    CHECK(s.host.lastDetail(State::FAILED).find("401") != std::string::npos);
    CHECK(s.fake.control("state")["connections"].empty());
  }
}

TEST_CASE("discord: a restarted worker resumes its session from /state and misses nothing") {
  Setup s;
  {
    auto platform = s.make();
    Running running(*platform, s.host);
    REQUIRE(s.host.waitForState(State::CONNECTED, 1));
    s.say("before");
    REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 1; }));
  }  // the worker stops (as if killed after delivering)
  s.say("while down");
  TestHost second;
  second.sleepScale = 0.05;
  auto platform = makeDiscord(s.settings, second);
  Running running(*platform, second);
  REQUIRE(second.waitUntil([&] { return second.delivered().size() == 1; }));
  CHECK(second.delivered()[0].text == "while down");
  auto connections = s.fake.control("state")["connections"];
  CHECK(!connections.back()["resume"].is_null());
}

TEST_CASE("discord: options are checked by name") {
  Setup s;
  s.settings.options["intents"] = "guilds,everything";
  CHECK_THROWS_WITH_AS(s.make(), doctest::Contains("unknown intent \"everything\""), ChannelError);
  Setup t;
  t.settings.options["colour"] = "blue";
  CHECK_THROWS_WITH_AS(t.make(), doctest::Contains("colour"), ChannelError);
  Setup u;
  u.settings.credential = "two words";
  CHECK_THROWS_WITH_AS(u.make(), doctest::Contains("bot token, on one line"), ChannelError);
  Setup v;
  v.settings.options["apiRoot"] = "ftp://example.com";
  CHECK_THROWS_WITH_AS(v.make(), doctest::Contains("apiRoot"), ChannelError);
}

TEST_CASE("discord: the gatewayUrl option replaces GET /gateway/bot") {
  Setup s;
  s.settings.options["gatewayUrl"] = "ws://127.0.0.1:" + s.fake.base().substr(17);
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  for (const auto& r : s.fake.log("rest")) CHECK(r["path"] != "/api/v10/gateway/bot");
}

TEST_CASE("discord: snowflakes") {
  CHECK(isSnowflake("175928847299117063"));
  CHECK(!isSnowflake(""));
  CHECK(!isSnowflake("12a"));
  CHECK(!isSnowflake("99999999999999999999"));  // over 2^64
  CHECK(snowflakeMs("175928847299117063") == 1462015105796);
}

}  // namespace
}  // namespace chitin::channel::discord
