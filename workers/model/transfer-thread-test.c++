// SPDX-License-Identifier: Apache-2.0
// TransferThread: jobs run one at a time on one kept thread; waiting and ending wait for them.

#include "transfer-thread.h"

#include <doctest/doctest.h>
#include <kj/exception.h>

#include <atomic>
#include <chrono>

namespace chitin::model {
namespace {

TEST_CASE("a transfer thread runs each job on the same thread, one after another") {
  TransferThread thread;
  std::thread::id first, second;
  thread.start([&]() { first = std::this_thread::get_id(); });
  thread.waitDone();
  thread.start([&]() { second = std::this_thread::get_id(); });
  thread.waitDone();
  CHECK(first != std::thread::id());
  CHECK(first == second);
  CHECK(first != std::this_thread::get_id());
}

TEST_CASE("waitDone waits for the job to return; a second job while one runs is refused") {
  TransferThread thread;
  std::atomic<bool> release{false}, returned{false};
  thread.start([&]() {
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    returned = true;
  });
  CHECK_THROWS_AS(thread.start([]() {}), kj::Exception);
  release = true;
  thread.waitDone();
  CHECK(returned.load());
  thread.waitDone();  // nothing running: at once
}

TEST_CASE("ending a transfer thread waits for its running job") {
  std::atomic<bool> returned{false};
  {
    TransferThread thread;
    thread.start([&]() {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      returned = true;
    });
  }
  CHECK(returned.load());
}

}  // namespace
}  // namespace chitin::model
