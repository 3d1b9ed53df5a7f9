// SPDX-License-Identifier: Apache-2.0
// The WhatsApp adapter against tests/fakes/fake_whatsapp_bridge.py, run as its bridge child:
// QR and pairing-code login, messages in (with media), sends, typing and reactions out, a
// bridge that dies and is restarted, and calls that fail cleanly while it is gone.
// Runs in: worker (sandboxed) -- test code, runs unconfined.

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "test-host.h"
#include "whatsapp-channel.h"

namespace chitin::channel {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string ALICE = "15551110000@s.whatsapp.net";
const std::string GROUP = "120363000000000001@g.us";

struct Fixture {
  fs::path dir;
  TestHost host;
  std::unique_ptr<Platform> platform;
  std::thread receiver;
  int injected = 0;

  explicit Fixture(bool linked, uint64_t maxAttachmentBytes = 1u << 20, std::string wsUrl = "") {
    char tmpl[] = "/tmp/chitin-wa-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    dir = tmpl;
    fs::create_directories(dir / "state");
    if (linked) std::ofstream(dir / "linked").close();
    const char* python = getenv("CHITIN_PYTHON");
    const char* fake = getenv("CHITIN_FAKE_WHATSAPP_BRIDGE");
    REQUIRE_MESSAGE(python, "CHITIN_PYTHON is not set (meson sets it)");
    REQUIRE_MESSAGE(fake, "CHITIN_FAKE_WHATSAPP_BRIDGE is not set (meson sets it)");
    Settings settings;
    settings.kind = "whatsapp";
    settings.egressSocket = "/run/chitin/egress.sock";
    settings.stateDir = (dir / "state").string();
    settings.maxAttachmentBytes = maxAttachmentBytes;
    if (!wsUrl.empty()) settings.options = {{"wsUrl", wsUrl}};
    platform = makeWhatsAppWithBridge(settings, host, {python, "-u", fake, dir.string()});
    receiver = std::thread([this] { platform->run(host); });
  }
  ~Fixture() {
    host.stop();
    platform->interrupt();
    receiver.join();
    platform.reset();
    fs::remove_all(dir);
  }

