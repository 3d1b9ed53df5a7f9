// SPDX-License-Identifier: Apache-2.0
// The Slack platform in-process against tests/fakes/fake_slack.py: DMs, channel messages and
// mentions, acknowledgements before processing, redeliveries and message/app_mention pairs
// delivered once, disconnect refresh, mrkdwn replies in threads, reactions, files both ways,
// 429s, and the credential's two tokens.
// Runs in: tests

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>

#include "slack-api.h"
#include "slack-event.h"
#include "slack-socket.h"
#include "slack.h"
#include "test-fake.h"

namespace chitin::channel::slack {
namespace {

using namespace std::chrono_literals;
using testing::Fake;
using testing::Json;
using testing::Running;

const std::string APP_TOKEN = "xapp-1-test";
const std::string BOT_TOKEN = "xoxb-test";
const std::string DM = "D0DM";
const std::string CHANNEL = "C0GENERAL";

struct Setup {
  Setup() : fake("CHITIN_FAKE_SLACK", {"--app-token", APP_TOKEN, "--bot-token", BOT_TOKEN}) {
    settings.kind = "slack";
    settings.account = "default";
    settings.credential = BOT_TOKEN + "\n" + APP_TOKEN + "\n";
    settings.egressSocket = "";
    settings.stateDir = fake.dir();
    settings.options = {{"apiRoot", fake.base() + "/api"}};
    host.sleepScale = 0.05;
    fake.control("config", {{"users", Json::array({{{"id", "U1ALICE"},
                                                    {"name", "alice"},
                                                    {"real_name", "Alice A."},
                                                    {"profile", {{"display_name", "alice"}}}}})}});
  }
  std::unique_ptr<Platform> make() { return makeSlack(settings, host); }
  Json event(Json e, Json extra = Json::object()) {
    Json body = {{"event", e}};
    for (auto& [k, v] : extra.items()) body[k] = v;
    return fake.control("event", body);
  }
  Json dm(const std::string& text) {
    return event({{"type", "message"},
                  {"channel", DM},
                  {"channel_type", "im"},
                  {"user", "U1ALICE"},
                  {"text", text}});
  }
  Fake fake;
  Settings settings;
  TestHost host;
};

TEST_CASE("slack: DMs, channel messages and mentions; a mention's two events delivered once") {
  Setup s;
  auto platform = s.make();
  CHECK(!platform->capabilities().typing);
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  CHECK(s.host.identity() == "@chitin");
  s.dm("hello &amp; welcome");
  s.event({{"type", "message"},
           {"channel", CHANNEL},
           {"channel_type", "channel"},
           {"user", "U1ALICE"},
           {"text", "just chatting"}});
  Json mention = s.event({{"type", "app_mention"},
                          {"channel", CHANNEL},
                          {"user", "U1ALICE"},
                          {"text", "<@U0BOT> help?"},
                          {"thread_ts", "1700000000.000100"}});
  s.event({{"type", "message"},
           {"channel", CHANNEL},
           {"channel_type", "channel"},
           {"user", "U1ALICE"},
           {"text", "<@U0BOT> help?"},
           {"ts", mention["ts"]},
           {"thread_ts", "1700000000.000100"}});
  s.event({{"type", "message"},
           {"channel", CHANNEL},
           {"subtype", "message_changed"},
           {"user", "U1ALICE"},
           {"text", "edited"}});
  s.event({{"type", "message"},
           {"channel", CHANNEL},
           {"bot_id", "B0OTHER"},
           {"user", "U2BOT"},
           {"text", "beep"}});
  s.event({{"type", "message"}, {"channel", CHANNEL}, {"user", "U0BOT"}, {"text", "our own"}});
  s.dm("last");
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 4; }));
  std::this_thread::sleep_for(200ms);
  auto d = s.host.delivered();
  REQUIRE(d.size() == 4);
  CHECK(d[0].text == "hello & welcome");
  CHECK(!d[0].group);
  CHECK(d[0].chatId == DM);
  CHECK(d[0].senderId == "U1ALICE");
  CHECK(d[0].senderName == "alice");
  CHECK(d[0].timestampMs > 1600000000000);
  CHECK(d[1].group);
  CHECK(!d[1].mentioned);
  CHECK(d[2].mentioned);
  CHECK(d[2].text == "@chitin help?");
  CHECK(d[2].threadId == "1700000000.000100");
  CHECK(d[2].messageId == mention["ts"]);
  CHECK(d[3].text == "last");
}

