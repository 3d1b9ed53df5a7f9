// SPDX-License-Identifier: Apache-2.0
// Session reset timing with a fake clock: daily and idle resets, their edges, bad config.
// Runs in: test

#include "session-reset.h"

#include <doctest/doctest.h>

#include <cstdlib>
#include <ctime>

namespace chitin {
namespace {

std::chrono::system_clock::time_point at(const std::string& ts) {
  auto t = parseTimestamp(ts);
  REQUIRE(t.has_value());
  return *t;
}

// The daily time is local: pin the zone for the test.
struct Zone {
  explicit Zone(const char* tz) {
    const char* old = getenv("TZ");
    saved = old ? old : "";
    had = old != nullptr;
    setenv("TZ", tz, 1);
    tzset();
  }
  ~Zone() {
    if (had)
      setenv("TZ", saved.c_str(), 1);
    else
      unsetenv("TZ");
    tzset();
  }
  std::string saved;
  bool had;
};

TEST_CASE("session reset: config values") {
  CHECK(parseTimeOfDay("04:00") == 240);
  CHECK(parseTimeOfDay("23:59") == 1439);
  CHECK_FALSE(parseTimeOfDay("24:00"));
  CHECK_FALSE(parseTimeOfDay("4:00"));
  CHECK_FALSE(parseTimeOfDay("04:60"));
  CHECK_FALSE(parseTimeOfDay("0a:00"));
  CHECK(sessionResetPolicy("", 0).off());
  CHECK(sessionResetPolicy("04:00", 0).dailyMinute == 240);
  CHECK_THROWS_WITH(sessionResetPolicy("4am", 0),
                    "agent.session_reset.daily_at: expected \"HH:MM\" (00:00-23:59), got \"4am\"");
  CHECK_THROWS(sessionResetPolicy("", 600000));
}

TEST_CASE("session reset: transcript timestamps") {
  CHECK(parseTimestamp("2026-12-02T12:24:59.123Z").has_value());
  CHECK(parseTimestamp("2026-12-02T12:24:59Z").has_value());
  CHECK(std::chrono::system_clock::to_time_t(at("1970-01-02T00:00:00Z")) == 86400);
  CHECK_FALSE(parseTimestamp("2026-12-02 12:24:59Z"));
  CHECK_FALSE(parseTimestamp("2026-12-02T12:24:59+01:00"));
  CHECK_FALSE(parseTimestamp("2026-13-02T12:24:59Z"));
  CHECK_FALSE(parseTimestamp(""));
  CHECK_FALSE(parseTimestamp("2999-01-01T00:00:00Z"));  // past what the clock can count
  CHECK_FALSE(parseTimestamp("1900-01-01T00:00:00Z"));
}

TEST_CASE("session reset: off resets nothing") {
  CHECK(resetDue({}, at("2020-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z")) == "");
}

TEST_CASE("session reset: idle") {
  SessionResetPolicy p = sessionResetPolicy("", 120);
  CHECK(resetDue(p, at("2026-03-01T10:00:00Z"), at("2026-03-01T12:00:00Z")) == "");
  CHECK(resetDue(p, at("2026-03-01T10:00:00Z"), at("2026-03-01T12:10:00Z")) ==
        "idle for 130 minutes (agent.session_reset.idle_minutes: 120)");
}

TEST_CASE("session reset: daily at 04:00 local time") {
  Zone utc("UTC");
  SessionResetPolicy p = sessionResetPolicy("04:00", 0);
  // Active before today's 04:00, message after it: reset.
  CHECK(resetDue(p, at("2026-03-01T03:59:00Z"), at("2026-03-01T04:01:00Z")) ==
        "daily reset at 04:00");
  // Both after today's 04:00: no reset.
  CHECK(resetDue(p, at("2026-03-01T04:00:00Z"), at("2026-03-01T23:00:00Z")) == "");
  // Before 04:00 the boundary is yesterday's: last active yesterday evening, no reset ...
  CHECK(resetDue(p, at("2026-03-01T22:00:00Z"), at("2026-03-02T03:00:00Z")) == "");
  // ... but last active before yesterday's 04:00: reset.
  CHECK(resetDue(p, at("2026-03-01T03:00:00Z"), at("2026-03-02T03:00:00Z")) ==
        "daily reset at 04:00");
}

TEST_CASE("session reset: the daily time follows the local zone") {
  Zone berlin("CET-1");  // UTC+1, no DST rules: 04:00 local is 03:00 UTC
  SessionResetPolicy p = sessionResetPolicy("04:00", 0);
  CHECK(resetDue(p, at("2026-03-01T02:30:00Z"), at("2026-03-01T03:30:00Z")) ==
        "daily reset at 04:00");
  CHECK(resetDue(p, at("2026-03-01T03:10:00Z"), at("2026-03-01T03:30:00Z")) == "");
}

TEST_CASE("session reset: idle and daily together, the first that applies") {
  Zone utc("UTC");
  SessionResetPolicy p = sessionResetPolicy("04:00", 60);
  CHECK(resetDue(p, at("2026-03-01T05:00:00Z"), at("2026-03-01T07:00:00Z")).rfind("idle", 0) == 0);
  CHECK(resetDue(p, at("2026-03-01T03:50:00Z"), at("2026-03-01T04:10:00Z")) ==
        "daily reset at 04:00");
}

}  // namespace
}  // namespace chitin
