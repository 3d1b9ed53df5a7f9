// SPDX-License-Identifier: Apache-2.0
// Rate limit on failed gateway authentication, per remote address.
// Runs in: supervisor

#include "auth-limiter.h"

#include <algorithm>

namespace chitin::gateway {

AuthLimiter::AuthLimiter(uint32_t failuresBeforeLockout, std::chrono::seconds lockout, Clock clock)
    : failuresBeforeLockout_(failuresBeforeLockout), lockout_(lockout), clock_(std::move(clock)) {}

void AuthLimiter::forgetOld(Entry& entry, TimePoint now) const {
  while (!entry.failures.empty() && entry.failures.front() + lockout_ <= now) {
    entry.failures.pop_front();
  }
}

uint32_t AuthLimiter::lockedFor(const std::string& address) {
  auto it = entries_.find(address);
  if (it == entries_.end()) return 0;
  TimePoint now = clock_();
  if (it->second.lockedUntil <= now) return 0;
  auto left = std::chrono::ceil<std::chrono::seconds>(it->second.lockedUntil - now);
  return static_cast<uint32_t>(std::max<int64_t>(left.count(), 1));
}

void AuthLimiter::recordFailure(const std::string& address) {
  if (failuresBeforeLockout_ == 0) return;
  TimePoint now = clock_();
  if (!entries_.count(address)) makeRoom(now);
  Entry& entry = entries_[address];
  entry.lastSeen = now;
  forgetOld(entry, now);
  entry.failures.push_back(now);
  if (entry.failures.size() >= failuresBeforeLockout_) {
    entry.lockedUntil = now + lockout_;
    // The lockout itself is the penalty; counting restarts when it ends.
    entry.failures.clear();
  }
}

void AuthLimiter::recordSuccess(const std::string& address) {
  auto it = entries_.find(address);
  // A success cannot happen while locked out (the token is not even checked), so dropping the
  // entry never shortens a lockout.
  if (it != entries_.end() && it->second.lockedUntil <= clock_()) entries_.erase(it);
}

void AuthLimiter::makeRoom(TimePoint now) {
  if (entries_.size() < MAX_TRACKED_ADDRESSES) return;
  for (auto it = entries_.begin(); it != entries_.end();) {
    forgetOld(it->second, now);
    if (it->second.failures.empty() && it->second.lockedUntil <= now) {
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  if (entries_.size() < MAX_TRACKED_ADDRESSES) return;
  // Evict the stalest address that is not locked out, so a flood of new addresses cannot
  // push a locked-out one out of the table and give it fresh attempts.
  auto stalest = entries_.end();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    bool locked = it->second.lockedUntil > now;
    if (locked) continue;
    if (stalest == entries_.end() || it->second.lastSeen < stalest->second.lastSeen) stalest = it;
  }
  if (stalest == entries_.end()) {
    stalest = std::min_element(entries_.begin(), entries_.end(), [](auto& a, auto& b) {
      return a.second.lockedUntil < b.second.lockedUntil;
    });
  }
  entries_.erase(stalest);
}

}  // namespace chitin::gateway
