// SPDX-License-Identifier: Apache-2.0
// The broker test fixture: a Broker on its own loop thread with an audit log and a scripted
// resolver, endpoints opened and closed on that thread, and the EGRESS records it wrote.
// Runs in: tests

#pragma once

#include <unistd.h>

#include <chrono>
#include <memory>

#include "audit-log.h"
#include "broker-test-util.h"
#include "broker.h"

namespace chitin::egress::testing {

// A broker on its own loop thread, with an audit log and a scripted resolver.
struct Fixture {
  TempDir home;
  std::unique_ptr<audit::AuditLog> log = audit::AuditLog::open(home.path() + "/audit");
  LoopThread loop;
  ScriptedResolver resolver{loop.loop()};
  std::unique_ptr<Broker> broker;
  std::vector<std::unique_ptr<Endpoint>> endpoints;

  explicit Fixture(BrokerSettings settings = {}, std::string socketDir = "") {
    settings.socketDir = socketDir.empty() ? home.path() + "/egress" : socketDir;
    loop.run([&] { broker = std::make_unique<Broker>(loop.loop(), settings, resolver, *log); });
  }
  ~Fixture() {
    loop.run([&] {
      endpoints.clear();
      broker.reset();
    });
  }
  // The new endpoint's socket path.
  std::string open(const std::string& worker, std::vector<Rule> rules) {
    loop.run([&] { endpoints.push_back(broker->open(worker, std::move(rules))); });
    return endpoints.back()->socketPath();
  }
  void closeEndpoint(size_t i) {
    loop.run([&] { endpoints[i].reset(); });
  }
  size_t tunnels() {
    size_t n = 0;
    loop.run([&] { n = broker->tunnels(); });
    return n;
  }
  // The EGRESS records once there are at least `count` (fails after 5 s).
  std::vector<audit::Record> records(size_t count) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      auto found = egressRecords(home.path() + "/audit");
      if (found.size() >= count || std::chrono::steady_clock::now() > deadline) return found;
      usleep(10000);
    }
  }
};

inline Rule rule(const std::string& text, bool privateOk = false) {
  return parseRule(text, "test", privateOk);
}

inline std::string local(uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

}  // namespace chitin::egress::testing
