// SPDX-License-Identifier: Apache-2.0
// Session reset timing (see session-reset.h).
// Runs in: supervisor

#include "session-reset.h"

#include <cstdio>
#include <ctime>
#include <stdexcept>

namespace chitin {

std::optional<int> parseTimeOfDay(const std::string& text) {
  if (text.size() != 5 || text[2] != ':') return std::nullopt;
  for (size_t i : {0, 1, 3, 4}) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
  }
  int hours = (text[0] - '0') * 10 + (text[1] - '0');
  int minutes = (text[3] - '0') * 10 + (text[4] - '0');
  if (hours > 23 || minutes > 59) return std::nullopt;
  return hours * 60 + minutes;
}

SessionResetPolicy sessionResetPolicy(const std::string& dailyAt, uint32_t idleMinutes) {
  SessionResetPolicy policy;
  if (!dailyAt.empty()) {
    auto minute = parseTimeOfDay(dailyAt);
    if (!minute) {
      throw std::invalid_argument(
          "agent.session_reset.daily_at: expected \"HH:MM\" (00:00-23:59), got \"" + dailyAt +
          "\"");
    }
    policy.dailyMinute = *minute;
  }
  if (idleMinutes > 366u * 24 * 60) {
    throw std::invalid_argument(
        "agent.session_reset.idle_minutes: expected at most 527040 (a year), got " +
        std::to_string(idleMinutes));
  }
  policy.idleMinutes = idleMinutes;
  return policy;
}

std::optional<std::chrono::system_clock::time_point> parseTimestamp(const std::string& ts) {
  struct tm tm = {};
  int consumed = 0;
  if (sscanf(ts.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
             &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6 ||
      consumed != 19) {
    return std::nullopt;
  }
  size_t i = 19;
  if (i < ts.size() && ts[i] == '.') {
    ++i;
    while (i < ts.size() && ts[i] >= '0' && ts[i] <= '9') ++i;
  }
  if (i + 1 != ts.size() || ts[i] != 'Z') return std::nullopt;
  // system_clock counts nanoseconds in 64 bits: years past 2262 would overflow it.
  if (tm.tm_year < 1970 || tm.tm_year > 2200 || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
      tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string resetDue(const SessionResetPolicy& policy, std::chrono::system_clock::time_point last,
                     std::chrono::system_clock::time_point now) {
  using std::chrono::minutes;
  if (policy.idleMinutes > 0 && now - last > minutes(policy.idleMinutes)) {
    auto idle = std::chrono::duration_cast<minutes>(now - last).count();
    return "idle for " + std::to_string(idle) +
           " minutes (agent.session_reset.idle_minutes: " + std::to_string(policy.idleMinutes) +
           ")";
  }
  if (policy.dailyMinute >= 0) {
    // The most recent daily reset time at or before `now`, in local time (mktime settles the
    // day's length across a DST change).
    time_t nowT = std::chrono::system_clock::to_time_t(now);
    struct tm local;
    localtime_r(&nowT, &local);
    local.tm_hour = policy.dailyMinute / 60;
    local.tm_min = policy.dailyMinute % 60;
    local.tm_sec = 0;
    local.tm_isdst = -1;
    time_t boundary = mktime(&local);
    if (boundary > nowT) {
      localtime_r(&nowT, &local);
      local.tm_mday -= 1;
      local.tm_hour = policy.dailyMinute / 60;
      local.tm_min = policy.dailyMinute % 60;
      local.tm_sec = 0;
      local.tm_isdst = -1;
      boundary = mktime(&local);
    }
    if (last < std::chrono::system_clock::from_time_t(boundary)) {
      char at[32];  // room for any int, though the config allows only 00:00-23:59
      snprintf(at, sizeof(at), "%02d:%02d", policy.dailyMinute / 60, policy.dailyMinute % 60);
      return std::string("daily reset at ") + at;
    }
  }
  return "";
}

}  // namespace chitin
