// SPDX-License-Identifier: Apache-2.0
// Fuzz target: what a (possibly compromised) channel worker delivers to its InboundSink, through
// the supervisor's checks and the names and keys derived from an accepted message.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: byte 0 picks the channel kind, the rest is one segment-table-framed message as it
// arrives on the worker's connection: an InboundSink.message params struct, read with the
// channel connection's own ReaderOptions (channelReaderOptions). Then, as the router does:
// copyInbound (the bounds; it must never throw, a malformed message is a refusal), and for an
// accepted message the attachment names (safeAttachmentName, inboxFileName), the sender and
// group ids (sessionSafeId), the session keys and principal the agent core derives from them.
// Checked beyond "no crash":
//   - an accepted message keeps every documented bound (inbound.h) on what was *copied*: ids
//     1-256 printable ASCII without space (reply/thread may be empty), name 256 bytes, text
//     64 KiB, each valid UTF-8; at most 16 attachments, names 1024, MIME types 256, data within
//     the per-file and per-message caps; ids copied exactly;
//   - a saved attachment's name is plain: [A-Za-z0-9._-], 1-80 bytes, no leading dot, never
//     "." or ".."; the inbox name adds only a stamp, so "inbox/<name>" stays in inbox/;
//   - sender and group ids fit the core's [A-Za-z0-9_.@+:-]{1,128}, one-to-one (the escape
//     decodes back to the platform's id), so the session key passes checkSessionKey and the
//     principal "<kind>:<sender>" splits back to the worker's own kind at its first ':'.

#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "fuzz-support.h"
#include "inbound.h"
#include "inbox.h"
#include "session-keys.h"
#include "utf8.h"

namespace channels = chitin::channels;
namespace rpc = chitin::rpc;
using channels::InboundLimits;

