// SPDX-License-Identifier: Apache-2.0
// The decoders a mail message needs: base64, quoted-printable, RFC 2047 encoded words, RFC 2231
// parameter values, charsets to UTF-8, and HTML reduced to text.
// Runs in: worker (sandboxed)
//
// All input is a stranger's mail: decoders never throw on bad input, they keep what they can
// (an undecodable encoded word stays as written, a byte in an unknown charset becomes U+FFFD)
// and their output is never longer than a small multiple of their input.

#pragma once

#include <iconv.h>

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace chitin::channel::email {

std::string decodeBase64(std::string_view in);  // skips whitespace and junk, stops at '='
std::string encodeBase64(std::string_view in, size_t lineLength = 0);  // 0 = one line; CRLF
std::string decodeQuotedPrintable(std::string_view in, bool headerForm = false);  // "_" = space

// Bytes in a named charset to UTF-8. UTF-8, US-ASCII, ISO-8859-1 and Windows-1252 are built
// in; others go through iconv (glibc loads its converter modules from /usr, which the sandbox
// shows read-only), each opened once and kept. One conversion at a time (a mutex).
class Charsets {
 public:
  Charsets();
  ~Charsets();
  Charsets(const Charsets&) = delete;
  Charsets& operator=(const Charsets&) = delete;

  std::string toUtf8(std::string_view bytes, std::string_view charset);

 private:
  iconv_t converter(const std::string& charset);  // (iconv_t)-1 when iconv does not know it
  std::mutex mutex_;
  std::map<std::string, iconv_t> open_;
};

// Valid UTF-8 stays; invalid bytes are read as Windows-1252 (what mislabelled mail usually is).
std::string utf8OrLatin1(std::string_view bytes);

// A header value with RFC 2047 encoded words (=?charset?B|Q?...?=) decoded to UTF-8; the
// whitespace between two adjacent encoded words is dropped, as the RFC says.
std::string decodeHeaderWords(std::string_view value, Charsets& charsets);

// Encodes a header value for sending: as is when printable ASCII, otherwise as UTF-8 "B"
// encoded words of at most 75 bytes each, separated by folding whitespace.
std::string encodeHeaderWords(std::string_view utf8);

// "%XX" escapes to bytes (RFC 2231 values); a '%' without two hex digits stays.
std::string percentDecode(std::string_view value);

// RFC 2231 extended value "charset'lang'%XX..." to UTF-8.
std::string decodeExtendedValue(std::string_view value, Charsets& charsets);

// HTML to readable text: tags dropped, block elements as line breaks, <script>/<style>/<head>
// dropped with their content, entities decoded, links as "text (url)", whitespace collapsed.
std::string htmlToText(std::string_view html);

// At most `max` bytes, cut before a UTF-8 character that would not fit whole.
std::string truncateUtf8(std::string_view s, size_t max);

std::string lowerAscii(std::string_view s);
std::string trimSpace(std::string_view s);

}  // namespace chitin::channel::email
