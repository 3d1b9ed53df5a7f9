// SPDX-License-Identifier: Apache-2.0
// The Telegram platform in-process against tests/fakes/fake_telegram.py (direct connections, a
// test Host): receiving DMs and group messages, offsets across restarts, 429/409/401 and
// dropped connections, chunked and converted replies, the plain-text fallback, attachments
// both ways, typing, reactions, group migration.
// Runs in: tests

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "fake-telegram.h"
#include "test-host.h"
#include "telegram-platform.h"
#include "telegram.h"

namespace chitin::channel::telegram {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr char TOKEN[] = "4242:AAtest-secret-token_for-the-fake";
const json DM = {{"id", 1001}, {"type", "private"}, {"first_name", "Ann"}};
const json OWNER = {{"id", 1001}, {"is_bot", false}, {"first_name", "Ann"}};
const json GROUP = {{"id", -100777}, {"type", "supergroup"}, {"title", "Team"}};

using testing::FakeTelegram;
using TempDir = testing::ScratchDir;

Settings settingsFor(FakeTelegram& fake, const std::string& stateDir, uint64_t maxBytes = 1 << 20) {
  Settings s;
  s.kind = "telegram";
  s.account = "default";
  s.credential = std::string(TOKEN) + "\n";  // as read from a credentials file
  s.egressSocket = "";
  s.stateDir = stateDir;
  s.maxAttachmentBytes = maxBytes;
  s.options = {{"apiRoot", fake.root()}, {"pollTimeout", "1"}};
  return s;
}

// The platform with its receive loop on a thread; the test thread plays the outbound thread.
class Running {
 public:
  Running(Settings settings, TestHost& host) : host_(host) {
    platform_ = makeTelegram(settings, host);
    thread_ = std::thread([this]() {
      platform_->run(host_);
      returned_ = true;
    });
  }
  ~Running() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    host_.stop();
    platform_->interrupt();
    thread_.join();
  }
  Platform& platform() { return *platform_; }
  bool returned() const { return returned_; }

 private:
  TestHost& host_;
  std::unique_ptr<Platform> platform_;
  std::thread thread_;
  std::atomic<bool> returned_{false};
};

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const ChannelError& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("telegram: DMs, group mentions and replies to the bot arrive as Inbound") {
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  TestHost host;
  Running running(settingsFor(fake, state.path()), host);
  REQUIRE(host.waitForStatus(State::CONNECTED, ""));
  CHECK(host.identity() == "@chitin_test_bot");

  // A message of the bot's own in the group, for the reply below.
  Outbound hello{std::to_string(GROUP["id"].get<int64_t>()), "hello group", "", "", {}};
  fake.message({{"chat", GROUP}, {"from", OWNER}, {"text", "seed"}});  // makes the chat known
  REQUIRE(host.waitFor(1).size() == 1);
  auto botMessage = running.platform().send(hello);
  REQUIRE(botMessage.size() == 1);

  fake.message({{"chat", DM}, {"from", OWNER}, {"text", "hi *there*"}});
  fake.message({{"chat", GROUP},
                {"from", OWNER},
                {"text", "\U0001F600 @chitin_test_bot status?"},
                {"entities", {{{"type", "mention"}, {"offset", 3}, {"length", 16}}}}});
  fake.message({{"chat", GROUP}, {"from", OWNER}, {"text", "just chatting"}});
  json sentByBot = {{"message_id", std::stoll(botMessage[0])},
                    {"from", {{"id", 4242}, {"is_bot", true}, {"first_name", "Chitin"}}},
                    {"chat", GROUP},
                    {"date", 1},
                    {"text", "hello group"}};
  fake.message(
      {{"chat", GROUP}, {"from", OWNER}, {"text", "thanks"}, {"reply_to_message", sentByBot}});
  auto delivered = host.waitFor(5);
  REQUIRE(delivered.size() == 5);
  running.stop();

  auto& dm = delivered[1];
  CHECK(dm.chatId == "1001");
  CHECK_FALSE(dm.group);
  CHECK(dm.senderId == "1001");
  CHECK(dm.senderName == "Ann");
  CHECK(dm.text == "hi *there*");
  CHECK(dm.timestampMs > 0);
  auto& mention = delivered[2];
  CHECK(mention.group);
  CHECK(mention.chatId == "-100777");
  CHECK(mention.mentioned);
  CHECK_FALSE(delivered[3].mentioned);
  CHECK(delivered[4].mentioned);
  CHECK(delivered[4].replyTo == botMessage[0]);
  // Only messages were asked for.
  CHECK(fake.control("state")["allowed_updates"] == json::array({"message"}));
}