namespace {

constexpr const char* KINDS[] = {"telegram", "discord", "slack",   "signal",
                                 "irc",      "email",   "whatsapp"};
// Small enough that the fuzzer reaches it with inputs of a few hundred bytes.
constexpr uint64_t MAX_FILE_BYTES = 64;

bool plainId(const std::string& id, bool required) {
  if (id.empty()) return !required;
  if (id.size() > InboundLimits::MAX_ID_BYTES) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

bool validUtf8(const std::string& s) {
  return chitin::isValidUtf8(kj::ArrayPtr<const char>(s.data(), s.size()));
}

bool coreIdChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         strchr("_.@+:-", c) != nullptr;
}

// The inverse of sessionSafeId's escape ("_XX" per byte), for ids not hashed ("_Z...").
std::string unescape(const std::string& safe) {
  std::string out;
  for (size_t i = 0; i < safe.size(); ++i) {
    if (safe[i] != '_') {
      out += safe[i];
      continue;
    }
    FUZZ_CHECK(i + 2 < safe.size() && isxdigit(static_cast<unsigned char>(safe[i + 1])) &&
                   isxdigit(static_cast<unsigned char>(safe[i + 2])),
               safe);
    out += static_cast<char>(std::stoi(safe.substr(i + 1, 2), nullptr, 16));
    i += 2;
  }
  return out;
}

void checkSafeId(const std::string& id, const std::string& kind, const char* chatType) {
  std::string safe = channels::sessionSafeId(id);
  FUZZ_CHECK(!safe.empty() && safe.size() <= 128, safe);
  for (char c : safe) FUZZ_CHECK(coreIdChar(c), safe);
  if (safe.rfind("_Z", 0) == 0) {
    FUZZ_CHECK(safe.size() == 66, safe);
  } else {
    FUZZ_CHECK(unescape(safe) == id, safe);  // one-to-one: no two ids share a session
  }
  std::string key = chitin::channelSessionKey("main", kind, chatType, safe);
  FUZZ_CHECK(chitin::checkSessionKey(key).empty(), key);
  std::string principal = kind + ":" + safe;
  FUZZ_CHECK(principal.substr(0, principal.find(':')) == kind, principal);
}

void checkAttachmentName(const std::string& platformName) {
  std::string safe = channels::safeAttachmentName(platformName);
  FUZZ_CHECK(!safe.empty() && safe.size() <= 80, safe);
  FUZZ_CHECK(safe[0] != '.' && safe != "." && safe != "..", safe);
  for (char c : safe) {
    FUZZ_CHECK(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-', safe);
  }
  FUZZ_CHECK(channels::safeAttachmentName(safe) == safe, safe);  // nothing left to reduce
  std::string inbox = channels::inboxFileName(platformName);
  FUZZ_CHECK(inbox.size() > safe.size() && inbox.substr(inbox.size() - safe.size()) == safe, inbox);
  FUZZ_CHECK(inbox.size() <= 255 && inbox[0] != '.' &&
                 inbox.find_first_of(std::string("/\\\0", 3)) == std::string::npos,
             inbox);
}

void checkAccepted(rpc::InboundMessage::Reader m, const channels::Inbound& in,
                   const std::string& kind) {
  FUZZ_CHECK(plainId(in.chatId, true) && in.chatId == m.getChatId().cStr(), in.chatId);
  FUZZ_CHECK(plainId(in.senderId, true) && in.senderId == m.getSenderId().cStr(), in.senderId);
  FUZZ_CHECK(plainId(in.messageId, true) && in.messageId == m.getMessageId().cStr(), in.messageId);
  FUZZ_CHECK(plainId(in.replyTo, false) && in.replyTo == m.getReplyTo().cStr(), in.replyTo);
  FUZZ_CHECK(plainId(in.threadId, false) && in.threadId == m.getThreadId().cStr(), in.threadId);
  FUZZ_CHECK(in.group == (m.getChatType() == rpc::ChatType::GROUP), "chat type");
  FUZZ_CHECK(in.senderName.size() <= InboundLimits::MAX_NAME_BYTES, "senderName over 256 bytes");
  FUZZ_CHECK(validUtf8(in.senderName), "senderName not UTF-8");
  FUZZ_CHECK(in.text.size() <= InboundLimits::MAX_TEXT_BYTES, "text over 64 KiB");
  FUZZ_CHECK(validUtf8(in.text), "text not UTF-8");
  FUZZ_CHECK(in.attachments.size() <= InboundLimits::MAX_ATTACHMENTS, "over 16 attachments");
  uint64_t total = 0;
  for (const auto& f : in.attachments) {
    FUZZ_CHECK(f.name.size() <= InboundLimits::MAX_ATTACHMENT_NAME_BYTES, f.name);
    FUZZ_CHECK(validUtf8(f.name), "attachment name not UTF-8");
    FUZZ_CHECK(f.mimeType.size() <= InboundLimits::MAX_MIME_BYTES, f.mimeType);
    FUZZ_CHECK(validUtf8(f.mimeType), "mimeType not UTF-8");
    FUZZ_CHECK(f.data.size() <= MAX_FILE_BYTES, "attachment data over the per-file cap");
    total += f.data.size();
    checkAttachmentName(f.name);
  }
  FUZZ_CHECK(total <= InboundLimits::MAX_TOTAL_ATTACHMENT_BYTES, "attachments over the total");
  checkSafeId(in.senderId, kind, "direct");
  checkSafeId(in.chatId, kind, "group");
  bool same = channels::sessionSafeId(in.chatId) == channels::sessionSafeId(in.senderId);
  FUZZ_CHECK(same == (in.chatId == in.senderId), in.chatId + " / " + in.senderId);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  chitin::fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string kind = KINDS[data[0] % (sizeof(KINDS) / sizeof(KINDS[0]))];
  size_t words = (size - 1) / sizeof(capnp::word);
  kj::Array<capnp::word> aligned = kj::heapArray<capnp::word>(words);
  if (words > 0) memcpy(aligned.begin(), data + 1, words * sizeof(capnp::word));

  rpc::InboundMessage::Reader message;
  kj::Own<capnp::FlatArrayMessageReader> reader;
  try {
    // Framing and the root pointer: refused here as by the RPC layer (the connection fails).
    reader = kj::heap<capnp::FlatArrayMessageReader>(aligned, channels::channelReaderOptions());
    message = reader->getRoot<rpc::InboundSink::MessageParams>().getMessage();
  } catch (const kj::Exception&) {
    return 0;
  }

  channels::InboundLimits limits;
  limits.maxAttachmentBytes = MAX_FILE_BYTES;
  channels::Inbound in;
  std::string problem;
  try {
    problem = channels::copyInbound(message, limits, in);
  } catch (const kj::Exception& e) {
    // The sink would answer with this instead of killing the worker: every refusal must be
    // copyInbound's own answer.
    FUZZ_CHECK(false, e.getDescription().cStr());
  }
  if (!problem.empty()) {
    FUZZ_CHECK(validUtf8(problem) && problem.size() < 300, problem);
    return 0;
  }
  // Re-reading the message for the comparison may trip the traversal limit copyInbound stayed
  // within; that is capnp's refusal, not a finding.
  try {
    checkAccepted(message, in, kind);
  } catch (const kj::Exception&) {
  }
  return 0;
}
