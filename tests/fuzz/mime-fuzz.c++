// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the email worker's MIME parser (a stranger's mail), its HTML reduction and
// header decoding, then a reply composed from what was parsed and parsed again.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: a whole mail message. Checks beyond "no crash": the parser's bounds hold (16
// attachments, the text cap, data only within the attachment cap), every id it returns is
// printable ASCII within 250 bytes, and a composed reply carries no bare CR or LF in a header.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz-support.h"
#include "mime-compose.h"
#include "mime.h"

using namespace chitin::channel::email;

namespace {

bool plainId(const std::string& id) {
  if (id.size() > 250) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  static Charsets charsets;  // kept: opening iconv converters is the slow part
  MimeLimits limits;
  limits.maxAttachmentBytes = 256;
  limits.maxTextBytes = 1024;
  ParsedMail mail = parseMail(raw, limits, charsets);
  FUZZ_CHECK(mail.attachments.size() <= limits.maxAttachments, "more attachments than the limit");
  for (const auto& a : mail.attachments) {
    FUZZ_CHECK(a.data.size() <= limits.maxAttachmentBytes, "attachment data over the cap");
    FUZZ_CHECK(a.name.size() <= 255, "attachment name over 255 bytes");
  }
  FUZZ_CHECK(mail.text.size() <= limits.maxTextBytes + 64, "text over the cap");
  FUZZ_CHECK(plainId(mail.messageId) && plainId(mail.inReplyTo), "an id that is not plain ASCII");
  for (const auto& r : mail.references)
    FUZZ_CHECK(plainId(r), "a reference that is not plain ASCII");
  FUZZ_CHECK(mail.from.address.empty() || validAddress(mail.from.address),
             "an invalid From address");

  htmlToText(raw);
  decodeHeaderWords(raw.substr(0, 4096), charsets);
  senderAuthenticated(mail, "mx.example.org");

  OutgoingMail reply;
  reply.from = {"bot@example.org", mail.from.name};
  reply.to = "someone@example.org";
  reply.subject = replySubject(mail.subject);
  reply.messageId = "id@example.org";
  reply.inReplyTo = mail.messageId;
  reply.references = mail.references;
  reply.text = mail.text;
  reply.attachments = mail.attachments;
  std::string composed = composeMail(reply, "b");
  size_t headerEnd = composed.find("\r\n\r\n");
  FUZZ_CHECK(headerEnd != std::string::npos, "no end of headers");
  for (size_t i = 0; i < headerEnd; ++i) {
    if (composed[i] == '\n')
      FUZZ_CHECK(i > 0 && composed[i - 1] == '\r', "a bare LF in the headers");
    if (composed[i] == '\r') FUZZ_CHECK(composed[i + 1] == '\n', "a bare CR in the headers");
    if (composed[i] == '\n') {
      // Every header line either starts a field ("Name:") or continues one (leading blank).
      size_t next = i + 1;
      size_t colon = composed.find(':', next);
      bool folded = composed[next] == ' ' || composed[next] == '\t';
      FUZZ_CHECK(folded || (colon != std::string::npos && colon < composed.find("\r\n", next)),
                 "a header line that is neither a field nor a continuation");
    }
  }
  return 0;
}
