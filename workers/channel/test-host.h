// SPDX-License-Identifier: Apache-2.0
// What the platform tests run a Platform with: a Host that records deliveries and states, a
// platform fake with its control API, and the receive thread.
// Runs in: tests

#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "http-client.h"
#include "platform.h"
#include "test-process.h"

namespace chitin::channel::testing {

using Json = nlohmann::json;

// Records what the platform hands over. Like the supervisor, deliver() answers false for a
// message id it has already seen; `raw` keeps every call, so a test can tell whether the
// platform itself delivered something twice.
class TestHost : public Host {
 public:
  bool deliver(Inbound message) override {
    // A slow supervisor, outside the lock so the test thread can watch meanwhile.
    if (deliverDelay.count() > 0) std::this_thread::sleep_for(deliverDelay);
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    if (stop_) throw Stopping{};
    raw.push_back(message);
    bool fresh = true;
    for (const auto& seen : delivered) {
      fresh = fresh && !(seen.chatId == message.chatId && seen.messageId == message.messageId);
    }
    if (fresh) delivered.push_back(std::move(message));
    changed_.notify_all();
    return fresh;
  }
  void status(State state, const std::string& detail, const std::string& identity) override {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    states.push_back({state, detail});
    if (std::getenv("CHITIN_TEST_VERBOSE"))
      fprintf(stderr, "status %d %s\n", int(state), detail.c_str());
    if (!identity.empty()) this->identity = identity;
    changed_.notify_all();
  }
  void login(const std::string&, const std::string&) override {}
  bool sleepFor(std::chrono::milliseconds d) override {
    std::unique_lock<std::recursive_mutex> lock(mutex_);
    sleeps.push_back(d);
    // Scaled, so that Discord's 1-5 s pauses do not slow the suite; the rate-limit tests keep
    // the real time (scale 1) and measure it.
    auto scaled = std::chrono::milliseconds(static_cast<int64_t>(d.count() * sleepScale));
    changed_.wait_for(lock, scaled, [this] { return stop_.load(); });
    return !stop_;
  }
  bool stopping() const override { return stop_.load(); }

  void stop() {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    stop_ = true;
    changed_.notify_all();
  }

  // Waits until `predicate` (called under the lock) holds; false after `timeout`.
  bool waitUntil(const std::function<bool()>& predicate,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock<std::recursive_mutex> lock(mutex_);
    return changed_.wait_for(lock, timeout, predicate);
  }
  bool reached(State state) {
    return waitUntil([&] {
      for (const auto& s : states)
        if (s.first == state) return true;
      return false;
    });
  }
  size_t count(State state) {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    size_t n = 0;
    for (const auto& s : states) n += s.first == state;
    return n;
  }
  std::string lastDetail(State state) {
    std::lock_guard<std::recursive_mutex> lock(mutex_);
    for (auto it = states.rbegin(); it != states.rend(); ++it)
      if (it->first == state) return it->second;
    return "";
  }

  std::vector<Inbound> delivered, raw;
  std::vector<std::pair<State, std::string>> states;
  std::vector<std::chrono::milliseconds> sleeps;
  std::string identity;
  double sleepScale = 1.0;
  std::chrono::milliseconds deliverDelay{0};

 private:
  // Recursive: waitUntil()'s predicate may call count() and the like, which lock too.
  std::recursive_mutex mutex_;
  std::condition_variable_any changed_;
  std::atomic<bool> stop_{false};
};

// A platform fake (tests/fakes/fake_*.py) on a free port, with its /_control API.
class Fake {
 public:
  Fake(const char* scriptEnv, std::vector<std::string> args)
      : dir_(makeTempDir()), process_(argv(scriptEnv, dir_, std::move(args))) {
    port_ = std::stoi(process_.waitForFile(dir_ + "/port"));
  }
  ~Fake() { std::filesystem::remove_all(dir_); }

  std::string base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }

  Json control(const std::string& action, const Json& body = Json::object()) {
    HttpClient http("");
    HttpRequest request;
    request.method = "POST";
    request.url = base() + "/_control/" + action;
    request.headers = {"Content-Type: application/json"};
    request.body = body.dump();
    HttpResponse response = http.perform(request);
    REQUIRE_MESSAGE(response.status == 200, action << ": " << response.body);
    return Json::parse(response.body);
  }
  // The fake's log records of one kind.
  std::vector<Json> log(const std::string& kind) {
    std::vector<Json> out;
    Json state = control("state");  // kept: a range-for over a temporary's member dangles
    for (const auto& r : state["log"])
      if (r["kind"] == kind) out.push_back(r);
    return out;
  }

 private:
  static std::vector<std::string> argv(const char* scriptEnv, const std::string& dir,
                                       std::vector<std::string> args) {
    std::vector<std::string> out = {requireEnv("CHITIN_PYTHON"),
                                    requireEnv(scriptEnv),
                                    "--port",
                                    "0",
                                    "--port-file",
                                    dir + "/port"};
    out.insert(out.end(), args.begin(), args.end());
    return out;
  }
  std::string dir_;
  TestProcess process_;
  int port_ = 0;
};

// Platform::run on its own thread, as the framework runs it; stopped and joined at scope end.
class Running {
 public:
  Running(Platform& platform, TestHost& host) : platform_(platform), host_(host) {
    thread_ = std::thread([this] {
      try {
        platform_.run(host_);
      } catch (const Stopping&) {
      }
      returned = true;
    });
  }
  ~Running() {
    host_.stop();
    platform_.interrupt();
    thread_.join();
  }
  std::atomic<bool> returned{false};

 private:
  Platform& platform_;
  TestHost& host_;
  std::thread thread_;
};

}  // namespace chitin::channel::testing
