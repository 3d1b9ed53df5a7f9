// SPDX-License-Identifier: Apache-2.0
// signal-cli's JSON to and from chitin's channel messages (see signal-wire.h).
// Runs in: worker (sandboxed)

#include "signal-wire.h"

#include <algorithm>
#include <cctype>
#include <climits>

#include <openssl/evp.h>

#include "json-bounds.h"

namespace chitin::channel {

namespace {

using Json = nlohmann::json;

// An envelope is a few kilobytes; nesting beyond this is not signal-cli's.
constexpr JsonBounds ENVELOPE_BOUNDS{4u << 20, 32};
constexpr size_t MAX_ATTACHMENTS = 32;
constexpr std::string_view OBJECT_REPLACEMENT = "\xEF\xBF\xBC";  // U+FFFC, where a mention sits

// A member that is a string (else ""), cut to `max` bytes.
std::string text(const Json& object, const char* key, size_t max = 4096) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  const auto& s = it->get_ref<const std::string&>();
  return s.size() <= max ? s : std::string();
}

const Json* objectAt(const Json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? &*it : nullptr;
}

int64_t integer(const Json& object, const char* key) {
  if (!object.is_object()) return 0;
  auto it = object.find(key);
  if (it == object.end()) return 0;
  if (it->is_number_unsigned()) return std::min<uint64_t>(it->get<uint64_t>(), INT64_MAX);
  if (it->is_number_integer()) return it->get<int64_t>();
  return 0;
}

}  // namespace

bool isSignalUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); i++) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