TEST_CASE("telegram: the offset is saved after delivery; a restart loses and doubles nothing") {
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  auto seen = std::make_shared<std::set<std::string>>();
  {
    TestHost host(seen);
    Running running(settingsFor(fake, state.path()), host);
    fake.message({{"chat", DM}, {"from", OWNER}, {"text", "one"}});
    fake.message({{"chat", DM}, {"from", OWNER}, {"text", "two"}});
    REQUIRE(host.waitFor(2).size() == 2);
    // The supervisor records "three", then the worker dies before saving the offset.
    host.beforeAnswer = [&](const Inbound& m) {
      if (m.text == "three") {
        host.stop();
        throw Stopping{};
      }
    };
    fake.message({{"chat", DM}, {"from", OWNER}, {"text", "three"}});
    REQUIRE(host.waitFor(3).size() == 3);
    running.stop();
  }
  std::ifstream offsetFile(state.path() + "/offset");
  int64_t saved = 0;
  offsetFile >> saved;
  auto pending = fake.control("state")["pending"];
  REQUIRE(pending.size() == 1);  // "three" is still unconfirmed on the server
  CHECK(saved == pending[0].get<int64_t>());
  seen->insert("1001/3");  // what the supervisor recorded before the crash

  TestHost host(seen);
  Running running(settingsFor(fake, state.path()), host);
  fake.message({{"chat", DM}, {"from", OWNER}, {"text", "four"}});
  auto delivered = host.waitFor(2);
  REQUIRE(delivered.size() == 2);
  running.stop();
  // "three" again (the supervisor drops it as a duplicate), then "four"; one and two not again.
  CHECK(delivered[0].text == "three");
  CHECK(delivered[1].text == "four");
  CHECK(seen->size() == 4);
  // The saved offset is past everything delivered ("four" is confirmed by the next poll).
  std::ifstream again(state.path() + "/offset");
  again >> saved;
  json after = fake.control("state");
  for (auto& id : after["pending"]) CHECK(id.get<int64_t>() < saved);
}

TEST_CASE("telegram: an offset lost in a crash redelivers only what Telegram has not confirmed") {
  // The offset is written without a sync, so a crash may leave it old or unreadable. What that
  // costs: the next poll asks from the start, and Telegram answers with the updates no poll
  // has confirmed yet, which the supervisor's seen-store drops as duplicates.
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  auto seen = std::make_shared<std::set<std::string>>();
  {
    TestHost host(seen);
    Running running(settingsFor(fake, state.path()), host);
    fake.message({{"chat", DM}, {"from", OWNER}, {"text", "one"}});
    fake.message({{"chat", DM}, {"from", OWNER}, {"text", "two"}});
    REQUIRE(host.waitFor(2).size() == 2);
    // Confirmed on the server: the poll after them carried the offset past both.
    REQUIRE(host.waitUntil([&]() { return fake.control("state")["pending"].empty(); }));
    running.stop();
  }
  { std::ofstream(state.path() + "/offset", std::ios::trunc); }  // what a crash may leave

  TestHost host(seen);
  Running running(settingsFor(fake, state.path()), host);
  fake.message({{"chat", DM}, {"from", OWNER}, {"text", "three"}});
  auto delivered = host.waitFor(1);
  REQUIRE(delivered.size() == 1);
  running.stop();
  CHECK(delivered[0].text == "three");
  CHECK(seen->size() == 3);
}

