// SPDX-License-Identifier: Apache-2.0
// A Host for platform tests: records deliveries, states, sleeps and login codes, and lets a
// test wait for them. Header-only; test code.
// Runs in: tests (unconfined).

#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <string>
#include <vector>

#include "platform.h"

namespace chitin::channel {

class TestHost final : public Host {
 public:
  // With `seen`, deliver() answers like the supervisor: false for a chat/message id already in
  // the set (which a test may share between "restarts"). Without it, every message is new.
  explicit TestHost(std::shared_ptr<std::set<std::string>> seen = nullptr)
      : seen_(std::move(seen)) {}

  // Runs inside deliver(), after the message is recorded and before it is answered; it may
  // throw (Stopping: the worker died before the answer reached the platform).
  std::function<void(const Inbound&)> beforeAnswer;

  bool deliver(Inbound message) override {
    // A slow supervisor, outside the lock so the test thread can watch meanwhile.
    if (deliverDelay.count() > 0) std::this_thread::sleep_for(deliverDelay);
    std::unique_lock lock(mutex_);
    if (stopping_) throw Stopping{};
    delivered_.push_back(message);
    changed_.notify_all();
    if (beforeAnswer) {
      lock.unlock();
      beforeAnswer(message);
      lock.lock();
    }
    return seen_ == nullptr || seen_->insert(message.chatId + "/" + message.messageId).second;
  }
  void status(State state, const std::string& detail, const std::string& identity) override {
    std::lock_guard lock(mutex_);
    states_.push_back(state);
    details_.push_back(detail);
    if (!identity.empty()) identity_ = identity;
    changed_.notify_all();
  }
  void login(const std::string& qr, const std::string& pairingCode) override {
    std::lock_guard lock(mutex_);
    logins_.push_back(qr.empty() ? "code:" + pairingCode : "qr:" + qr);
    changed_.notify_all();
  }
  bool sleepFor(std::chrono::milliseconds d) override {
    std::unique_lock lock(mutex_);
    sleeps_.push_back(d);
    auto scaled = std::chrono::milliseconds(static_cast<int64_t>(d.count() * sleepScale));
    return !changed_.wait_for(lock, scaled, [&] { return stopping_; });
  }
  bool stopping() const override {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  void stop() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    changed_.notify_all();
  }
  // Waits up to 10 s until `count` messages have arrived; returns all so far.
  std::vector<Inbound> waitFor(size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(10), [&] { return delivered_.size() >= count; });
    return delivered_;
  }
  // Waits up to 10 s until `state` has been reported `times` times in all.
  bool waitForState(State state, size_t times) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10), [&] {
      return static_cast<size_t>(std::count(states_.begin(), states_.end(), state)) >= times;
    });
  }
  std::vector<std::string> waitForLogins(size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, std::chrono::seconds(10), [&] { return logins_.size() >= count; });
    return logins_;
  }
  std::string lastDetail(State state) {
    std::lock_guard lock(mutex_);
    for (size_t i = states_.size(); i-- > 0;)
      if (states_[i] == state) return details_[i];
    return "";
  }
  std::string identity() {
    std::lock_guard lock(mutex_);
    return identity_;
  }
  // Waits up to 10 s until `state` has been reported with a detail containing `part`.
  bool waitForStatus(State state, const std::string& part) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::seconds(10),
                             [&] { return sawLocked(state, part); });
  }
  bool sawStatus(State state, const std::string& part) {
    std::lock_guard lock(mutex_);
    return sawLocked(state, part);
  }
  std::vector<std::string> details() {
    std::lock_guard lock(mutex_);
    return details_;
  }
  std::vector<Inbound> delivered() {
    std::lock_guard lock(mutex_);
    return delivered_;
  }
  size_t stateCount(State state) {
    std::lock_guard lock(mutex_);
    return static_cast<size_t>(std::count(states_.begin(), states_.end(), state));
  }
  std::vector<std::chrono::milliseconds> sleeps() {
    std::lock_guard lock(mutex_);
    return sleeps_;
  }
  // Polls `predicate` (called without the lock: it may ask a fake over HTTP) until it holds;
  // false after `timeout`.
  bool waitUntil(const std::function<bool()>& predicate,
                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!predicate()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::unique_lock lock(mutex_);
      changed_.wait_for(lock, std::chrono::milliseconds(20));
    }
    return true;
  }

  // Sleeps asked for are waited this fraction of their length (Discord's 1-5 s pauses need not
  // slow a suite); 1 where a test measures a real wait.
  double sleepScale = 1.0;
  // Each deliver() first takes this long: a supervisor slower than a platform's deadline.
  std::chrono::milliseconds deliverDelay{0};

 private:
  bool sawLocked(State state, const std::string& part) const {
    for (size_t i = 0; i < states_.size(); ++i) {
      if (states_[i] == state && details_[i].find(part) != std::string::npos) return true;
    }
    return false;
  }

  std::shared_ptr<std::set<std::string>> seen_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Inbound> delivered_;
  std::vector<State> states_;
  std::vector<std::string> details_;
  std::vector<std::string> logins_;
  std::vector<std::chrono::milliseconds> sleeps_;
  std::string identity_;
  bool stopping_ = false;
};

}  // namespace chitin::channel