TEST_CASE("slack: envelopes are acknowledged before processing, within Slack's 3 s") {
  Setup s;
  s.fake.control("config", {{"ack_timeout", 0.5}});
  s.host.deliverDelay = 800ms;  // a supervisor slower than the ack deadline
  // What the fake had acknowledged when the first delivery was done: an order, not a duration,
  // so a slow disk under the journal's fsync cannot fail it. The deadline itself is the fake's:
  // an envelope not acknowledged within ack_timeout is sent again, which the count below sees.
  std::atomic<int> acksWhenFirstDelivered{-1};
  s.host.beforeAnswer = [&](const Inbound& m) {
    if (m.text == "one") acksWhenFirstDelivered = static_cast<int>(s.fake.log("ack").size());
  };
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  s.dm("one");
  s.dm("two");
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 2; }, 10s));
  CHECK(acksWhenFirstDelivered == 2);  // "two" was acknowledged while "one" was being delivered
  auto acks = s.fake.log("ack");
  REQUIRE(acks.size() == 2);
  CHECK(acks[0]["after"] < 0.5);                   // within the fake's deadline, each
  CHECK(acks[1]["after"] < 0.5);
  CHECK(s.fake.log("envelope_sent").size() == 2);  // nothing was redelivered
  std::this_thread::sleep_for(600ms);
  CHECK(s.fake.log("envelope_sent").size() == 2);
}

TEST_CASE("slack: an event acknowledged but not delivered when the worker stops comes next run") {
  Setup s;
  s.host.deliverDelay = 1000ms;  // still delivering when the worker is stopped
  {
    auto platform = s.make();
    Running running(*platform, s.host);
    REQUIRE(s.host.waitForState(State::CONNECTED, 1));
    s.dm("caught in the middle");
    REQUIRE(s.host.waitUntil([&] { return s.fake.log("ack").size() == 1; }));
  }  // stopped: the delivery in progress ends with Stopping
  CHECK(s.host.delivered().empty());
  TestHost second;
  auto platform = makeSlack(s.settings, second);
  Running running(*platform, second);
  REQUIRE(second.waitUntil([&] { return second.delivered().size() == 1; }));
  CHECK(second.delivered()[0].text == "caught in the middle");
  CHECK(s.fake.log("envelope_sent").size() == 1);  // from the journal, not from Slack
  // Delivered, it leaves the journal: a third run delivers nothing.
  REQUIRE(second.waitUntil(
      [&] { return std::filesystem::is_empty(s.settings.stateDir + "/slack-events"); }));
}

TEST_CASE("slack: a redelivered envelope (same event_id, retry_attempt 1) is delivered once") {
  Setup s;
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  s.event({{"type", "message"},
           {"channel", DM},
           {"channel_type", "im"},
           {"user", "U1ALICE"},
           {"text", "only once"}},
          {{"duplicate", 2}});
  s.dm("next");
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 2; }));
  std::this_thread::sleep_for(200ms);
  CHECK(s.host.delivered().size() == 2);
  CHECK(s.host.delivered()[0].text == "only once");
  CHECK(s.fake.log("envelope_sent").size() == 4);
  CHECK(s.fake.log("ack").size() == 4);  // every envelope is acknowledged, repeats included
}

TEST_CASE("slack: disconnect (refresh_requested) reconnects with a fresh URL, nothing lost") {
  Setup s;
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  s.fake.control("disconnect", {{"reason", "refresh_requested"}});
  REQUIRE(s.host.waitUntil([&] { return s.host.stateCount(State::CONNECTED) == 2; }));
  s.dm("after the refresh");
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 1; }));
  auto connections = s.fake.control("state")["connections"];
  REQUIRE(connections.size() == 2);
  CHECK(connections[0]["ticket"] != connections[1]["ticket"]);
  CHECK(s.fake.log("socket_refused").empty());
  CHECK(s.host.lastDetail(State::RECONNECTING).find("refresh_requested") != std::string::npos);

  // A dropped TCP connection: an envelope sent meanwhile comes on the next connection.
  s.fake.control("drop");
  s.dm("during the drop");
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 2; }));
  CHECK(s.host.delivered()[1].text == "during the drop");
}

