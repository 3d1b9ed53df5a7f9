// SPDX-License-Identifier: Apache-2.0
// Settings (strict options) and Backoff (bounds and jitter).
// Runs in: tests

#include <doctest/doctest.h>

#include <set>

#include "platform.h"

namespace chitin::channel {
namespace {

Settings withOptions(std::map<std::string, std::string> options) {
  Settings s;
  s.kind = "telegram";
  s.options = std::move(options);
  return s;
}

std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const ChannelError& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("settings: known keys are read, an unknown key is an error naming it") {
  Settings s = withOptions({{"apiRoot", "https://a.test"}, {"pollTimeout", "5"}, {"tpyo", "x"}});
  CHECK(s.take("apiRoot", "https://api.telegram.org") == "https://a.test");
  CHECK(s.take("missing", "fallback") == "fallback");
  CHECK(s.takeInt("pollTimeout", 50, 0, 50) == 5);
  CHECK(errorOf([&]() { s.finish(); }) ==
        "unknown telegram option \"tpyo\" (known: apiRoot, missing, pollTimeout)");
  Settings ok = withOptions({{"apiRoot", "x"}});
  ok.take("apiRoot");
  CHECK(errorOf([&]() { ok.finish(); }) == "");
  Settings none = withOptions({{"stray", "1"}});
  CHECK(errorOf([&]() { none.finish(); }) == "unknown telegram option \"stray\" (known: none)");
}

TEST_CASE("settings: numbers and booleans are checked, naming the key and what was expected") {
  Settings s = withOptions(
      {{"n", "12x"}, {"big", "51"}, {"neg", "-3"}, {"b", "maybe"}, {"yes", "YES"}, {"zero", "0"}});
  CHECK(errorOf([&]() { s.takeInt("n", 1, 0, 50); }) ==
        "telegram option \"n\": expected a whole number from 0 to 50, got \"12x\"");
  CHECK(errorOf([&]() { s.takeInt("big", 1, 0, 50); }).find("got \"51\"") != std::string::npos);
  CHECK(s.takeInt("neg", 0, -5, 5) == -3);
  CHECK(s.takeInt("absent", 7, 0, 50) == 7);
  CHECK(errorOf([&]() { s.takeBool("b", false); }) ==
        "telegram option \"b\": expected true or false, got \"maybe\"");
  CHECK(s.takeBool("yes", false));
  CHECK_FALSE(s.takeBool("zero", true));
  CHECK(s.takeBool("absent2", true));
}

TEST_CASE("backoff: doubles from initial to max, each delay jittered within [d/2, d]") {
  using std::chrono::milliseconds;
  Backoff b(milliseconds(100), milliseconds(1000));
  int64_t nominal = 100;
  for (int i = 0; i < 10; ++i) {
    auto d = b.next().count();
    CAPTURE(i);
    CHECK(d >= nominal / 2);
    CHECK(d <= nominal);
    nominal = std::min<int64_t>(nominal * 2, 1000);
  }
  b.reset();
  CHECK(b.next().count() <= 100);
  // Jitter: many draws at the cap are not all equal.
  std::set<int64_t> seen;
  Backoff capped(milliseconds(1000), milliseconds(1000));
  for (int i = 0; i < 50; ++i) seen.insert(capped.next().count());
  CHECK(seen.size() > 10);
  for (auto d : seen) CHECK((d >= 500 && d <= 1000));
}

}  // namespace
}  // namespace chitin::channel
