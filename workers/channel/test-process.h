// SPDX-License-Identifier: Apache-2.0
// A test server process (a Python fake) started by a test and stopped with it, and the test's
// scratch directory.
// Runs in: tests

#pragma once

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace chitin::channel::testing {

inline std::string requireEnv(const char* name) {
  const char* value = std::getenv(name);
  REQUIRE_MESSAGE(value != nullptr, std::string(name)
                                        << " is not set (run the test through meson)");
  return value;
}

inline std::string makeTempDir() {
  char pattern[] = "/tmp/chitin-channel-test-XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  return pattern;
}

// Runs `argv` with stdout on a pipe; firstLine() reads what it prints on startup. The
// destructor ends it (SIGTERM, then SIGKILL after two seconds) and removes `dir` if given.
class TestProcess {
 public:
  explicit TestProcess(const std::vector<std::string>& argv) {
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      ::close(out[0]);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    ::close(out[1]);
    stdout_ = out[0];
  }
  ~TestProcess() {
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(stdout_);
  }
  TestProcess(const TestProcess&) = delete;
  TestProcess& operator=(const TestProcess&) = delete;

  std::string firstLine() {
    std::string line;
    char c;
    while (::read(stdout_, &c, 1) == 1 && c != '\n') line.push_back(c);
    REQUIRE_MESSAGE(!line.empty(), "the test server printed nothing (did it start?)");
    return line;
  }

  // Waits for a file the process writes once it listens (a fake's --port-file).
  std::string waitForFile(const std::string& path) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (!std::filesystem::exists(path)) {
      REQUIRE_MESSAGE(std::chrono::steady_clock::now() < deadline, path << " never appeared");
      REQUIRE_MESSAGE(::waitpid(pid_, nullptr, WNOHANG) == 0, "the test server exited early");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::ifstream in(path);
    std::string text;
    std::getline(in, text);
    return text;
  }

 private:
  pid_t pid_ = -1;
  int stdout_ = -1;
};

}  // namespace chitin::channel::testing
