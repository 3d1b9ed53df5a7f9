// SPDX-License-Identifier: Apache-2.0
// A platform fake (a Python server under tests/fakes/) run by a platform test, with its control
// API, and the platform's receive thread run as the framework runs it.
// Runs in: tests

#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "http-client.h"
#include "platform.h"
#include "test-host.h"
#include "test-process.h"

namespace chitin::channel::testing {

using Json = nlohmann::json;

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
