// SPDX-License-Identifier: Apache-2.0
// The Signal platform against tests/fakes/fake_signal_cli.py over real HTTP: DMs, groups with
// and without a mention, chunked replies, typing, reactions, attachments both ways, rate
// limits, and a dropped event stream that reconnects without losing what arrived meanwhile.
// Runs in: worker (sandboxed) -- test code, runs unconfined, direct TCP (no egress socket).

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "http-client.h"
#include "signal-channel.h"
#include "test-host.h"

namespace chitin::channel {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

const std::string SELF = "+15550000000";
const std::string SELF_UUID = "00000000-0000-4000-8000-000000000001";
const std::string ALICE = "+15551110000";
const std::string ALICE_UUID = "11111111-1111-4111-8111-111111111111";
const std::string GROUP = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

// The fake daemon on a free port, killed at the end.
class FakeDaemon {
 public:
  FakeDaemon() {
    char dir[] = "/tmp/chitin-signal-test-XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    dir_ = dir;
    std::string portFile = dir_ + "/port";
    const char* python = getenv("CHITIN_PYTHON");
    const char* script = getenv("CHITIN_FAKE_SIGNAL_CLI");
    REQUIRE_MESSAGE(python, "CHITIN_PYTHON is not set (meson sets it)");
    REQUIRE_MESSAGE(script, "CHITIN_FAKE_SIGNAL_CLI is not set (meson sets it)");
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      execl(python, python, script, "--port", "0", "--port-file", portFile.c_str(), "--account",
            SELF.c_str(), "--account-uuid", SELF_UUID.c_str(), "--keepalive", "0.5", nullptr);
      _exit(127);
    }
    for (int i = 0; i < 500 && port_.empty(); i++) {
      std::ifstream in(portFile);
      std::getline(in, port_);
      if (port_.empty()) std::this_thread::sleep_for(10ms);
    }
    REQUIRE_MESSAGE(!port_.empty(), "the fake signal-cli did not start");
  }
  ~FakeDaemon() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    std::remove((dir_ + "/port").c_str());
    rmdir(dir_.c_str());
  }
  std::string url() const { return "http://127.0.0.1:" + port_; }

  Json control(const std::string& name, const Json& body = nullptr) {
    HttpClient client("");
    HttpRequest request;
    request.url = url() + "/_control/" + name;
    if (!body.is_null()) {
      request.method = "POST";
      request.headers = {"Content-Type: application/json"};
      request.body = body.dump();
    }
    HttpResponse response = client.perform(request);
    REQUIRE(response.status == 200);
    return Json::parse(response.body);
  }
  std::vector<Json> calls(const std::string& method) {
    std::vector<Json> out;
    for (auto& call : control("calls"))
      if (call["method"] == method) out.push_back(call);
    return out;
  }

 private:
  std::string dir_, port_;
  pid_t pid_ = -1;
};

// The platform running on its own receive thread, as the framework runs it.
struct Running {
  FakeDaemon& daemon;
  TestHost host;
  std::unique_ptr<Platform> platform;
  std::thread receiver;

  explicit Running(FakeDaemon& d, uint64_t maxAttachmentBytes = 1u << 20) : daemon(d) {
    Settings settings;
    settings.kind = "signal";
    settings.egressSocket = "";
    settings.maxAttachmentBytes = maxAttachmentBytes;
    settings.options = {{"url", d.url() + "/"},
                        {"account", SELF},
                        {"accountUuid", SELF_UUID},
                        {"mentionNames", "chitin, @Chitin Bot"},
                        {"idleTimeoutSeconds", "20"}};
    platform = makeSignal(settings, host);
    receiver = std::thread([this] { platform->run(host); });
    REQUIRE(host.waitForState(State::CONNECTED, 1));
  }
  ~Running() {
    host.stop();
    platform->interrupt();
    receiver.join();
  }
};

Json message(std::string text) {
  return {{"from", ALICE}, {"fromUuid", ALICE_UUID}, {"name", "Alice"}, {"text", std::move(text)}};
}

