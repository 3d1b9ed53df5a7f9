// SPDX-License-Identifier: Apache-2.0
// Tests of the `message` tool: the recipient grammar, argument checks, files read beneath the
// workspace only, and the send through a ChannelSender.
// Runs in: tests

#include "message-tool.h"

#include <doctest/doctest.h>
#include <kj/debug.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace chitin {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class RecordingSender final : public ChannelSender {
 public:
  std::vector<OutgoingMessage> sent;
  std::string refuse;  // non-empty: reject with this
  kj::Promise<std::vector<std::string>> sendMessage(OutgoingMessage message) override {
    if (!refuse.empty())
      return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(refuse));
    sent.push_back(std::move(message));
    return std::vector<std::string>{"m1", "m2"};
  }
};

class OtherTools final : public ToolExecutor {
 public:
  std::vector<std::string> ran;
  kj::Promise<ToolOutcome> run(const std::string& tool, const std::string&, const std::string&,
                               const std::vector<std::string>&, CallScope*) override {
    ran.push_back(tool);
    return ToolOutcome{ToolOutcome::Status::OK, "ran " + tool};
  }
};

struct Workspace {
  std::string root;
  Workspace() {
    char tmpl[] = "/tmp/chitin-message-XXXXXX";
    root = ::mkdtemp(tmpl);
    fs::create_directories(root + "/ws/out");
    fs::create_directories(root + "/outside");
    std::ofstream(root + "/ws/out/report.pdf") << "%PDF-1.4 report";
    std::ofstream(root + "/outside/secret.txt") << "host secret";
    fs::create_symlink(root + "/outside/secret.txt", root + "/ws/escape.txt");
    fs::create_symlink("out/report.pdf", root + "/ws/inside-link.pdf");
  }
  ~Workspace() { fs::remove_all(root); }
  std::string ws() const { return root + "/ws"; }
};

std::string check(const json& args) { return checkMessageArguments(args); }

TEST_CASE("message: recipients are <channel>:<chat id>") {
  std::string channel, chat;
  CHECK(parseRecipient("telegram:123", channel, chat) == "");
  CHECK(channel == "telegram");
  CHECK(chat == "123");
  CHECK(parseRecipient("irc:#chitin", channel, chat) == "");
  CHECK(chat == "#chitin");
  CHECK(parseRecipient("email:bob@example.com", channel, chat) == "");
  CHECK(parseRecipient("signal:group:abc=", channel, chat) == "");
  CHECK(chat == "group:abc=");  // only the first colon separates
  CHECK(parseRecipient("nocolon", channel, chat).find("<channel>:<chat id>") != std::string::npos);
  CHECK(parseRecipient("Telegram:1", channel, chat).find("channel") != std::string::npos);
  CHECK(parseRecipient("telegram:", channel, chat).find("1-256") != std::string::npos);
  CHECK(parseRecipient("telegram:a\nb", channel, chat).find("control") != std::string::npos);
  CHECK(parseRecipient("telegram: 1", channel, chat).find("space") != std::string::npos);
  CHECK(parseRecipient("telegram:\xff", channel, chat).find("UTF-8") != std::string::npos);
  CHECK(parseRecipient("telegram:" + std::string(257, '1'), channel, chat) != "");
}

TEST_CASE("message: a WhatsApp number in any spelling is the form its sender ids take") {
  CHECK(canonicalRecipient("whatsapp:15551234567") == "whatsapp:15551234567");
  CHECK(canonicalRecipient("whatsapp:+15551234567") == "whatsapp:15551234567");
  CHECK(canonicalRecipient("whatsapp:15551234567@s.whatsapp.net") == "whatsapp:15551234567");
  // Groups, linked ids and anything that is not a number stay as written.
  CHECK(canonicalRecipient("whatsapp:1203630@g.us") == "whatsapp:1203630@g.us");
  CHECK(canonicalRecipient("whatsapp:987@lid") == "whatsapp:987@lid");
  CHECK(canonicalRecipient("whatsapp:+1 555") == "whatsapp:+1 555");
  CHECK(canonicalRecipient("whatsapp:+") == "whatsapp:+");
  CHECK(canonicalRecipient("whatsapp:@s.whatsapp.net") == "whatsapp:@s.whatsapp.net");
  // Other channels' ids are their own.
  CHECK(canonicalRecipient("telegram:+42") == "telegram:+42");
  CHECK(canonicalRecipient("irc:alice") == "irc:alice");
  CHECK(canonicalRecipient("nocolon") == "nocolon");
}

