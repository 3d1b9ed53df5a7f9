// SPDX-License-Identifier: Apache-2.0
// A channel account's options, read strictly (an unknown key or a bad value names itself), and
// the jittered reconnect backoff every platform uses.
// Runs in: worker (sandboxed)

#include <algorithm>
#include <cctype>
#include <charconv>

#include "platform.h"

namespace chitin::channel {

namespace {

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

}  // namespace

std::string Settings::take(const std::string& key, const std::string& fallback) {
  // Every key asked for is a known key, present or not: finish() lists them for the owner.
  used_[key] = true;
  auto it = options.find(key);
  return it == options.end() ? fallback : it->second;
}

int64_t Settings::takeInt(const std::string& key, int64_t fallback, int64_t min, int64_t max) {
  std::string text = take(key);
  if (text.empty()) return fallback;
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    throw ChannelError(kind + " option \"" + key + "\": expected a whole number from " +
                       std::to_string(min) + " to " + std::to_string(max) + ", got \"" + text +
                       "\"");
  }
  return value;
}

bool Settings::takeBool(const std::string& key, bool fallback) {
  std::string text = take(key);
  if (text.empty()) return fallback;
  std::string value = lower(text);
  if (value == "true" || value == "1" || value == "yes") return true;
  if (value == "false" || value == "0" || value == "no") return false;
  throw ChannelError(kind + " option \"" + key + "\": expected true or false, got \"" + text +
                     "\"");
}

void Settings::finish() const {
  for (auto& [key, value] : options) {
    if (used_.count(key) != 0) continue;
    std::string known;
    for (auto& [name, unused] : used_) known += (known.empty() ? "" : ", ") + name;
    throw ChannelError("unknown " + kind + " option \"" + key +
                       "\" (known: " + (known.empty() ? "none" : known) + ")");
  }
}

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
    : initial_(std::max(initial, std::chrono::milliseconds(1))),
      max_(std::max(max, initial_)),
      current_(initial_),
      random_(std::random_device()()) {}

std::chrono::milliseconds Backoff::next() {
  // Full jitter in the upper half: never less than half the nominal delay (a flapping platform
  // still gets room), never more than it.
  int64_t nominal = current_.count();
  std::uniform_int_distribution<int64_t> pick(nominal - nominal / 2, nominal);
  std::chrono::milliseconds delay(pick(random_));
  current_ = std::min(current_ * 2, max_);
  return delay;
}

void Backoff::reset() { current_ = initial_; }

}  // namespace chitin::channel
