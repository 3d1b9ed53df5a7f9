// SPDX-License-Identifier: Apache-2.0
// A received mail message (RFC 5322 + MIME, RFC 2045-2049) taken apart into what a chat
// message needs: sender, subject, thread ids, date, text, attachments.
// Runs in: worker (sandboxed)
//
// A bounded parser of our own rather than a library: mail is a stranger's bytes, so the limits
// (nesting depth, number of parts, text and attachment sizes) are explicit here and the code is
// small enough to fuzz. Text: the text/plain parts, or the text/html ones reduced to text when a
// message has no plain text. Every other leaf, and every part named as a file, is an attachment.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../platform.h"
#include "mime-decode.h"

namespace chitin::channel::email {

struct MailAddress {
  std::string address;  // addr-spec, lower-cased; "" when none could be read
  std::string name;     // display name, decoded
};

struct MimeLimits {
  uint64_t maxAttachmentBytes = 20u << 20;  // a larger one keeps its name and size, no data
  // The supervisor takes 64 KiB of text per message; the rest of that is the subject and notes.
  size_t maxTextBytes = 60u << 10;  // the text is cut (on a character) beyond this
  size_t maxAttachments = 16;       // the supervisor's limit per message
  size_t maxParts = 100;
  int maxDepth = 10;
};

struct ParsedMail {
  MailAddress from;
  std::string subject;
  std::string messageId;  // without the angle brackets; "" when absent
  std::string inReplyTo;
  std::vector<std::string> references;  // oldest first, as written
  int64_t dateMs = 0;                   // 0 when absent or unreadable
  std::string text;
  std::vector<Attachment> attachments;
  std::string autoSubmitted;      // lower-cased Auto-Submitted value, "" when absent
  std::string firstAuthResults;   // the topmost Authentication-Results header
  bool partsDropped = false;      // over maxParts or maxDepth
  size_t attachmentsDropped = 0;  // over maxAttachments
};

using Headers = std::vector<std::pair<std::string, std::string>>;  // lower-cased name, raw value

// Unfolded header fields and where the body starts (raw.size() when there is no body).
Headers parseHeaders(std::string_view raw, size_t* bodyStart);
std::string headerValue(const Headers& headers, std::string_view lowerName);

ParsedMail parseMail(std::string_view raw, const MimeLimits& limits, Charsets& charsets);

MailAddress parseAddress(std::string_view value, Charsets& charsets);  // the first mailbox
std::vector<std::string> parseMessageIds(std::string_view value);
int64_t parseDate(std::string_view value);  // RFC 5322 date-time to ms; 0 when unreadable
// One '@', printable ASCII without blanks or <>(),;"\\, at most MAX_ADDRESS_BYTES (so that
// "unverified:" + it stays within the supervisor's 256-byte ids). Internationalized (UTF-8)
// addresses are not supported.
inline constexpr size_t MAX_ADDRESS_BYTES = 240;
bool validAddress(std::string_view address);

// Whether the receiving mail server vouches for the From address: the topmost
// Authentication-Results header comes from `authservId` and reports dmarc=pass, or dkim=pass
// for the From domain. Only meaningful when that server strips forged Authentication-Results
// headers (RFC 8601 section 5), which the big providers do.
bool senderAuthenticated(const ParsedMail& mail, std::string_view authservId);

}  // namespace chitin::channel::email
