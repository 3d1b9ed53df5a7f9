// SPDX-License-Identifier: Apache-2.0
// Test helper: runs cli/testdata/fake_gateway.py on 127.0.0.1 for one test and stops it.
// Runs in: test harness
//
// meson passes the interpreter and the script as CHITIN_TEST_PYTHON / CHITIN_FAKE_GATEWAY.

#pragma once

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace chitin::cli::testing {

// What a command returned and printed.
struct Run {
  int code;
  std::string out, err;
};

// No byte that a terminal acts on: ESC, BEL, any other C0 but newline, DEL, a UTF-8 C1 control,
// bidi controls, zero-width characters.
inline void checkInert(const std::string& text) {
  for (unsigned char c : text) CHECK_MESSAGE(((c >= 0x20 || c == '\n') && c != 0x7f), text);
  for (const char* raw : {"\xc2\x9b", "\u202e", "\u200b"})
    CHECK_MESSAGE(text.find(raw) == std::string::npos, text);
}

class FakeGateway {
 public:
  explicit FakeGateway(std::vector<std::string> extraArgs = {}) {
    const char* python = getenv("CHITIN_TEST_PYTHON");
    const char* script = getenv("CHITIN_FAKE_GATEWAY");
    if (python == nullptr || script == nullptr)
      throw std::runtime_error(
          "CHITIN_TEST_PYTHON and CHITIN_FAKE_GATEWAY must be set (run via meson test)");
    char dirTemplate[] = "/tmp/chitin-cli-test-XXXXXX";
    if (mkdtemp(dirTemplate) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir = dirTemplate;
    logPath = dir + "/requests.jsonl";
    std::string portFile = dir + "/port";
    std::vector<std::string> args = {python, script, "--port-file", portFile, "--log", logPath};
    args.insert(args.end(), extraArgs.begin(), extraArgs.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, python, nullptr, nullptr, argv.data(), environ) != 0)
      throw std::runtime_error("cannot start the fake gateway");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      std::ifstream in(portFile);
      if (in >> port) return;
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("the fake gateway exited at start-up");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    throw std::runtime_error("the fake gateway did not write its port within 10 s");
  }

  ~FakeGateway() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::string cmd = "rm -rf '" + dir + "'";
    [[maybe_unused]] int rc = system(cmd.c_str());
  }

  std::string url() const { return "ws://127.0.0.1:" + std::to_string(port); }

  // Everything the fake received (requests, closes, violations), one JSON object a line.
  std::string log() const {
    std::ifstream in(logPath);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  // Waits until the log contains `needle` (the fake writes before it answers).
  bool waitForLog(const std::string& needle, int timeoutMs = 5000) const {
    for (int waited = 0; waited < timeoutMs; waited += 5) {
      if (log().find(needle) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  std::string dir, logPath;
  int port = 0;

 private:
  pid_t pid_ = -1;
};

// A TCP port on 127.0.0.1 with nothing listening (bound, then released).
inline int closedPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    throw std::runtime_error("cannot bind a probe socket on 127.0.0.1");
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace chitin::cli::testing
