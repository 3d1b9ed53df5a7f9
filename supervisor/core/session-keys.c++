// SPDX-License-Identifier: Apache-2.0
// Session keys (see session-keys.h).
// Runs in: supervisor

#include "session-keys.h"

#include <algorithm>
#include <cstring>
#include <regex>

#include "audit-log.h"
#include "utf8.h"

namespace chitin {

namespace {

// Lower-cases and keeps [a-z0-9_.@+-] so client-supplied names cannot reshape a session key.
std::string keyPart(const std::string& s, const char* fallback) {
  std::string out;
  for (char c : s) {
    char l = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    if (isalnum(static_cast<unsigned char>(l)) || strchr("_.@+-", l) != nullptr) out += l;
    if (out.size() >= 64) break;
  }
  return out.empty() ? fallback : out;
}

// A platform's sender or group id as a session key part, one-to-one: ids that are already
// lower-case key characters stay as they are; any other (upper case, say) becomes a hash of the
// exact id, so "Bob" and "bob" on a case-sensitive platform never share a session.
std::string channelKeyPart(const std::string& id) {
  bool plain = !id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("_.@+-", c) != nullptr;
  });
  return plain ? id : "h-" + audit::sha256Hex(id).substr(0, 40);
}

}  // namespace

std::string checkSessionKey(const std::string& key) {
  static const std::regex pattern(
      "agent:[a-z0-9_-]{1,32}:[a-z0-9_-]{1,32}:(direct|group):[a-z0-9_.@+-]{1,128}");
  if (key.size() > 256 || !std::regex_match(key, pattern)) {
    return "session key \"" + clipUtf8(key, 200) +
           "\" is not of the form agent:<agent>:<channel>:direct|group:<id> (lower-case letters, "
           "digits, _ . @ + -)";
  }
  return "";
}

std::string defaultSessionKey(const std::string& agentId, const std::string& clientId,
                              const std::string& user) {
  return "agent:" + agentId + ":" + keyPart(clientId, "client") +
         ":direct:" + keyPart(user, "owner");
}

std::string channelSessionKey(const std::string& agentId, const std::string& channel,
                              const std::string& chatType, const std::string& id) {
  return "agent:" + agentId + ":" + channel + ":" + chatType + ":" + channelKeyPart(id);
}

}  // namespace chitin