TEST_CASE(
    "signal channel: a DM arrives from the sender's ACI and a long reply goes back in "
    "4000-character pieces") {
  FakeDaemon daemon;
  Running run(daemon);
  Json sent = daemon.control("message", message("hello **bot**"));
  auto got = run.host.waitFor(1);
  REQUIRE(got.size() == 1);
  CHECK(got[0].chatId == ALICE_UUID);
  CHECK(got[0].senderId == ALICE_UUID);
  CHECK(got[0].senderName == "Alice");
  CHECK(got[0].text == "hello **bot**");
  CHECK(got[0].messageId == ALICE_UUID + ":" + std::to_string(sent["timestamp"].get<int64_t>()));
  CHECK_FALSE(got[0].group);

  std::string reply = "**Sure.** ";
  while (reply.size() < 9600) reply += "lorem ipsum ";
  auto ids = run.platform->send({got[0].chatId, reply, got[0].messageId, "", {}});
  auto sends = daemon.calls("send");
  REQUIRE(sends.size() == 3);
  REQUIRE(ids.size() == 3);
  size_t total = 0;
  for (auto& call : sends) {
    CHECK(call["params"]["recipient"] == ALICE_UUID);
    CHECK(call["params"]["account"] == SELF);
    std::string text = call["params"]["message"];
    CHECK(text.size() <= 4000);
    total += text.size();
  }
  CHECK(sends[0]["params"]["message"].get<std::string>().rfind("Sure. lorem", 0) == 0);  // plain
  CHECK(total >= 9500);
  CHECK(sends[0]["params"]["quoteAuthor"] == ALICE_UUID);  // the first piece quotes the question
  CHECK(sends[0]["params"]["quoteTimestamp"] == sent["timestamp"]);
  CHECK_FALSE(sends[1]["params"].contains("quoteTimestamp"));
  CHECK(ids[0].rfind(SELF + ":", 0) == 0);
}

TEST_CASE("signal channel: group messages carry group:<id>; mentioned only when addressed") {
  FakeDaemon daemon;
  Running run(daemon);
  Json plain = message("lunch?");
  plain["groupId"] = GROUP;
  daemon.control("message", plain);
  Json mention = message("\xEF\xBF\xBC lunch?");
  mention["groupId"] = GROUP;
  mention["mentions"] = Json::array({{{"uuid", SELF_UUID}, {"start", 0}, {"length", 1}}});
  daemon.control("message", mention);
  Json byName = message("chitin bot: lunch?");
  byName["groupId"] = GROUP;
  daemon.control("message", byName);
  auto got = run.host.waitFor(3);
  REQUIRE(got.size() == 3);
  CHECK(got[0].chatId == "group:" + GROUP);
  CHECK(got[0].group);
  CHECK_FALSE(got[0].mentioned);
  CHECK(got[1].mentioned);
  CHECK(got[1].text == "@chitin lunch?");
  CHECK(got[2].mentioned);
  run.platform->send({got[1].chatId, "at noon", "", "", {}});
  auto sends = daemon.calls("send");
  REQUIRE(sends.size() == 1);
  CHECK(sends[0]["params"]["groupId"] == GROUP);
  CHECK_FALSE(sends[0]["params"].contains("recipient"));
}

TEST_CASE("signal channel: typing on and off, and a reaction naming the author and timestamp") {
  FakeDaemon daemon;
  Running run(daemon);
  daemon.control("message", message("hi"));
  auto got = run.host.waitFor(1);
  REQUIRE(got.size() == 1);
  run.platform->typing(got[0].chatId, true);
  run.platform->typing(got[0].chatId, false);
  run.platform->react(got[0].chatId, got[0].messageId, "👀");
  auto typing = daemon.calls("sendTyping");
  REQUIRE(typing.size() == 2);
  CHECK_FALSE(typing[0]["params"].contains("stop"));
  CHECK(typing[1]["params"]["stop"] == true);
  auto reactions = daemon.calls("sendReaction");
  REQUIRE(reactions.size() == 1);
  CHECK(reactions[0]["params"]["emoji"] == "👀");
  CHECK(reactions[0]["params"]["targetAuthor"] == ALICE_UUID);
  CHECK(reactions[0]["params"]["targetTimestamp"] == got[0].timestampMs);
  CHECK(reactions[0]["params"]["recipient"] == ALICE_UUID);
  CHECK_THROWS_WITH_AS(run.platform->react(got[0].chatId, "42", "👀"),
                       doctest::Contains("not <author>:<timestamp>"), ChannelError);
}

TEST_CASE("signal channel: attachments both ways; one over the cap arrives as its size only") {
  FakeDaemon daemon;
  Running run(daemon, /*maxAttachmentBytes=*/16);
  Json withFiles = message("");
  withFiles["attachments"] =
      Json::array({{{"name", "note.txt"},
                    {"mime", "text/plain"},
                    {"data", "aGVsbG8gdGhlcmU="}},  // "hello there"
                   {{"name", "big.bin"},
                    {"mime", "application/octet-stream"},
                    {"data", "MDEyMzQ1Njc4OTAxMjM0NTY3ODk="}}});  // 20 bytes > 16
  daemon.control("message", withFiles);
  auto got = run.host.waitFor(1);
  REQUIRE(got.size() == 1);
  REQUIRE(got[0].attachments.size() == 2);
  CHECK(got[0].attachments[0].name == "note.txt");
  CHECK(got[0].attachments[0].mimeType == "text/plain");
  CHECK(got[0].attachments[0].data == "hello there");
  CHECK(got[0].attachments[1].size == 20);
  CHECK(got[0].attachments[1].data.empty());
  CHECK(daemon.calls("getAttachment").size() == 1);  // the big one was never fetched

  std::string bytes("\x89PNG\r\n\x1a\n\x00\x01", 10);
  run.platform->send({got[0].chatId, "", "", "", {{"chart 1.png", "image/png", bytes, 10}}});
  auto sends = daemon.calls("send");
  REQUIRE(sends.size() == 1);
  CHECK_FALSE(sends[0]["params"].contains("message"));
  REQUIRE(sends[0]["attachments"].size() == 1);
  CHECK(sends[0]["attachments"][0]["name"] == "chart 1.png");
  CHECK(sends[0]["attachments"][0]["mime"] == "image/png");
  CHECK(sends[0]["attachments"][0]["data"] == "iVBORw0KGgoAAQ==");
}