  void inject(const Json& event) {
    fs::create_directories(dir / "inject");
    char name[32];
    snprintf(name, sizeof name, "%04d", injected++);
    fs::path tmp = dir / "inject" / (std::string(name) + ".tmp");
    std::ofstream(tmp) << event.dump();
    fs::rename(tmp, dir / "inject" / (std::string(name) + ".json"));
  }
  std::vector<Json> commands(const std::string& type = "") {
    std::vector<Json> out;
    std::ifstream in(dir / "commands.jsonl");
    for (std::string line; std::getline(in, line);) {
      Json c = Json::parse(line);
      if (type.empty() || c["type"] == type) out.push_back(c);
    }
    return out;
  }
  size_t starts() { return commands("_started").size(); }
};

Json message(std::string id, std::string text) {
  return {{"type", "message"},   {"jid", ALICE},
          {"participant", ""},   {"sender", "15551110000"},
          {"pushName", "Alice"}, {"id", std::move(id)},
          {"ts", 1700000000},    {"text", std::move(text)},
          {"group", false},      {"mentions", Json::array()},
          {"mentioned", false},  {"quoted", nullptr},
          {"fromMe", false},     {"media", nullptr}};
}

TEST_CASE(
    "whatsapp adapter: not linked -> LOGIN_REQUIRED; login shows the QR, then connected as our "
    "number") {
  Fixture f(/*linked=*/false);
  REQUIRE(f.host.waitForState(State::LOGIN_REQUIRED, 1));
  CHECK(f.host.lastDetail(State::LOGIN_REQUIRED).find("chitin channels login whatsapp") !=
        std::string::npos);
  f.platform->login("");
  CHECK(f.host.waitForLogins(1) == std::vector<std::string>{"qr:QR-DATA-1"});
  REQUIRE(f.host.waitForState(State::CONNECTED, 1));
  CHECK(f.host.identity() == "+15550000000");
  auto started = f.commands("_started");
  REQUIRE(started.size() == 1);
  std::vector<std::string> argv = started[0]["argv"];
  CHECK(argv == std::vector<std::string>{"--state", (f.dir / "state" / "whatsapp").string(),
                                         "--media", argv[3], "--egress",
                                         "/run/chitin/egress.sock"});
  CHECK(argv[3].rfind("/tmp/chitin-whatsapp-", 0) == 0);
  CHECK(f.commands("hello")[0]["maxMediaBytes"] == 1u << 20);
}

TEST_CASE("whatsapp adapter: a phone number asks for a pairing code; a bad one is refused here") {
  Fixture f(/*linked=*/false, 1u << 20, "ws://127.0.0.1:9/ws/chat");
  REQUIRE(f.host.waitForState(State::LOGIN_REQUIRED, 1));
  f.platform->login("+1 555 000-0000");
  CHECK(f.host.waitForLogins(1) == std::vector<std::string>{"code:ABCD-2345"});
  CHECK(f.commands("login.start")[0]["phone"] == "+1 555 000-0000");
  CHECK_THROWS_WITH_AS(f.platform->login("call me"), doctest::Contains("not a phone number"),
                       ChannelError);
}

TEST_CASE("whatsapp adapter: messages in (DM, group mention, reply, media), our own dropped") {
  Fixture f(/*linked=*/true, /*maxAttachmentBytes=*/8);
  REQUIRE(f.host.waitForState(State::CONNECTED, 1));
  Json own = message("M0", "from my phone");
  own["fromMe"] = true;
  f.inject(own);
  f.inject(message("M1", "hello"));
  Json group = message("M2", "@chitin lunch?");
  group["jid"] = GROUP;
  group["participant"] = "88881111@lid";
  group["sender"] = "88881111@lid";
  group["group"] = true;
  group["mentioned"] = true;
  group["quoted"] = {{"id", "OUT7"}, {"participant", "15550000000@s.whatsapp.net"}};
  f.inject(group);
  Json photo = message("M3", "look");
  photo["media"] = {{"kind", "image"},
                    {"mime", "image/png"},
                    {"name", "image.png"},
                    {"size", 4},
                    {"data_b64", "UE5HIQ=="}};  // "PNG!"
  f.inject(photo);
  Json big = message("M4", "");
  big["media"] = {{"kind", "document"},
                  {"mime", "application/pdf"},
                  {"name", "big.pdf"},
                  {"size", 9},
                  {"data_b64", "MTIzNDU2Nzg5"}};  // 9 bytes > 8
  f.inject(big);
  auto got = f.host.waitFor(4);
  REQUIRE(got.size() == 4);
  CHECK(got[0].messageId == "M1");
  CHECK(got[0].chatId == ALICE);
  CHECK(got[0].senderId == "15551110000");
  CHECK(got[0].senderName == "Alice");
  CHECK(got[0].timestampMs == 1700000000000);
  CHECK_FALSE(got[0].group);
  CHECK(got[1].chatId == GROUP);
  CHECK(got[1].group);
  CHECK(got[1].senderId == "88881111@lid");
  CHECK(got[1].mentioned);
  CHECK(got[1].replyTo == "OUT7");
  REQUIRE(got[2].attachments.size() == 1);
  CHECK(got[2].attachments[0].data == "PNG!");
  CHECK(got[2].attachments[0].mimeType == "image/png");
  CHECK(got[2].attachments[0].name == "image.png");
  REQUIRE(got[3].attachments.size() == 1);
  CHECK(got[3].attachments[0].data.empty());  // over the cap: its size only
  CHECK(got[3].attachments[0].size == 9);
  std::string mediaDir = f.commands("_started")[0]["argv"][3];
  CHECK(fs::is_empty(mediaDir));  // read and removed
}

TEST_CASE(
    "whatsapp adapter: replies in 4000-character pieces, media, typing, reactions; errors name the "
    "cause") {
  Fixture f(/*linked=*/true);
  REQUIRE(f.host.waitForState(State::CONNECTED, 1));
  std::string text = "**Sure.** ";
  while (text.size() < 9000) text += "lorem ipsum ";
  auto ids = f.platform->send({ALICE, text, "M1", "", {{"a b.pdf", "application/pdf", "%PDF", 4}}});
  CHECK(ids == std::vector<std::string>{"OUT1", "OUT2", "OUT3", "OUT4"});
  auto sends = f.commands("send");
  REQUIRE(sends.size() == 4);
  CHECK(sends[0]["replyTo"] == "M1");
  CHECK_FALSE(sends[1].contains("replyTo"));
  CHECK(sends[0]["text"].get<std::string>().rfind("Sure. lorem", 0) == 0);
  for (int i = 0; i < 3; i++) CHECK(sends[i]["text"].get<std::string>().size() <= 4000);
  CHECK(sends[3]["media"]["name"] == "a b.pdf");
  CHECK(sends[3]["media"]["mime"] == "application/pdf");
  CHECK(sends[3]["media"]["data_b64"] == "JVBERg==");

  f.platform->typing(GROUP, true);
  f.platform->typing(GROUP, false);
  f.platform->react(GROUP, "M2", "👀");
  auto typing = f.commands("typing");
  REQUIRE(typing.size() == 2);
  CHECK(typing[0]["on"] == true);
  CHECK(typing[1]["on"] == false);
  auto reacts = f.commands("react");
  REQUIRE(reacts.size() == 1);
  CHECK(reacts[0]["key"]["id"] == "M2");
  CHECK(reacts[0]["emoji"] == "👀");

  // A phone number (the form sender ids and the `message` tool's recipients take) is its jid.
  CHECK(f.platform->send({"15551230000", "by number", "", "", {}}).size() == 1);
  CHECK(f.commands("send").back()["jid"] == "15551230000@s.whatsapp.net");
  CHECK_THROWS_WITH_AS(f.platform->send({"alice", "hi", "", "", {}}),
                       doctest::Contains("not a phone number or a WhatsApp jid"), ChannelError);
  CHECK_THROWS_WITH_AS(f.platform->send({"+1555", "hi", "", "", {}}),
                       doctest::Contains("not a phone number or a WhatsApp jid"), ChannelError);
  std::ofstream(f.dir / "fail").close();
  CHECK_THROWS_WITH_AS(f.platform->typing(ALICE, true), "whatsapp: scripted failure of typing",
                       ChannelError);
}

TEST_CASE(
    "whatsapp adapter: a bridge that dies is restarted with backoff and nothing after it is lost") {
  Fixture f(/*linked=*/true);
  REQUIRE(f.host.waitForState(State::CONNECTED, 1));
  f.inject(message("M1", "before"));
  REQUIRE(f.host.waitFor(1).size() == 1);
  f.inject({{"type", "_exit"}, {"code", 3}});
  REQUIRE(f.host.waitForState(State::RECONNECTING, 1));
  CHECK(f.host.lastDetail(State::RECONNECTING).find("exited with status 3") != std::string::npos);
  // A reply in the gap waits for the new bridge's link instead of being lost.
  CHECK(f.platform->send({ALICE, "in the gap", "", "", {}}).size() == 1);
  REQUIRE(f.host.waitForState(State::CONNECTED, 2));
  CHECK(f.starts() == 2);
  f.inject(message("M2", "after"));
  auto got = f.host.waitFor(2);
  REQUIRE(got.size() == 2);
  CHECK(got[1].text == "after");
  CHECK(f.platform->send({ALICE, "still here", "", "", {}}).size() == 1);
}

TEST_CASE(
    "whatsapp adapter: a bridge that cannot start is reported and retried; shutdown is prompt") {
  TestHost host;
  Settings settings;
  settings.kind = "whatsapp";
  settings.stateDir = "/nonexistent";
  auto platform = makeWhatsAppWithBridge(settings, host, {"/nonexistent/node", "bridge.mjs"});
  std::thread receiver([&] { platform->run(host); });
  REQUIRE(host.waitForState(State::RECONNECTING, 2));
  CHECK(host.lastDetail(State::RECONNECTING).find("exited with status 127") != std::string::npos);
  try {  // between two attempts (or, rarely, during one that is about to fail)
    platform->typing(ALICE, true);
    FAIL("typing without a bridge succeeded");
  } catch (const ChannelError& e) {
    std::string what = e.what();
    CHECK((what.find("not running") != std::string::npos ||
           what.find("restarted before answering") != std::string::npos));
  }
  auto stopAt = std::chrono::steady_clock::now();
  host.stop();
  platform->interrupt();
  receiver.join();
  CHECK(std::chrono::steady_clock::now() - stopAt < 1s);
  Settings withOption;
  withOption.kind = "whatsapp";
  withOption.options = {{"apiRoot", "x"}};
  CHECK_THROWS_WITH_AS(makeWhatsAppWithBridge(withOption, host, {"/bin/true"}),
                       doctest::Contains("apiRoot"), ChannelError);
}

}  // namespace
}  // namespace chitin::channel