TEST_CASE("telegram: 429 on getUpdates is waited out; 409 backs off and says why") {
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  fake.control("fail", {{"method", "getUpdates"}, {"status", 429}, {"retry_after", 1}});
  fake.control("fail", {{"method", "getUpdates"}, {"status", 409}, {"times", 2}});
  fake.message({{"chat", DM}, {"from", OWNER}, {"text", "after the storm"}});
  TestHost host;
  auto start = Clock::now();
  Running running(settingsFor(fake, state.path()), host);
  REQUIRE(host.waitFor(1).size() == 1);
  auto took = Clock::now() - start;
  running.stop();
  CHECK(took >= milliseconds(1000));  // the retry_after
  CHECK(host.sawStatus(State::RECONNECTING, "429 Too Many Requests: waiting 1 s"));
  CHECK(
      host.sawStatus(State::RECONNECTING, "409 Conflict: another getUpdates poller or a webhook"));
  CHECK(host.sawStatus(State::CONNECTED, ""));
  CHECK(host.waitFor(0).size() == 1);
}

TEST_CASE("telegram: a dropped connection reconnects and nothing is lost or doubled") {
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  TestHost host;
  Running running(settingsFor(fake, state.path()), host);
  REQUIRE(host.waitForStatus(State::CONNECTED, ""));
  // Twice: libcurl itself retries once, on a fresh connection, when a reused one dies before
  // any byte of the answer.
  fake.control("fail", {{"method", "getUpdates"}, {"drop", true}, {"times", 2}});
  fake.message({{"chat", DM}, {"from", OWNER}, {"text", "survives"}});
  fake.message({{"chat", DM}, {"from", OWNER}, {"text", "also"}});
  REQUIRE(host.waitFor(2).size() == 2);
  std::this_thread::sleep_for(milliseconds(1200));  // one more poll: nothing comes twice
  running.stop();
  CHECK(host.waitFor(0).size() == 2);
  std::string statuses;
  for (auto& detail : host.details()) statuses += detail + "\n";
  INFO(statuses);
  CHECK(host.sawStatus(State::RECONNECTING, "getUpdates: request to 127.0.0.1 failed"));
}

TEST_CASE("telegram: a revoked token fails for good, and the token is never shown") {
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  TestHost host;
  Running running(settingsFor(fake, state.path()), host);
  REQUIRE(host.waitForStatus(State::CONNECTED, ""));
  fake.control("revoke", json::object());
  REQUIRE(host.waitForStatus(State::FAILED, "401 Unauthorized"));
  for (int i = 0; i < 500 && !running.returned(); ++i) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  REQUIRE(running.returned());
  for (auto& detail : host.details()) CHECK(detail.find("AAtest-secret") == std::string::npos);
  std::string error = errorOf([&]() { running.platform().typing("1001", true); });
  CHECK(error.find("401") != std::string::npos);
  CHECK(error.find("AAtest-secret") == std::string::npos);
}

TEST_CASE("telegram: a long reply is chunked at 4096 UTF-16 units and sent as HTML") {
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  TestHost host;
  Running running(settingsFor(fake, state.path()), host);
  fake.message({{"chat", DM}, {"from", OWNER}, {"text", "write a lot"}});
  auto delivered = host.waitFor(1);
  REQUIRE(delivered.size() == 1);
  std::string paragraph = "**Bold** \U0001F600 text with <angle> & ampersand. ";
  std::string text;
  while (text.size() < 9000) text += paragraph + paragraph + "\n\n";
  text += "```cpp\nint main() { return a < b; }\n```";
  auto ids = running.platform().send({"1001", text, delivered[0].messageId, "", {}});
  auto sent = fake.sent("sendMessage");
  REQUIRE(sent.size() >= 3);
  CHECK(ids.size() == sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    CHECK(sent[i]["parse_mode"] == "HTML");
    std::string plain = sent[i]["text"];
    // The fake counts like Telegram (UTF-16, after parsing): it would have refused > 4096.
    CHECK(std::count(plain.begin(), plain.end(), '*') == 0);
    CHECK(sent[i]["entities"].size() > 0);
    CHECK(sent[i]["reply_to_message_id"] == (i == 0 ? json(1) : json(nullptr)));
  }
  CHECK(sent.back()["entities"].back()["type"] == "pre");
  CHECK(sent.back()["text"].get<std::string>().find("a < b") != std::string::npos);
}

