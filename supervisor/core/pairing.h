// SPDX-License-Identifier: Apache-2.0
// Pairing: how an unknown sender on a chat channel asks to talk to the assistant.
// Runs in: supervisor
//
// A direct message from a sender the policy does not let chat gets a pairing code and nothing
// else. The owner approves the code (`chitin pairing approve CODE`), which adds the sender to
// the entity store; from then on the policy decides as for anyone else. Codes are 8 characters
// from an alphabet without look-alikes, live one hour, and at most three are pending per
// channel, so a flood of strangers cannot grow the store or crowd out a real request.

#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace chitin {

struct PairingRequest {
  std::string code;
  std::string channel;
  std::string sender;
  int64_t requestedAt = 0;  // unix seconds
  int64_t expiresAt = 0;
};

class PairingStore {
 public:
  static constexpr int64_t CODE_LIFETIME_SECONDS = 3600;
  static constexpr size_t MAX_PENDING_PER_CHANNEL = 3;
  static constexpr size_t CODE_LENGTH = 8;

  // `path` is $CHITIN_HOME/state/pairing.json (written atomically on every change). A missing
  // file is an empty store; an unreadable or malformed one throws std::runtime_error naming it.
  PairingStore(std::string path, std::function<int64_t()> now);

  // The pending code for this sender (the same one if it asks again), a new one, or nullopt if
  // the channel already has MAX_PENDING_PER_CHANNEL requests waiting.
  std::optional<PairingRequest> request(const std::string& channel, const std::string& sender);

  // Pending, unexpired requests, oldest first.
  std::vector<PairingRequest> list();

  // Removes and returns the request with this code (case-insensitive), if pending.
  std::optional<PairingRequest> take(const std::string& code);

 private:
  void prune();
  void save();

  std::string path_;
  std::function<int64_t()> now_;
  std::vector<PairingRequest> pending_;
};

// A random code of `length` characters from an alphabet without look-alikes (no 0/O, 1/I/L),
// for codes a person reads off one screen and types on another (pairing, confirmations).
std::string randomCode(size_t length);

// `code` in upper case: codes are compared case-insensitively.
std::string upperCase(std::string code);

// The wall clock, unix seconds.
int64_t unixNow();

// RFC 3339 UTC for unix seconds, e.g. 2026-11-23T03:04:05Z.
std::string rfc3339(int64_t unixSeconds);

}  // namespace chitin
