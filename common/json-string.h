// SPDX-License-Identifier: Apache-2.0
// Writing a JSON string literal, and the UTF-8 well-formedness rule it and utf8.h share.
// Runs in: supervisor, workers and the CLI (standard library only)
//
// For code that prints JSON straight into a string instead of building a document first (the
// gateway's frames, the model worker's request bodies: per-turn paths, where a DOM and its
// allocations were most of the cost). The output is always well-formed JSON: a byte that starts
// no well-formed UTF-8 sequence becomes U+FFFD, as nlohmann's `error_handler_t::replace` does.

#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace chitin {

// Length of the well-formed UTF-8 sequence that starts at text[i], or 0 if it is malformed or
// cut off by the end of `text`. Unicode's table 3-7: no overlong forms, no surrogates, nothing
// above U+10FFFF.
inline size_t wellFormedUtf8Length(std::string_view text, size_t i) {
  auto at = [&](size_t k) -> unsigned { return static_cast<unsigned char>(text[k]); };
  auto inRange = [&](size_t k, unsigned lo, unsigned hi) {
    return k < text.size() && at(k) >= lo && at(k) <= hi;
  };
  unsigned lead = at(i);
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return inRange(i + 1, 0x80, 0xBF) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    unsigned lo = lead == 0xE0 ? 0xA0 : 0x80;
    unsigned hi = lead == 0xED ? 0x9F : 0xBF;
    return inRange(i + 1, lo, hi) && inRange(i + 2, 0x80, 0xBF) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    unsigned lo = lead == 0xF0 ? 0x90 : 0x80;
    unsigned hi = lead == 0xF4 ? 0x8F : 0xBF;
    return inRange(i + 1, lo, hi) && inRange(i + 2, 0x80, 0xBF) && inRange(i + 3, 0x80, 0xBF) ? 4
                                                                                              : 0;
  }
  return 0;
}

// Appends `text` as a JSON string literal: quotes, `"` and `\` escaped, control characters as
// \n, \t … or \u00XX, everything else as it is, U+FFFD for each byte of malformed UTF-8.
inline void appendJsonString(std::string& out, std::string_view text) {
  static constexpr char HEX[] = "0123456789abcdef";
  out.reserve(out.size() + text.size() + 2);
  out += '"';
  size_t plain = 0;  // start of the run of bytes copied as they are
  for (size_t i = 0; i < text.size();) {
    auto byte = static_cast<unsigned char>(text[i]);
    if (byte >= 0x20 && byte != '"' && byte != '\\' && byte < 0x80) {
      ++i;
      continue;
    }
    if (byte >= 0x80) {
      if (size_t length = wellFormedUtf8Length(text, i); length > 1) {
        i += length;
        continue;
      }
    }
    out.append(text.data() + plain, i - plain);
    switch (byte) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (byte < 0x20) {
          out += "\\u00";
          out += HEX[byte >> 4];
          out += HEX[byte & 15];
        } else {
          out += "\xEF\xBF\xBD";
        }
    }
    ++i;
    plain = i;
  }
  out.append(text.data() + plain, text.size() - plain);
  out += '"';
}

}  // namespace chitin