TEST_CASE("message: arguments are checked and name what is wrong") {
  CHECK(check({{"action", "send"}, {"to", "telegram:1"}, {"text", "hi"}}) == "");
  CHECK(check({{"to", "telegram:1"}, {"media", "a.png"}}) == "");
  CHECK(check({{"to", "telegram:1"}, {"media", json::array({"a", "b"})}}) == "");
  CHECK(check({{"action", "delete"}, {"to", "telegram:1"}, {"text", "x"}}).find("\"send\"") !=
        std::string::npos);
  CHECK(check({{"text", "x"}}).find("\"to\"") != std::string::npos);
  CHECK(check({{"to", "telegram:1"}}).find("\"text\" or \"media\"") != std::string::npos);
  CHECK(check({{"to", "telegram:1"}, {"text", 5}}).find("\"text\" must be a string") !=
        std::string::npos);
  CHECK(check({{"to", "telegram:1"}, {"text", std::string(70000, 'x')}}).find("64 KiB") !=
        std::string::npos);
  CHECK(check({{"to", "telegram:1"}, {"media", json::array({1})}}).find("\"media\"") !=
        std::string::npos);
  CHECK(check({{"to", "telegram:1"},
               {"media", json::array({"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"})}})
            .find("at most 10") != std::string::npos);
}

TEST_CASE("message: files are read beneath the workspace; a symlink cannot lead out") {
  Workspace w;
  std::vector<OutgoingFile> files;
  CHECK(readMessageFiles(w.ws(), {"out/report.pdf", "inside-link.pdf"}, files) == "");
  REQUIRE(files.size() == 2);
  CHECK(files[0].name == "report.pdf");
  CHECK(files[0].mimeType == "application/pdf");
  CHECK(files[0].data == "%PDF-1.4 report");
  CHECK(files[1].data == "%PDF-1.4 report");

  files.clear();
  CHECK(readMessageFiles(w.ws(), {"escape.txt"}, files).find("cannot open") != std::string::npos);
  CHECK(readMessageFiles(w.ws(), {"../outside/secret.txt"}, files) != "");
  CHECK(readMessageFiles(w.ws(), {"out"}, files).find("not a regular file") != std::string::npos);
  CHECK(readMessageFiles(w.ws(), {"missing.txt"}, files).find("cannot open") != std::string::npos);
  CHECK(files.empty());
}

TEST_CASE("message: MessageTool sends through the channel sender and passes other tools on") {
  Workspace w;
  OtherTools others;
  RecordingSender sender;
  MessageTool tool(others, &sender);
  kj::EventLoop loop;
  kj::WaitScope scope(loop);

  json args = {
      {"action", "send"}, {"to", "telegram:42"}, {"text", "*done*"}, {"media", "out/report.pdf"}};
  ToolOutcome sent = tool.run("message", args.dump(), w.ws(), {}).wait(scope);
  CHECK(sent.status == ToolOutcome::Status::OK);
  CHECK(sent.content == "sent to telegram:42 (2 messages, 1 file(s))");
  REQUIRE(sender.sent.size() == 1);
  CHECK(sender.sent[0].channel == "telegram");
  CHECK(sender.sent[0].chatId == "42");
  CHECK(sender.sent[0].text == "*done*");
  REQUIRE(sender.sent[0].files.size() == 1);

  sender.refuse = "no telegram account is running";
  ToolOutcome refused = tool.run("message", args.dump(), w.ws(), {}).wait(scope);
  CHECK(refused.status == ToolOutcome::Status::ERROR);
  CHECK(refused.content.find("not sent to telegram:42: no telegram account is running") !=
        std::string::npos);

  json escape = {{"action", "send"}, {"to", "telegram:42"}, {"media", "escape.txt"}};
  CHECK(tool.run("message", escape.dump(), w.ws(), {}).wait(scope).status ==
        ToolOutcome::Status::ERROR);
  CHECK(sender.sent.size() == 1);

  MessageTool unconfigured(others, nullptr);
  CHECK(unconfigured.run("message", args.dump(), w.ws(), {})
            .wait(scope)
            .content.find("no chat channel is configured") != std::string::npos);

  // Sent where the policy decided (guard.c++ decides on the canonical recipient too).
  sender.refuse = "";
  json number = {{"to", "whatsapp:+15551234567"}, {"text", "hi"}};
  CHECK(tool.run("message", number.dump(), w.ws(), {}).wait(scope).status ==
        ToolOutcome::Status::OK);
  REQUIRE(sender.sent.size() == 2);
  CHECK(sender.sent[1].channel == "whatsapp");
  CHECK(sender.sent[1].chatId == "15551234567");

  CHECK(tool.run("exec", R"({"command":"ls"})", w.ws(), {}).wait(scope).content == "ran exec");
  CHECK(others.ran == std::vector<std::string>{"exec"});
}

}  // namespace
}  // namespace chitin