bool isSignalNumber(std::string_view s) {
  return s.size() >= 2 && s.size() <= 20 && s[0] == '+' &&
         std::all_of(s.begin() + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

namespace {

bool isBase64(std::string_view s, size_t maxLength) {
  return !s.empty() && s.size() <= maxLength && s.size() % 4 == 0 &&
         std::all_of(s.begin(), s.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=';
         });
}

// Stable id of an address object's "<prefix>Uuid"/"<prefix>Number" pair: the ACI, else the number.
std::string addressId(const Json& object, const std::string& prefix) {
  std::string uuid = text(object, (prefix + "Uuid").c_str(), 64);
  if (isSignalUuid(uuid)) return uuid;
  std::string number = text(object, (prefix + "Number").c_str(), 64);
  return isSignalNumber(number) ? number : "";
}

bool isSelf(const SignalSelf& self, const std::string& number, const std::string& uuid) {
  return (!number.empty() && number == self.number) || (!uuid.empty() && uuid == self.uuid);
}

bool wordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

bool namesAssistant(const std::string& body, const SignalSelf& self) {
  std::string lower = body;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (std::string name : self.mentionNames) {
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (name.empty()) continue;
    for (size_t at = lower.find(name); at != std::string::npos; at = lower.find(name, at + 1)) {
      size_t end = at + name.size();
      if ((at == 0 || !wordChar(lower[at - 1])) && (end == lower.size() || !wordChar(lower[end])))
        return true;
    }
  }
  return false;
}

// The body with each mention's U+FFFC placeholder written out as "@<who>", so the model reads
// who was addressed; sets `mentioned` when one of them is us.
std::string expandMentions(std::string body, const Json* mentions, const SignalSelf& self,
                           bool& mentioned) {
  if (!mentions || !mentions->is_array()) return body;
  std::vector<std::pair<int64_t, std::string>> ordered;
  for (const auto& m : *mentions) {
    if (!m.is_object() || ordered.size() >= 64) continue;
    std::string number = text(m, "number", 64), uuid = text(m, "uuid", 64);
    if (!isSignalNumber(number)) number.clear();
    if (!isSignalUuid(uuid)) uuid.clear();
    bool us = isSelf(self, number, uuid);
    mentioned = mentioned || us;
    std::string who = us && !self.mentionNames.empty() ? self.mentionNames.front()
                      : !number.empty()                ? number
                                                       : uuid;
    ordered.emplace_back(integer(m, "start"), "@" + who);
  }
  std::stable_sort(ordered.begin(), ordered.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  size_t at = 0;
  for (const auto& [start, label] : ordered) {
    at = body.find(OBJECT_REPLACEMENT, at);
    if (at == std::string::npos) break;
    body.replace(at, OBJECT_REPLACEMENT.size(), label);
    at += label.size();
  }
  return body;
}

}  // namespace

std::optional<SignalReceived> parseReceiveEvent(std::string_view data, const SignalSelf& self,
                                                std::string& why) {
  why.clear();
  if (std::string bad = checkJsonBounds(data, ENVELOPE_BOUNDS, "receive event"); !bad.empty()) {
    why = bad;
    return std::nullopt;
  }
  Json event = Json::parse(data, nullptr, false);
  const Json* envelope = objectAt(event, "envelope");
  if (!envelope) {
    // signal-cli reports a message it could not decrypt as {"exception": ...}.
    if (objectAt(event, "exception"))
      why = "signal-cli reported an error receiving a message";
    else
      why = "not a receive event";
    return std::nullopt;
  }
  const Json* dm = objectAt(*envelope, "dataMessage");
  if (!dm) {
    // not a data message (sync, typing, receipt, call, story or edit): nothing to answer
    return std::nullopt;
  }
  if (objectAt(*dm, "reaction") || objectAt(*dm, "remoteDelete")) {
    // a reaction or remote delete: nothing to answer
    return std::nullopt;
  }
  std::string number = text(*envelope, "sourceNumber", 64),
              uuid = text(*envelope, "sourceUuid", 64);
  if (!isSignalNumber(number)) number.clear();
  if (!isSignalUuid(uuid)) uuid.clear();
  if (number.empty() && uuid.empty()) {
    why = "no valid sender";
    return std::nullopt;
  }
  if (isSelf(self, number, uuid)) {
    // sent by this account: nothing to answer
    return std::nullopt;
  }
  int64_t timestamp = integer(*envelope, "timestamp");
  if (timestamp <= 0) {
    why = "no valid timestamp";
    return std::nullopt;
  }

  SignalReceived out;
  Inbound& in = out.message;
  in.senderId = uuid.empty() ? number : uuid;
  out.senderAddress = in.senderId;
  in.senderName = text(*envelope, "sourceName", 256);
  in.timestampMs = timestamp;
  in.messageId = signalMessageId(in.senderId, timestamp);

  if (const Json* group = objectAt(*dm, "groupInfo")) {
    std::string id = text(*group, "groupId", 128);
    if (!isBase64(id, 64)) {
      why = "malformed group id";
      return std::nullopt;
    }
    out.groupId = id;
    in.group = true;
    in.chatId = "group:" + id;
  } else {
    in.chatId = in.senderId;
  }

  auto mentions = dm->find("mentions");
  in.text = expandMentions(text(*dm, "message", 1u << 20),
                           mentions != dm->end() ? &*mentions : nullptr, self, in.mentioned);
  if (!in.mentioned) in.mentioned = namesAssistant(in.text, self);

  if (const Json* quote = objectAt(*dm, "quote")) {
    std::string author = addressId(*quote, "author");
    int64_t id = integer(*quote, "id");
    if (!author.empty() && id > 0) {
      in.replyTo = signalMessageId(author, id);
      // A reply to one of our messages addresses us, as a mention would.
      if (isSelf(self, text(*quote, "authorNumber", 64), text(*quote, "authorUuid", 64)))
        in.mentioned = true;
    }
  }

  auto attachments = dm->find("attachments");
  if (attachments != dm->end() && attachments->is_array()) {
    for (const auto& a : *attachments) {
      if (out.attachments.size() >= MAX_ATTACHMENTS) break;
      std::string id = text(a, "id", 256);
      bool plainId = !id.empty() && std::all_of(id.begin(), id.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
      });
      if (!plainId) continue;  // not downloaded by the daemon (or not an id we pass back)
      out.attachments.push_back({id, text(a, "filename", 255), text(a, "contentType", 127),
                                 static_cast<uint64_t>(std::max<int64_t>(0, integer(a, "size")))});
    }
  }
  if (in.text.empty() && out.attachments.empty()) {
    // no text and no attachment (a sticker, group update or empty message): nothing to answer
    return std::nullopt;
  }
  return out;
}

nlohmann::json signalTarget(const std::string& chatId) {
  if (chatId.rfind("group:", 0) == 0) {
    std::string id = chatId.substr(6);
    if (isBase64(id, 64)) return {{"groupId", id}};
  } else if (isSignalUuid(chatId) || isSignalNumber(chatId)) {
    return {{"recipient", chatId}};
  }
  throw ChannelError("signal: chat id \"" + chatId.substr(0, 80) +
                     "\" is neither a number, an ACI nor group:<base64 id>");
}

std::string signalMessageId(const std::string& author, int64_t timestamp) {
  return author + ":" + std::to_string(timestamp);
}

bool parseSignalMessageId(const std::string& id, std::string& author, int64_t& timestamp) {
  size_t colon = id.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == id.size() || colon + 20 < id.size())
    return false;
  std::string who = id.substr(0, colon);
  if (!isSignalUuid(who) && !isSignalNumber(who)) return false;
  int64_t value = 0;
  for (char c : id.substr(colon + 1)) {
    if (c < '0' || c > '9' || value > (INT64_MAX - 9) / 10) return false;
    value = value * 10 + (c - '0');
  }
  author = who;
  timestamp = value;
  return true;
}

