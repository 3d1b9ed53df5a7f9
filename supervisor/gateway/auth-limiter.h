// SPDX-License-Identifier: Apache-2.0
// Rate limit on failed gateway authentication, per remote address: after N failures within the
// lockout window the address is locked out for the window's length.
// Runs in: supervisor
//
// Loopback is not trusted by itself, so a local process guessing the token is exactly what this
// slows down. The clock is passed in so tests can move time.

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

  // `failuresBeforeLockout` == 0 disables the lockout.
  AuthLimiter(uint32_t failuresBeforeLockout, std::chrono::seconds lockout, Clock clock);

  // Seconds until `address` may try again (rounded up), or 0 if it is not locked out.
  uint32_t lockedFor(const std::string& address);
  void recordFailure(const std::string& address);
  // A successful authentication forgets the address's earlier failures.
  void recordSuccess(const std::string& address);

  size_t trackedAddresses() const { return entries_.size(); }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Entry {
    std::deque<TimePoint> failures;  // within the window, oldest first
    TimePoint lockedUntil{};
    TimePoint lastSeen{};
  };

  void forgetOld(Entry& entry, TimePoint now) const;
  void makeRoom(TimePoint now);

  uint32_t failuresBeforeLockout_;
  std::chrono::seconds lockout_;
  Clock clock_;
  std::unordered_map<std::string, Entry> entries_;
};

}  // namespace chitin::gateway