TEST_CASE(
    "slack: replies in mrkdwn, chunked, in the thread; threadReplies threads channel answers") {
  Setup s;
  s.settings.options["threadReplies"] = "true";
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  auto ids = platform->send({DM, "**bold** and [a link](https://example.com)", "", "", {}});
  REQUIRE(ids.size() == 1);
  auto posted = s.fake.log("posted");
  CHECK(posted[0]["text"] == "*bold* and <https://example.com|a link>");
  CHECK(posted[0]["channel"] == DM);
  CHECK(posted[0]["thread_ts"].is_null());

  std::string text;
  for (int i = 0; i < 3; ++i) text += std::string(3000, 'a' + i) + "\n\n";
  ids = platform->send({CHANNEL, text, "1700000000.000200", "", {}});
  CHECK(ids.size() == 3);
  posted = s.fake.log("posted");
  REQUIRE(posted.size() == 4);
  for (size_t i = 1; i < 4; ++i) {
    CHECK(posted[i]["thread_ts"] == "1700000000.000200");
    CHECK(std::string(posted[i]["text"]).size() <= 4000);
  }
  platform->send({CHANNEL, "in a thread", "", "1700000000.000300", {}});
  CHECK(s.fake.log("posted").back()["thread_ts"] == "1700000000.000300");
  CHECK_THROWS_WITH_AS(platform->send({"#general", "x", "", "", {}}),
                       doctest::Contains("must be an id"), ChannelError);
}

TEST_CASE("slack: a silent connection is pinged, then replaced, and nothing is lost") {
  Setup s;
  s.fake.control("config", {{"ping_interval", 0}});  // no server pings: silence is silence
  SocketConfig config;
  config.apiRoot = s.fake.base() + "/api";
  config.tokens = parseTokens(s.settings.credential);
  config.allowPlainWs = true;
  config.quietBeforePing = 300ms;
  config.quietBeforeGivingUp = 900ms;
  Socket socket(config, s.host);
  struct Reader {  // stopped and joined however the test ends
    Socket& socket;
    TestHost& host;
    std::thread thread{[this] { socket.run(); }};
    ~Reader() {
      host.stop();
      socket.interrupt();
      thread.join();
    }
  } reader{socket, s.host};
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  // A live but quiet link: our ping is answered, the connection stays.
  std::this_thread::sleep_for(1200ms);
  CHECK(s.host.stateCount(State::CONNECTED) == 1);
  s.fake.control("silence");
  s.dm("sent into the silence");
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 1; }, 5s));
  CHECK(s.host.stateCount(State::CONNECTED) == 2);
  CHECK(s.host.lastDetail(State::RECONNECTING).find("went silent") != std::string::npos);
}

TEST_CASE("slack: reactions by name, 👀 as eyes; an unknown emoji is refused by name") {
  Setup s;
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  Json m = s.dm("react to me");
  platform->react(DM, m["ts"], "👀");
  platform->react(DM, m["ts"], "👀");  // already_reacted: what was asked is there
  platform->react(DM, m["ts"], ":thumbsup:");
  auto reactions = s.fake.log("reaction");
  REQUIRE(reactions.size() == 2);
  CHECK(reactions[0]["name"] == "eyes");
  CHECK(reactions[1]["name"] == "thumbsup");
  CHECK_THROWS_WITH_AS(platform->react(DM, m["ts"], "🦑"), doctest::Contains("no Slack name"),
                       ChannelError);
  CHECK_THROWS_WITH_AS(platform->react(DM, "1700000000.999999", "👍"),
                       doctest::Contains("message_not_found"), ChannelError);
}

TEST_CASE(
    "slack: files in with the bot token (within the cap, Slack's hosts only) and out in three "
    "steps") {
  Setup s;
  s.settings.maxAttachmentBytes = 100;
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  Json small = s.fake.control(
      "file",
      {{"name", "a.txt"}, {"mimetype", "text/plain"}, {"data_b64", "aGVsbG8="}});  // "hello"
  Json big = s.fake.control("file", {{"name", "big.bin"}, {"data_b64", std::string(200, 'A')}});
  Json foreign = small;
  foreign["url_private_download"] = "http://files.example.net/steal?x=1";
  foreign["name"] = "foreign.txt";
  s.event({{"type", "message"},
           {"subtype", "file_share"},
           {"channel", DM},
           {"channel_type", "im"},
           {"user", "U1ALICE"},
           {"text", "files"},
           {"files", Json::array({small, big, foreign})}});
  REQUIRE(s.host.waitUntil([&] { return s.host.delivered().size() == 1; }));
  auto files = s.host.delivered()[0].attachments;
  REQUIRE(files.size() == 3);
  CHECK(files[0].data == "hello");
  CHECK(files[0].mimeType == "text/plain");
  CHECK(files[1].data.empty());
  CHECK(files[1].size == 150);
  CHECK(files[2].data.empty());  // the token goes to Slack's hosts only
  CHECK(s.fake.log("file_download").size() == 1);
  CHECK(s.fake.log("file_download_unauthorized").empty());

  Attachment out{"report.txt", "text/plain", "report bytes", 12};
  auto ids = platform->send({CHANNEL, "", "", "1700000000.000400", {out}});
  REQUIRE(ids.size() == 1);
  CHECK(ids[0].rfind("F", 0) == 0);
  auto bytes = s.fake.log("upload_bytes");
  REQUIRE(bytes.size() == 1);
  CHECK(bytes[0]["size"] == 12);
  auto done = s.fake.log("upload_completed");
  REQUIRE(done.size() == 1);
  CHECK(done[0]["channel_id"] == CHANNEL);
  CHECK(done[0]["thread_ts"] == "1700000000.000400");
  CHECK(done[0]["files"][0]["name"] == "report.txt");
}

