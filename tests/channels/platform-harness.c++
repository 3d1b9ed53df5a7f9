// SPDX-License-Identifier: Apache-2.0
// A channel platform run in-process under a test Host, driven by JSON lines: what the Python
// tests in this folder use to put a platform in front of a real server.
// Runs in: tests
//
// Usage: channel-platform-harness KIND (irc | email). Reads one JSON object on stdin first:
//   {"account", "credential", "stateDir", "maxAttachmentBytes", "options": {...}}
// then commands, one per line:
//   {"cmd":"send","id":N,"message":{"chatId","text","replyTo","threadId",
//                                   "attachments":[{"name","mimeType","data64"}]}}
//   {"cmd":"stop"}                (EOF on stdin also stops)
// and writes events, one per line:
//   {"event":"status","state","detail","identity"}
//   {"event":"deliver","message":{... Inbound ...,
//   "attachments":[{"name","mimeType","size","data64"}]}}
//   {"event":"sent","id":N,"ids":[...]}  or  {"event":"error","id":N,"what":"..."}
//   {"event":"factoryError","what":"..."}, {"event":"exit"}
// Sends run on the main thread (the outbound thread), one at a time, in order, as in a worker.

#include <openssl/evp.h>

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "email/email-platform.h"
#include "irc/irc-platform.h"
#include "platform.h"
#include "stream.h"

namespace chitin::channel {
namespace {

using nlohmann::json;

std::string base64(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string unbase64(const std::string& data) {
  std::string out(3 * (data.size() / 4) + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  if (n < 0) throw std::runtime_error("bad base64 in a command");
  size_t padding =
      data.size() >= 2 ? (data[data.size() - 1] == '=') + (data[data.size() - 2] == '=') : 0;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

const char* stateName(State s) {
  switch (s) {
    case State::STARTING:
      return "STARTING";
    case State::CONNECTED:
      return "CONNECTED";
    case State::RECONNECTING:
      return "RECONNECTING";
    case State::LOGIN_REQUIRED:
      return "LOGIN_REQUIRED";
    case State::FAILED:
      return "FAILED";
    case State::STOPPED:
      return "STOPPED";
  }
  return "?";
}

class TestHost : public Host {
 public:
  bool deliver(Inbound m) override {
    if (stopping()) throw Stopping{};
    json attachments = json::array();
    for (const Attachment& a : m.attachments) {
      attachments.push_back({{"name", a.name},
                             {"mimeType", a.mimeType},
                             {"size", a.size},
                             {"data64", base64(a.data)}});
    }
    emit({{"event", "deliver"},
          {"message",
           {{"chatId", m.chatId},
            {"group", m.group},
            {"senderId", m.senderId},
            {"senderName", m.senderName},
            {"messageId", m.messageId},
            {"text", m.text},
            {"replyTo", m.replyTo},
            {"threadId", m.threadId},
            {"mentioned", m.mentioned},
            {"timestampMs", m.timestampMs},
            {"attachments", attachments}}}});
    return true;
  }
  void status(State state, const std::string& detail, const std::string& identity) override {
    emit({{"event", "status"},
          {"state", stateName(state)},
          {"detail", detail},
          {"identity", identity}});
  }
  void login(const std::string& qr, const std::string& code) override {
    emit({{"event", "login"}, {"qr", qr}, {"code", code}});
  }
  bool sleepFor(std::chrono::milliseconds d) override {
    std::unique_lock<std::mutex> lock(mutex_);
    return !stopCv_.wait_for(lock, d, [&] { return stopping_; });
  }
  bool stopping() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopping_;
  }
  void stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    stopCv_.notify_all();
  }
  void emit(const json& event) {
    std::lock_guard<std::mutex> lock(outMutex_);
    std::cout << event.dump(-1, ' ', false, json::error_handler_t::replace) << std::endl;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable stopCv_;
  bool stopping_ = false;
  std::mutex outMutex_;
};

int harnessMain(const std::string& kind) {
  initNetworkGlobal();
  TestHost host;
  std::string first;
  if (!std::getline(std::cin, first)) return 2;
  json config = json::parse(first);
  Settings settings;
  settings.kind = kind;
  settings.account = config.value("account", "default");
  settings.credential = config.value("credential", "");
  settings.egressSocket = config.value("egressSocket", "");
  settings.stateDir = config.value("stateDir", "");
  settings.maxAttachmentBytes = config.value("maxAttachmentBytes", uint64_t{20} << 20);
  json options = config.value("options", json::object());
  for (auto& [key, value] : options.items()) {
    settings.options[key] = value.get<std::string>();
  }
  std::unique_ptr<Platform> platform;
  try {
    if (kind == "irc") {
      platform = irc::makeIrcPlatform(settings, host);
    } else if (kind == "email") {
      platform = email::makeEmailPlatform(settings, host);
    } else {
      throw ChannelError("unknown kind " + kind);
    }
  } catch (const ChannelError& e) {
    host.emit({{"event", "factoryError"}, {"what", e.what()}});
    return 1;
  }
  std::thread receiver([&] { platform->run(host); });

  std::string line;
  while (std::getline(std::cin, line)) {
    json command = json::parse(line);
    std::string cmd = command.value("cmd", "");
    if (cmd == "stop") break;
    if (cmd != "send") continue;
    json m = command["message"];
    Outbound out;
    out.chatId = m.value("chatId", "");
    out.text = m.value("text", "");
    out.replyTo = m.value("replyTo", "");
    out.threadId = m.value("threadId", "");
    json attachments = m.value("attachments", json::array());
    for (const json& a : attachments) {
      out.attachments.push_back(
          {a.value("name", ""), a.value("mimeType", ""), unbase64(a.value("data64", "")), 0});
      out.attachments.back().size = out.attachments.back().data.size();
    }
    try {
      host.emit({{"event", "sent"}, {"id", command.value("id", 0)}, {"ids", platform->send(out)}});
    } catch (const ChannelError& e) {
      host.emit({{"event", "error"}, {"id", command.value("id", 0)}, {"what", e.what()}});
    }
  }
  host.stop();
  platform->interrupt();
  receiver.join();
  host.emit({{"event", "exit"}});
  return 0;
}

}  // namespace
}  // namespace chitin::channel

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: channel-platform-harness irc|email\n";
    return 2;
  }
  return chitin::channel::harnessMain(argv[1]);
}
