// SPDX-License-Identifier: Apache-2.0
// An outgoing mail message built from a reply: RFC 5322 headers (RFC 2047 where not ASCII),
// threading headers, a UTF-8 quoted-printable text part and base64 attachments.
// Runs in: worker (sandboxed)
//
// Every header value is built from parts that cannot end a line: CR and LF are removed from
// names, subjects and file names, and addresses and ids are checked before they get here, so a
// model's reply cannot add a header (Bcc:) or a second recipient.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../platform.h"
#include "mime.h"

namespace chitin::channel::email {

struct OutgoingMail {
  MailAddress from;
  std::string to;  // addr-spec (validAddress)
  std::string subject;
  std::string messageId;  // without brackets
  std::string inReplyTo;  // "" = not a reply
  std::vector<std::string> references;
  int64_t dateMs = 0;
  std::string text;  // UTF-8, "\n" line ends
  std::vector<Attachment> attachments;
};

// `boundary` separates the parts when there are attachments (random in production).
std::string composeMail(const OutgoingMail& mail, const std::string& boundary);

std::string encodeQuotedPrintable(std::string_view text);  // CRLF line ends, lines <= 76
std::string formatDate(int64_t ms);                        // "Tue, 01 Jul 2003 10:52:37 +0000"
std::string randomToken(size_t bytes);                     // hex, from the kernel's CSPRNG

// "Re: " + the subject, unless it already starts with Re: (any case).
std::string replySubject(std::string_view subject);

}  // namespace chitin::channel::email
