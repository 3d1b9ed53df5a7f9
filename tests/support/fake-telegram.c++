// SPDX-License-Identifier: Apache-2.0
// Test support: the fake Telegram Bot API and the SOCKS5 relay as child processes (see
// fake-telegram.h).
// Runs in: tests

#include "fake-telegram.h"

#include <curl/curl.h>
#include <doctest/doctest.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

extern char** environ;

namespace chitin::testing {

namespace {

using Clock = std::chrono::steady_clock;

std::string requireEnv(const char* name) {
  const char* value = getenv(name);
  INFO(name << " is not set: run this test through `meson test`");
  REQUIRE(value != nullptr);
  return value;
}

void waitForFile(const std::string& path, Child& child, const char* what) {
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!std::filesystem::exists(path)) {
    REQUIRE_MESSAGE(Clock::now() < deadline, what << " did not start");
    REQUIRE_MESSAGE(child.running(), what << " exited");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

}  // namespace

Child::Child(const std::vector<std::string>& argv) {
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  int rc = posix_spawn(&pid_, args[0], nullptr, nullptr, args.data(), environ);
  REQUIRE_MESSAGE(rc == 0, "posix_spawn " << argv[0] << ": " << strerror(rc));
}

Child::~Child() {
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
}

bool Child::running() { return waitpid(pid_, nullptr, WNOHANG) == 0; }

ScratchDir::ScratchDir(const std::string& prefix) {
  std::string pattern = "/tmp/" + prefix + "-XXXXXX";
  REQUIRE(mkdtemp(pattern.data()) != nullptr);
  path_ = pattern;
}

ScratchDir::~ScratchDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

FakeTelegram::FakeTelegram(const std::string& token, const std::string& username)
    : dir_("chitin-fake-telegram") {
  std::string portFile = dir_.path() + "/port";
  process_ = std::make_unique<Child>(std::vector<std::string>{
      requireEnv("CHITIN_PYTHON"), requireEnv("CHITIN_FAKE_TELEGRAM"), "--port", "0", "--port-file",
      portFile, "--token", token, "--username", username});
  waitForFile(portFile, *process_, "fake_telegram.py");
  std::ifstream(portFile) >> port_;
}

nlohmann::json FakeTelegram::control(const std::string& name, const nlohmann::json& body) {
  CURL* curl = curl_easy_init();
  REQUIRE(curl != nullptr);
  std::string url = root() + "/control/" + name, answer, payload;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
  if (!body.is_null()) {
    payload = body.dump();
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload.c_str());
  }
  CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  REQUIRE_MESSAGE(rc == CURLE_OK,
                  "fake_telegram control " << name << ": " << curl_easy_strerror(rc));
  REQUIRE_MESSAGE(status == 200, "fake_telegram control " << name << ": " << answer);
  return nlohmann::json::parse(answer);
}

std::vector<nlohmann::json> FakeTelegram::sent(const std::string& method) {
  std::vector<nlohmann::json> out;
  nlohmann::json all = control("sent");
  for (auto& s : all["sent"]) {
    if (method.empty() || s["method"] == method) out.push_back(s);
  }
  return out;
}

}  // namespace chitin::testing