TEST_CASE("slack: a 429 is waited out for Retry-After") {
  Setup s;
  s.host.sleepScale = 1.0;
  auto platform = s.make();
  Running running(*platform, s.host);
  REQUIRE(s.host.waitForState(State::CONNECTED, 1));
  s.fake.control("rate_limit", {{"method", "chat.postMessage"}, {"retry_after", 1}});
  auto start = std::chrono::steady_clock::now();
  platform->send({DM, "after the limit", "", "", {}});
  CHECK(std::chrono::steady_clock::now() - start >= 950ms);
  CHECK(s.fake.log("posted").size() == 1);
}

TEST_CASE("slack: a refused token or Socket Mode turned off ends in FAILED") {
  SUBCASE("a wrong bot token") {
    Setup s;
    s.settings.credential = APP_TOKEN + "\nxoxb-wrong";
    auto platform = s.make();
    Running running(*platform, s.host);
    REQUIRE(s.host.waitForState(State::FAILED, 1));
    CHECK(s.host.lastDetail(State::FAILED).find("invalid_auth") != std::string::npos);
  }
  SUBCASE("link_disabled") {
    Setup s;
    auto platform = s.make();
    Running running(*platform, s.host);
    REQUIRE(s.host.waitForState(State::CONNECTED, 1));
    s.fake.control("disconnect", {{"reason", "link_disabled"}});
    REQUIRE(s.host.waitForState(State::FAILED, 1));
    REQUIRE(s.host.waitUntil([&] { return running.returned.load(); }, 3s));
  }
}

TEST_CASE("slack: the credential holds both tokens, one per line, in either order") {
  auto tokens = parseTokens("xapp-1-A\r\nxoxb-2-B\n");
  CHECK(tokens.app == "xapp-1-A");
  CHECK(tokens.bot == "xoxb-2-B");
  CHECK(parseTokens("xoxb-2-B\nxapp-1-A").app == "xapp-1-A");
  CHECK_THROWS_WITH_AS(parseTokens("xoxb-only"), doctest::Contains("missing: the app-level token"),
                       ChannelError);
  CHECK_THROWS_WITH_AS(parseTokens("xapp-1\nhunter2"), doctest::Contains("neither"), ChannelError);
  try {
    parseTokens("xapp-1\nhunter2 secret");
  } catch (const ChannelError& e) {
    CHECK(std::string(e.what()).find("hunter2") == std::string::npos);  // never quoted
  }
  Setup s;
  s.settings.options["threadReplies"] = "maybe";
  CHECK_THROWS_AS(s.make(), ChannelError);
}

TEST_CASE("slack: ids, timestamps and emoji names") {
  CHECK(isSlackId("C0123ABCD"));
  CHECK(!isSlackId("c0123"));
  CHECK(!isSlackId("C01/../x"));
  CHECK(isTs("1712345678.123456"));
  CHECK(!isTs("1712345678"));
  CHECK(!isTs("17.12.34"));
  CHECK(tsMs("1712345678.123456") == 1712345678123);
  CHECK(emojiName("👍") == "+1");
  CHECK(emojiName("❤️") == "heart");
  CHECK(emojiName("white_check_mark") == "white_check_mark");
  RecentSet recent(2);
  CHECK(recent.insert("a"));
  CHECK(!recent.insert("a"));
  CHECK(recent.insert("b"));
  CHECK(recent.insert("c"));
  CHECK(recent.insert("a"));  // forgotten after two newer keys
}

}  // namespace
}  // namespace chitin::channel::slack