TEST_CASE("telegram: HTML Telegram cannot parse is resent as plain text; 429 on send waited out") {
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  TestHost host;
  Running running(settingsFor(fake, state.path()), host);
  fake.message({{"chat", DM}, {"from", OWNER}, {"text", "hi"}});
  REQUIRE(host.waitFor(1).size() == 1);
  fake.control("fail", {{"method", "sendMessage"},
                        {"status", 400},
                        {"description",
                         "Bad Request: can't parse entities: Unsupported start tag "
                         "\"x\" at byte offset 0"}});
  running.platform().send({"1001", "**bold** and [a link](https://example.org)", "", "", {}});
  auto sent = fake.sent("sendMessage");
  REQUIRE(sent.size() == 1);
  CHECK(sent[0]["parse_mode"].is_null());
  CHECK(sent[0]["text"] == "bold and a link (https://example.org)");

  fake.control("fail", {{"method", "sendMessage"}, {"status", 429}, {"retry_after", 1}});
  auto start = Clock::now();
  auto ids = running.platform().send({"1001", "patient", "", "", {}});
  CHECK(Clock::now() - start >= milliseconds(1000));
  CHECK(ids.size() == 1);
  // A wait longer than a send may take is an error that says so.
  fake.control("fail", {{"method", "sendMessage"}, {"status", 429}, {"retry_after", 120}});
  CHECK(errorOf([&]() {
          running.platform().send({"1001", "x", "", "", {}});
        }) ==
        "sendMessage: 429 Too Many Requests: retry after 120 (longer than the minute a send may "
        "wait)");
  CHECK(errorOf([&]() {
          running.platform().send({"555", "x", "", "", {}});
        }) == "sendMessage: 400 Bad Request: chat not found");
}

TEST_CASE("telegram: attachments in (capped before download) and out (photo, document)") {
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  TestHost host;
  Running running(settingsFor(fake, state.path(), 1000), host);
  std::string bytes = "%PDF-1.4 pretend\n";
  auto file = fake.control(
      "file", {{"content_b64", "JVBERi0xLjQgcHJldGVuZAo="}, {"file_path", "documents/file_7.pdf"}});
  fake.message({{"chat", DM},
                {"from", OWNER},
                {"caption", "read this"},
                {"document",
                 {{"file_id", file["file_id"]},
                  {"file_unique_id", "u"},
                  {"file_name", "r.pdf"},
                  {"mime_type", "application/pdf"},
                  {"file_size", bytes.size()}}}});
  // Stated bigger than the cap: delivered without data, and never downloaded.
  auto big = fake.control(
      "file", {{"content_b64", "QUJD"}, {"file_path", "photos/big.jpg"}, {"size", 5000}});
  fake.message({{"chat", DM},
                {"from", OWNER},
                {"photo",
                 {{{"file_id", big["file_id"]},
                   {"file_unique_id", "b"},
                   {"width", 10},
                   {"height", 10},
                   {"file_size", 5000}}}}});
  auto delivered = host.waitFor(2);
  REQUIRE(delivered.size() == 2);
  auto& doc = delivered[0];
  CHECK(doc.text == "read this");
  REQUIRE(doc.attachments.size() == 1);
  CHECK(doc.attachments[0].name == "r.pdf");
  CHECK(doc.attachments[0].mimeType == "application/pdf");
  CHECK(doc.attachments[0].data == bytes);
  auto& photo = delivered[1];
  REQUIRE(photo.attachments.size() == 1);
  CHECK(photo.attachments[0].data.empty());
  CHECK(photo.attachments[0].size == 5000);

  std::string png = "\x89PNG\r\n\x1a\n-pretend-";
  auto ids = running.platform().send({"1001",
                                      "",
                                      doc.messageId,
                                      "",
                                      {{"chart.png", "image/png", png, png.size()},
                                       {"notes.txt", "text/plain", "some notes", 10}}});
  CHECK(ids.size() == 2);
  auto photos = fake.sent("sendPhoto");
  auto docs = fake.sent("sendDocument");
  REQUIRE(photos.size() == 1);
  REQUIRE(docs.size() == 1);
  CHECK(photos[0]["file_name"] == "chart.png");
  CHECK(photos[0]["size"] == png.size());
  CHECK(photos[0]["reply_to_message_id"] == std::stoll(doc.messageId));
  CHECK(docs[0]["file_name"] == "notes.txt");
  CHECK(docs[0]["content_type"] == "text/plain");
  CHECK(docs[0]["reply_to_message_id"].is_null());
}

