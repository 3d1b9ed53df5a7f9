// SPDX-License-Identifier: Apache-2.0
// Slowing down failed gateway authentication: a connection that fails the handshake gets its
// answer late, the later the more its address has failed recently. Nothing else waits.
// Runs in: supervisor
//
// Loopback is not trusted by itself, so a local process guessing the token is what this slows
// down. What it must never do is keep the owner out: an earlier design locked an address out
// after N failures, so any local process could lock the owner's CLI and channel bridges out of
// their own gateway by failing on purpose (issue 8 §9). Now the token is always checked, a
// correct one always gets in at once, and only failing connections pay: the Nth failure within
// the window and every one after it waits 250 ms, doubling, up to the window's length. The clock
// is passed in so tests can move time.

#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>

namespace chitin::gateway {

class AuthLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  // Bounds the table: a flood of distinct addresses evicts the stalest entries instead of
  // growing without limit.
  static constexpr size_t MAX_TRACKED_ADDRESSES = 4096;
  // Failing connections held open while they wait for their answer, at most. Beyond that a
  // failure is answered at once: the sockets, not the guesses, are what is scarce (the token is
  // 256 random bits).
  static constexpr size_t MAX_HELD_CONNECTIONS = 256;
  static constexpr std::chrono::milliseconds FIRST_PENALTY{250};

  // `freeFailures`: failures within `window` that are answered at once (0 disables slowing).
  // `window` is also the longest penalty.
  AuthLimiter(uint32_t freeFailures, std::chrono::seconds window, Clock clock);

  // Records a failed handshake from `address` and returns how long its connection waits before
  // it is answered and closed (0: at once). A non-zero answer counts as one held connection
  // until release() is called for it.
  std::chrono::milliseconds recordFailure(const std::string& address);
  void release();
  // A successful authentication forgets the address's earlier failures.
  void recordSuccess(const std::string& address);

  size_t trackedAddresses() const { return entries_.size(); }
  size_t heldConnections() const { return held_; }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Entry {
    std::deque<TimePoint> failures;  // within the window, oldest first
    TimePoint lastSeen{};
  };

  void forgetOld(Entry& entry, TimePoint now) const;
  void makeRoom(TimePoint now);

  uint32_t freeFailures_;
  std::chrono::seconds window_;
  Clock clock_;
  std::unordered_map<std::string, Entry> entries_;
  size_t held_ = 0;
};

}  // namespace chitin::gateway
