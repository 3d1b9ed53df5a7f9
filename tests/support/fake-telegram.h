// SPDX-License-Identifier: Apache-2.0
// Test support: tests/fakes/fake_telegram.py started on 127.0.0.1 and driven through its
// control API, stopped when the object goes.
// Runs in: tests

#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace chitin::testing {

// A child process (a Python fake), killed and reaped at the end.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv);
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  bool running();

 private:
  pid_t pid_ = -1;
};

// A private directory under /tmp, removed at the end.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& prefix);
  ~ScratchDir();
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class FakeTelegram {
 public:
  // Needs CHITIN_PYTHON and CHITIN_FAKE_TELEGRAM (meson sets them).
  FakeTelegram(const std::string& token, const std::string& username = "chitin_test_bot");

  int port() const { return port_; }
  std::string root() const { return "http://127.0.0.1:" + std::to_string(port_); }

  // POST (or GET without a body) /control/<name>; fails the test unless it answers 200.
  nlohmann::json control(const std::string& name, const nlohmann::json& body = nlohmann::json());
  nlohmann::json message(const nlohmann::json& m) { return control("message", m); }
  // What the bot sent, optionally only one method's calls.
  std::vector<nlohmann::json> sent(const std::string& method = "");

 private:
  ScratchDir dir_;
  std::unique_ptr<Child> process_;
  int port_ = 0;
};

}  // namespace chitin::testing