TEST_CASE("telegram: typing and reactions") {
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  TestHost host;
  Running running(settingsFor(fake, state.path()), host);
  fake.message({{"chat", DM}, {"from", OWNER}, {"text", "hi"}});
  auto delivered = host.waitFor(1);
  REQUIRE(delivered.size() == 1);
  running.platform().typing("1001", true);
  running.platform().typing("1001", false);  // nothing to send: Telegram's typing just expires
  running.platform().react("1001", delivered[0].messageId, "\U0001F440");
  CHECK(errorOf([&]() { running.platform().react("1001", delivered[0].messageId, "x"); }) ==
        "setMessageReaction: 400 Bad Request: REACTION_INVALID");
  CHECK(errorOf([&]() { running.platform().react("1001", "abc", "\U0001F440"); }) ==
        "\"abc\" is not a Telegram message id");
  auto actions = fake.sent("sendChatAction");
  REQUIRE(actions.size() == 1);
  CHECK(actions[0]["action"] == "typing");
  auto reactions = fake.sent("setMessageReaction");
  REQUIRE(reactions.size() == 1);
  CHECK(reactions[0]["reaction"] == json::array({"\U0001F440"}));
}

TEST_CASE("telegram: a group that became a supergroup is followed, and remembered") {
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  const json oldGroup = {{"id", -4242}, {"type", "group"}, {"title", "Old"}};
  {
    TestHost host;
    Running running(settingsFor(fake, state.path()), host);
    fake.message({{"chat", oldGroup}, {"from", OWNER}, {"text", "@chitin_test_bot hi"}});
    REQUIRE(host.waitFor(1).size() == 1);
    fake.control("migrate", {{"from", -4242}, {"to", -1004242}});
    running.platform().send({"-4242", "after the move", "", "", {}});
  }
  auto sent = fake.sent("sendMessage");
  REQUIRE(sent.size() == 1);
  CHECK(sent[0]["chat_id"] == -1004242);
  // A new worker goes straight to the new id.
  TestHost host;
  Running running(settingsFor(fake, state.path()), host);
  running.platform().send({"-4242", "again", "", "", {}});
  CHECK(fake.sent("sendMessage").size() == 2);
  CHECK(fake.control("state")["pending"].empty());
}

TEST_CASE("telegram: bad settings are refused, naming what is wrong but never the token") {
  FakeTelegram fake(TOKEN);
  TempDir state("chitin-telegram-state");
  TestHost host;
  auto tryMake = [&](std::function<void(Settings&)> change) {
    Settings s = settingsFor(fake, state.path());
    change(s);
    return errorOf([&]() { makeTelegram(s, host); });
  };
  CHECK(tryMake([](Settings&) {}) == "");
  CHECK(tryMake([](Settings& s) {
          s.credential = "not a token";
        }).find("the bot token is missing or malformed") != std::string::npos);
  CHECK(tryMake([](Settings& s) { s.credential = ""; }).find("malformed") != std::string::npos);
  CHECK(tryMake([](Settings& s) {
          s.options["apiRoot"] = "http://api.telegram.org";
        }).find("option \"apiRoot\": expected an https:// URL") == 0 + 9);
  CHECK(tryMake([](Settings& s) { s.options["apiRoot"] = "https://x.test/?a=1"; }) != "");
  CHECK(tryMake([](Settings& s) { s.options["apiRoot"] = "https://user@x.test"; }) != "");
  CHECK(tryMake([](Settings& s) { s.options["apiRoot"] = "http://localhost:8081/"; }) == "");
  CHECK(tryMake([](Settings& s) { s.options["pollTimeout"] = "99"; }) ==
        "telegram option \"pollTimeout\": expected a whole number from 0 to 50, got \"99\"");
  CHECK(tryMake([](Settings& s) { s.options["webhook"] = "x"; }) ==
        "unknown telegram option \"webhook\" (known: apiRoot, pollTimeout)");
  CHECK(tryMake([](Settings& s) { s.stateDir = "/nonexistent-state"; }) ==
        "the state directory /nonexistent-state does not exist");
}

}  // namespace
}  // namespace chitin::channel::telegram
