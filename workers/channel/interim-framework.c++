// SPDX-License-Identifier: Apache-2.0
// INTERIM (branch ircmail only): Settings, Backoff and format.h until helper chanworker's
// framework lands on main; deleted at that merge. Never merged into main.
// Runs in: worker (sandboxed)

#include <algorithm>
#include <thread>

#include "format.h"
#include "platform.h"

namespace chitin::channel {

std::string Settings::take(const std::string& key, const std::string& fallback) {
  used_[key] = true;
  auto it = options.find(key);
  return it == options.end() ? fallback : it->second;
}

int64_t Settings::takeInt(const std::string& key, int64_t fallback, int64_t min, int64_t max) {
  std::string v = take(key);
  if (v.empty()) return fallback;
  size_t end = 0;
  int64_t n = 0;
  try {
    n = std::stoll(v, &end);
  } catch (...) {
    end = 0;
  }
  if (end != v.size() || n < min || n > max) {
    throw ChannelError("option '" + key + "': expected a whole number in [" + std::to_string(min) +
                       ", " + std::to_string(max) + "]");
  }
  return n;
}

bool Settings::takeBool(const std::string& key, bool fallback) {
  std::string v = take(key);
  if (v.empty()) return fallback;
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  throw ChannelError("option '" + key + "': expected true or false");
}

void Settings::finish() const {
  for (const auto& [key, value] : options) {
    if (!used_.count(key)) throw ChannelError("unknown option '" + key + "'");
  }
}

Backoff::Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max)
    : initial_(initial), max_(max), current_(initial), random_(std::random_device()()) {}

std::chrono::milliseconds Backoff::next() {
  auto d = current_;
  current_ = std::min(max_, current_ * 2);
  std::uniform_int_distribution<int64_t> jitter(d.count() / 2, d.count());
  return std::chrono::milliseconds(jitter(random_));
}

void Backoff::reset() { current_ = initial_; }

std::string convertMarkdown(std::string_view markdown, Format) {
  std::string out;
  for (char c : markdown) {
    if (c != '*' && c != '`') out += c;
  }
  return out;
}

std::vector<std::string> chunkText(std::string_view text, size_t limit, Unit) {
  std::vector<std::string> out;
  while (text.size() > limit) {
    size_t cut = limit;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    size_t space = text.substr(0, cut).rfind(' ');
    if (space != std::string_view::npos && space > limit / 2) cut = space + 1;
    out.emplace_back(text.substr(0, cut));
    text.remove_prefix(cut);
  }
  if (!text.empty()) out.emplace_back(text);
  return out;
}

}  // namespace chitin::channel