TEST_CASE(
    "signal channel: a dropped event stream reconnects and what arrived meanwhile is delivered "
    "once") {
  FakeDaemon daemon;
  Running run(daemon);
  daemon.control("message", message("one"));
  REQUIRE(run.host.waitFor(1).size() == 1);
  daemon.control("drop", Json::object());
  // Once the worker has seen the stream end (an envelope written into a stream as it breaks
  // may be lost: signal-channel.h), a message waits on the "server" for the next stream.
  REQUIRE(run.host.waitForState(State::RECONNECTING, 1));
  daemon.control("message", message("two"));
  REQUIRE(run.host.waitForState(State::CONNECTED, 2));
  auto got = run.host.waitFor(2);
  REQUIRE(got.size() == 2);
  CHECK(got[1].text == "two");
  CHECK(daemon.control("streams")["opened"] == 2);
  daemon.control("message", message("three"));
  got = run.host.waitFor(3);
  REQUIRE(got.size() == 3);
  CHECK(got[2].text == "three");
}

TEST_CASE(
    "signal channel: a rate-limited send waits the time signal-cli names, other errors are "
    "thrown") {
  FakeDaemon daemon;
  Running run(daemon);
  Json data = {
      {"response",
       {{"timestamp", 1},
        {"results", Json::array({{{"type", "RATE_LIMIT_FAILURE"}, {"retryAfterSeconds", 1}}})}}}};
  daemon.control("fail", {{"method", "send"},
                          {"code", -5},
                          {"message", "Failed to send message due to rate limiting"},
                          {"data", data},
                          {"times", 1}});
  auto started = std::chrono::steady_clock::now();
  run.platform->send({ALICE_UUID, "hi", "", "", {}});
  CHECK(std::chrono::steady_clock::now() - started >= 900ms);
  CHECK(daemon.calls("send").size() == 2);
  daemon.control(
      "fail",
      {{"method", "send"}, {"code", -1}, {"message", "Failed to send message"}, {"times", 1}});
  CHECK_THROWS_WITH_AS(run.platform->send({ALICE_UUID, "hi", "", "", {}}),
                       "signal-cli send: Failed to send message (code -1)", ChannelError);
  CHECK_THROWS_WITH_AS(run.platform->send({"bob", "hi", "", "", {}}),
                       doctest::Contains("neither a number"), ChannelError);
}

TEST_CASE("signal channel: an unreachable daemon is reported and retried; bad options are named") {
  TestHost host;
  Settings settings;
  settings.kind = "signal";
  settings.egressSocket = "";
  settings.options = {{"url", "http://127.0.0.1:1"}, {"account", SELF}};
  auto platform = makeSignal(settings, host);
  std::thread receiver([&] { platform->run(host); });
  CHECK(host.waitForState(State::RECONNECTING, 2));
  host.stop();
  platform->interrupt();
  receiver.join();

  auto make = [&](std::map<std::string, std::string> options) {
    Settings s;
    s.kind = "signal";
    s.options = std::move(options);
    return makeSignal(s, host);
  };
  CHECK_THROWS_WITH_AS(make({{"url", "127.0.0.1:8080"}, {"account", SELF}}),
                       doctest::Contains("option url"), ChannelError);
  CHECK_THROWS_WITH_AS(make({{"url", "http://127.0.0.1:8080"}, {"account", "15550000000"}}),
                       doctest::Contains("option account"), ChannelError);
  CHECK_THROWS_WITH_AS(
      make({{"url", "http://127.0.0.1:8080"}, {"account", SELF}, {"accountUuid", "x"}}),
      doctest::Contains("accountUuid"), ChannelError);
  CHECK_THROWS_WITH_AS(
      make({{"url", "http://127.0.0.1:8080"}, {"account", SELF}, {"number", SELF}}),
      doctest::Contains("\"number\""), ChannelError);
}

}  // namespace
}  // namespace chitin::channel