std::string signalDataUri(const Attachment& attachment) {
  // signal-cli's pattern wants "type/subtype"; anything else would be misparsed as parameters.
  std::string type = attachment.mimeType;
  bool typeOk = std::count(type.begin(), type.end(), '/') == 1 && type.front() != '/' &&
                type.back() != '/' && type.size() <= 127 &&
                std::all_of(type.begin(), type.end(), [](char c) {
                  return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' ||
                         c == '+' || c == '-';
                });
  std::string out = "data:" + (typeOk ? type : std::string("application/octet-stream"));
  if (!attachment.name.empty()) {
    out += ";filename=";
    for (unsigned char c : attachment.name) {  // URL-decoded by signal-cli
      if (std::isalnum(c) || c == '.' || c == '-' || c == '_') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += "0123456789ABCDEF"[c >> 4];
        out += "0123456789ABCDEF"[c & 15];
      }
    }
  }
  out += ";base64,";
  size_t prefix = out.size();
  out.resize(prefix + (attachment.data.size() + 2) / 3 * 4 + 1);  // + EVP's terminating NUL
  int written = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[prefix]),
                                reinterpret_cast<const unsigned char*>(attachment.data.data()),
                                static_cast<int>(attachment.data.size()));
  out.resize(prefix + static_cast<size_t>(written));
  return out;
}

std::optional<std::string> signalBase64Decode(std::string_view base64) {
  if (base64.size() % 4 != 0 || !std::all_of(base64.begin(), base64.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/' || c == '=';
      }))
    return std::nullopt;
  std::string out(base64.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(base64.data()),
                          static_cast<int>(base64.size()));
  if (n < 0) return std::nullopt;
  size_t padding = base64.size() - base64.find_last_not_of('=') - 1;  // EVP counts it as zeros
  if (padding > 2) return std::nullopt;
  out.resize(static_cast<size_t>(n) - padding);
  return out;
}

std::string signalRpcError(std::string_view method, const nlohmann::json& error) {
  std::string message = text(error, "message", 300);
  return "signal-cli " + std::string(method) + ": " +
         (message.empty() ? std::string("error") : message) + " (code " +
         std::to_string(integer(error, "code")) + ")";
}

int64_t signalRetryAfterSeconds(const nlohmann::json& error) {
  const Json* data = objectAt(error, "data");
  const Json* response = data ? objectAt(*data, "response") : nullptr;
  if (!response) return 0;
  auto results = response->find("results");
  if (results == response->end() || !results->is_array()) return 0;
  int64_t wait = 0;
  for (const auto& r : *results) wait = std::max(wait, integer(r, "retryAfterSeconds"));
  return std::min<int64_t>(wait, 86400);
}

}  // namespace chitin::channel
