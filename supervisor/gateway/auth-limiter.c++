// SPDX-License-Identifier: Apache-2.0
// Slowing down failed gateway authentication (see auth-limiter.h).
// Runs in: supervisor

#include "auth-limiter.h"

#include <algorithm>

namespace chitin::gateway {

AuthLimiter::AuthLimiter(uint32_t freeFailures, std::chrono::seconds window, Clock clock)
    : freeFailures_(freeFailures), window_(window), clock_(std::move(clock)) {}

void AuthLimiter::forgetOld(Entry& entry, TimePoint now) const {
  while (!entry.failures.empty() && entry.failures.front() + window_ <= now) {
    entry.failures.pop_front();
  }
}

std::chrono::milliseconds AuthLimiter::recordFailure(const std::string& address) {
  if (freeFailures_ == 0) return std::chrono::milliseconds(0);
  TimePoint now = clock_();
  if (!entries_.count(address)) makeRoom(now);
  Entry& entry = entries_[address];
  entry.lastSeen = now;
  forgetOld(entry, now);
  entry.failures.push_back(now);
  // The window bounds the deque too: past the cap the penalty no longer grows anyway.
  size_t cap = freeFailures_ + 32;
  while (entry.failures.size() > cap) entry.failures.pop_front();
  if (entry.failures.size() < freeFailures_ || held_ >= MAX_HELD_CONNECTIONS) {
    return std::chrono::milliseconds(0);
  }
  size_t doublings = std::min<size_t>(entry.failures.size() - freeFailures_, 30);
  auto penalty =
      std::min<std::chrono::milliseconds>(FIRST_PENALTY * (int64_t{1} << doublings), window_);
  ++held_;
  return penalty;
}

void AuthLimiter::release() {
  if (held_ > 0) --held_;
}

void AuthLimiter::recordSuccess(const std::string& address) { entries_.erase(address); }

void AuthLimiter::makeRoom(TimePoint now) {
  if (entries_.size() < MAX_TRACKED_ADDRESSES) return;
  for (auto it = entries_.begin(); it != entries_.end();) {
    forgetOld(it->second, now);
    it = it->second.failures.empty() ? entries_.erase(it) : std::next(it);
  }
  if (entries_.size() < MAX_TRACKED_ADDRESSES) return;
  auto stalest = std::min_element(entries_.begin(), entries_.end(), [](auto& a, auto& b) {
    return a.second.lastSeen < b.second.lastSeen;
  });
  if (stalest != entries_.end()) entries_.erase(stalest);
}

}  // namespace chitin::gateway
