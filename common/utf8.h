// SPDX-License-Identifier: Apache-2.0
// UTF-8 checks for text that goes back to the model (file contents, command output).
// Runs in: supervisor and workers
//
// Header-only: the exec and file workers produce valid text, and the supervisor checks again
// (it trusts no worker) before text reaches the gateway's JSON. Well-formedness follows the Unicode
// standard's table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF.

#pragma once

#include <kj/common.h>
#include <kj/string.h>
#include <kj/vector.h>

#include <string>
#include <string_view>

#include "json-string.h"

namespace chitin {

// Length of the well-formed UTF-8 sequence that starts at bytes[i], or 0 if it is malformed
// or cut off by the end of `bytes`.
inline size_t utf8SequenceLength(kj::ArrayPtr<const char> bytes, size_t i) {
  return wellFormedUtf8Length(std::string_view(bytes.begin(), bytes.size()), i);
}

inline bool isValidUtf8(kj::ArrayPtr<const char> bytes) {
  for (size_t i = 0; i < bytes.size();) {
    size_t n = utf8SequenceLength(bytes, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// The largest cut point <= n that does not split a character (bytes[0, cut) then ends on a
// character boundary). Only continuation bytes are stepped over, at most three.
inline size_t utf8BoundaryAtOrBefore(kj::ArrayPtr<const char> bytes, size_t n) {
  if (n >= bytes.size()) return bytes.size();
  size_t cut = n;
  for (int back = 0; back < 3 && cut > 0; ++back) {
    if ((static_cast<unsigned char>(bytes[cut]) & 0xC0) != 0x80) break;
    --cut;
  }
  return (static_cast<unsigned char>(bytes[cut]) & 0xC0) == 0x80 ? n : cut;
}

// `bytes` as valid UTF-8: each malformed byte becomes U+FFFD, so arbitrary command output can
// travel as Text and be encoded as JSON downstream.
inline kj::String sanitizeUtf8(kj::ArrayPtr<const char> bytes) {
  kj::Vector<char> out(bytes.size() + 1);
  for (size_t i = 0; i < bytes.size();) {
    size_t n = utf8SequenceLength(bytes, i);
    if (n == 0) {
      out.addAll(kj::StringPtr("\xef\xbf\xbd"));
      ++i;
    } else {
      out.addAll(bytes.slice(i, i + n));
      i += n;
    }
  }
  out.add('\0');
  return kj::String(out.releaseAsArray());
}

// At most `limit` bytes of `raw` as valid UTF-8, cut on a character boundary and marked with
// "…" when cut: one short excerpt of untrusted text for a log line, an event or a record.
inline std::string clipUtf8(std::string_view raw, size_t limit) {
  std::string s = sanitizeUtf8(kj::ArrayPtr<const char>(raw.data(), raw.size())).cStr();
  if (s.size() <= limit) return s;
  size_t cut = utf8BoundaryAtOrBefore(kj::ArrayPtr<const char>(s.data(), s.size()), limit);
  return s.substr(0, cut) + "…";
}

}  // namespace chitin
