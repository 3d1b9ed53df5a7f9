// SPDX-License-Identifier: Apache-2.0
// The configured session reset policy (agent.session_reset: daily at a time of day, or after
// an idle spell): when a message arrives, is the session's old conversation due to be archived
// so the message starts a new one?
// Runs in: supervisor
//
// Pure functions over times passed in, so the timing is tested with a fake clock. The decision
// uses the gateway's local time zone for `daily_at` (what "04:00" means to the person who set
// it).

#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace chitin {

struct SessionResetPolicy {
  int dailyMinute = -1;      // minute of the day of the daily reset, -1 = no daily reset
  uint32_t idleMinutes = 0;  // 0 = no idle reset
  bool off() const { return dailyMinute < 0 && idleMinutes == 0; }
};

// "HH:MM" (00:00-23:59) as a minute of the day; nullopt if `text` is not that.
std::optional<int> parseTimeOfDay(const std::string& text);

// The policy from agent.session_reset's fields. Throws std::invalid_argument naming the field,
// the value and the expected form.
SessionResetPolicy sessionResetPolicy(const std::string& dailyAt, uint32_t idleMinutes);

// A transcript timestamp (RFC 3339 UTC, as the transcript writes them: "2026-01-02T03:04:05Z",
// fractional seconds allowed, years 1970-2200); nullopt if it is not one.
std::optional<std::chrono::system_clock::time_point> parseTimestamp(const std::string& ts);

// Why a session last active at `last` starts over for a message arriving at `now` ("" = it does
// not): "idle for 130 minutes (agent.session_reset.idle_minutes: 120)" or "daily reset at
// 04:00".
std::string resetDue(const SessionResetPolicy& policy, std::chrono::system_clock::time_point last,
                     std::chrono::system_clock::time_point now);

}  // namespace chitin
