// SPDX-License-Identifier: Apache-2.0
// Integration test: the real Gateway on port 0 of a real uv loop, with the scripted fake
// service, driven by an independent stdlib-only Python WebSocket client
// (gateway-test-client.py), then torn down with lws' two-step teardown and an empty loop.
// Runs in: supervisor (tests)

#include "gateway.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <uv.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "chitin-build-config.h"
#include "fake-agent-service.h"

extern char** environ;

namespace chitin::gateway {
namespace {

constexpr uint32_t MAX_FRAME = 64 * 1024;
constexpr uint32_t MAX_CONNECTIONS = 12;

pid_t spawnClient(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  REQUIRE_MESSAGE(rc == 0, "posix_spawn ", args[0], ": ", strerror(rc));
  return pid;
}

struct Watch {
  Gateway* gateway;
  FakeAgentService* service;
  pid_t child;
  int status = -1;
  std::chrono::steady_clock::time_point deadline;
  std::chrono::steady_clock::time_point exitedAt{};
  uint32_t connectionsAfterClient = 0;
  bool timedOut = false;
};

GatewayOptions testOptions() {
  GatewayOptions options;
  options.port = 0;
  options.token = "integration-test-token-0123456789";
  options.webRoot = std::string(CHITIN_SOURCE_ROOT) + "/web";
  options.maxFrameBytes = MAX_FRAME;
  options.maxConnections = MAX_CONNECTIONS;
  options.authFailuresBeforeLockout = 5;
  options.lockoutSeconds = 60;
  options.version = "test";
  return options;
}

TEST_CASE("gateway: the protocol end to end against an independent Python client") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  FakeAgentService service(&loop, std::chrono::milliseconds(20));
  GatewayOptions options = testOptions();
  Gateway gateway(&loop, options, service);
  gateway.start();
  REQUIRE(gateway.port() != 0);

  Watch watch{
      &gateway, &service,
      spawnClient({"/usr/bin/python3",
                   std::string(CHITIN_SOURCE_ROOT) + "/supervisor/gateway/gateway-test-client.py",
                   std::to_string(gateway.port()), options.token, std::to_string(MAX_FRAME),
                   std::to_string(MAX_CONNECTIONS)})};
  watch.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(45);

  uv_timer_t poll;
  uv_timer_init(&loop, &poll);
  poll.data = &watch;
  uv_timer_start(
      &poll,
      [](uv_timer_t* timer) {
        auto& w = *static_cast<Watch*>(timer->data);
        auto now = std::chrono::steady_clock::now();
        if (w.status == -1) {
          int status;
          if (waitpid(w.child, &status, WNOHANG) == w.child) {
            w.status = status;
            w.exitedAt = now;
          } else if (now > w.deadline) {
            w.timedOut = true;
            kill(w.child, SIGKILL);
            waitpid(w.child, &w.status, 0);
            w.exitedAt = now;
          }
          return;
        }
        // The client closed everything; give the server a moment to see the last closes.
        if (w.gateway->connectionCount() != 0 && now - w.exitedAt < std::chrono::seconds(2)) {
          return;
        }
        w.connectionsAfterClient = w.gateway->connectionCount();
        w.gateway->stop();
        w.service->close();
        uv_close(reinterpret_cast<uv_handle_t*>(timer), nullptr);
      },
      20, 20);

  uv_run(&loop, UV_RUN_DEFAULT);
  gateway.finishStop();
  CHECK(uv_loop_close(&loop) == 0);

  CHECK_FALSE(watch.timedOut);
  REQUIRE(WIFEXITED(watch.status));
  CHECK_MESSAGE(WEXITSTATUS(watch.status) == 0, "the Python client reported a failure (above)");
  CHECK(watch.connectionsAfterClient == 0);
  CHECK(service.runsStarted() >= 4);
  CHECK(service.runsAborted() == 1);
}

TEST_CASE("gateway: a port already in use is an error naming the address") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  FakeAgentService service(&loop, std::chrono::milliseconds(20));
  Gateway first(&loop, testOptions(), service);
  first.start();

  GatewayOptions clash = testOptions();
  clash.port = first.port();
  Gateway second(&loop, clash, service);
  try {
    second.start();
    FAIL("a second gateway bound the same port");
  } catch (const std::runtime_error& e) {
    std::string what = e.what();
    CHECK(what.find("127.0.0.1:" + std::to_string(first.port())) != std::string::npos);
    CHECK(what.find("Address already in use") != std::string::npos);
  }
  second.stop();
  first.stop();
  uv_run(&loop, UV_RUN_DEFAULT);
  second.finishStop();
  first.finishStop();
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("gateway: refuses to start without a token") {
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  FakeAgentService service(&loop, std::chrono::milliseconds(20));
  GatewayOptions options = testOptions();
  options.token.clear();
  Gateway gateway(&loop, options, service);
  CHECK_THROWS_WITH_AS(gateway.start(), "gateway token is empty", std::runtime_error);
  gateway.stop();
  uv_run(&loop, UV_RUN_DEFAULT);
  gateway.finishStop();
  CHECK(uv_loop_close(&loop) == 0);
}

}  // namespace
}  // namespace chitin::gateway
