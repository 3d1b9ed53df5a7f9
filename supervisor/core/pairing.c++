// SPDX-License-Identifier: Apache-2.0
// Pending pairing codes (see pairing.h).
// Runs in: supervisor

#include "pairing.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "home.h"

namespace chitin {

std::string randomCode(size_t length) {
  static constexpr char ALPHABET[] = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";
  std::string code;
  for (size_t i = 0; i < length; ++i) code += ALPHABET[randombytes_uniform(sizeof(ALPHABET) - 1)];
  return code;
}

std::string upperCase(std::string code) {
  for (char& c : code) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return code;
}

int64_t unixNow() { return static_cast<int64_t>(time(nullptr)); }

std::string rfc3339(int64_t unixSeconds) {
  time_t t = static_cast<time_t>(unixSeconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

PairingStore::PairingStore(std::string path, std::function<int64_t()> now)
    : path_(std::move(path)), now_(std::move(now)) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  std::ifstream in(path_);
  if (!in) {
    if (errno == ENOENT) return;
    throw std::runtime_error("cannot read " + path_ + ": " + strerror(errno));
  }
  std::stringstream text;
  text << in.rdbuf();
  auto doc = nlohmann::json::parse(text.str(), nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.value("pending", nlohmann::json()).is_array())
    throw std::runtime_error(path_ + ": expected {\"pending\": [...]} (delete the file to reset)");
  for (const auto& p : doc["pending"]) {
    if (!p.is_object() || !p.value("code", nlohmann::json()).is_string() ||
        !p.value("channel", nlohmann::json()).is_string() ||
        !p.value("sender", nlohmann::json()).is_string() ||
        !p.value("requestedAt", nlohmann::json()).is_number_integer() ||
        !p.value("expiresAt", nlohmann::json()).is_number_integer())
      throw std::runtime_error(path_ +
                               ": a pending entry lacks code/channel/sender/requestedAt/"
                               "expiresAt (delete the file to reset)");
    pending_.push_back({p["code"], p["channel"], p["sender"], p["requestedAt"], p["expiresAt"]});
  }
}

void PairingStore::prune() {
  int64_t now = now_();
  size_t before = pending_.size();
  std::erase_if(pending_, [now](const PairingRequest& r) { return r.expiresAt <= now; });
  if (pending_.size() != before) save();
}

void PairingStore::save() {
  nlohmann::json doc = {{"pending", nlohmann::json::array()}};
  for (const auto& r : pending_) {
    doc["pending"].push_back({{"code", r.code},
                              {"channel", r.channel},
                              {"sender", r.sender},
                              {"requestedAt", r.requestedAt},
                              {"expiresAt", r.expiresAt}});
  }
  writeFileAtomically(path_, doc.dump(2) + "\n", 0600);
}

std::optional<PairingRequest> PairingStore::request(const std::string& channel,
                                                    const std::string& sender) {
  prune();
  size_t onChannel = 0;
  for (const auto& r : pending_) {
    if (r.channel != channel) continue;
    if (r.sender == sender) return r;
    ++onChannel;
  }
  if (onChannel >= MAX_PENDING_PER_CHANNEL) return std::nullopt;
  PairingRequest r{randomCode(CODE_LENGTH), channel, sender, now_(),
                   now_() + CODE_LIFETIME_SECONDS};
  pending_.push_back(r);
  save();
  return r;
}

std::vector<PairingRequest> PairingStore::list() {
  prune();
  return pending_;
}

std::optional<PairingRequest> PairingStore::take(const std::string& code) {
  prune();
  std::string wanted = upperCase(code);
  auto it = std::find_if(pending_.begin(), pending_.end(),
                         [&](const PairingRequest& r) { return r.code == wanted; });
  if (it == pending_.end()) return std::nullopt;
  PairingRequest r = *it;
  pending_.erase(it);
  save();
  return r;
}

}  // namespace chitin
