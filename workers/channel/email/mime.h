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
  size_t maxTextBytes = 1u << 20;           // the text is cut (on a character) beyond this
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
  std::string autoSubmitted;     // lower-cased Auto-Submitted value, "" when absent
  std::string firstAuthResults;  // the topmost Authentication-Results header
  bool partsDropped = false;     // over maxParts or maxDepth
};

using Headers = std::vector<std::pair<std::string, std::string>>;  // lower-cased name, raw value

// Unfolded header fields and where the body starts (raw.size() when there is no body).
Headers parseHeaders(std::string_view raw, size_t* bodyStart);
std::string headerValue(const Headers& headers, std::string_view lowerName);

ParsedMail parseMail(std::string_view raw, const MimeLimits& limits, Charsets& charsets);

MailAddress parseAddress(std::string_view value, Charsets& charsets);  // the first mailbox
std::vector<std::string> parseMessageIds(std::string_view value);
int64_t parseDate(std::string_view value);    // RFC 5322 date-time to ms; 0 when unreadable
bool validAddress(std::string_view address);  // one '@', no blanks/controls/<>, <= 254 bytes

// Whether the receiving mail server vouches for the From address: the topmost
// Authentication-Results header comes from `authservId` and reports dmarc=pass, or dkim=pass
// for the From domain. Only meaningful when that server strips forged Authentication-Results
// headers (RFC 8601 section 5), which the big providers do.
bool senderAuthenticated(const ParsedMail& mail, std::string_view authservId);

}  // namespace chitin::channel::email
