// SPDX-License-Identifier: Apache-2.0
// A fetched page's readable main content as Markdown or plain text, and the charset and
// content-type decisions before it.
// Runs in: worker (sandboxed)
//
// Pure functions over bytes an attacker chose. The HTML parser is libxml2's (htmlReadMemory,
// error-recovering, no network, no entity loading); the walk over its tree keeps the main
// content (<main>, <article> or role="main" when present, else <body>), drops script, style,
// template, noscript, nav, header, footer, aside, form controls, iframes, svg and every element
// that is hidden (`hidden`, aria-hidden="true", an inline display:none / visibility:hidden),
// and keeps links with absolute URLs. Output is bounded by `maxChars`; the tree walk by depth.

#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace chitin::web {

struct Extracted {
  std::string title;
  std::string text;
  bool truncated = false;  // stopped at maxChars
};

// `html` must be UTF-8 already (decodeToUtf8). `baseUrl` resolves relative links.
Extracted extractHtml(std::string_view html, const std::string& baseUrl, bool markdown,
                      uint32_t maxChars);

// The charset the body is in: a byte-order mark, else the Content-Type header's charset
// parameter, else (HTML) a <meta charset> / http-equiv in the first 1024 bytes, else "utf-8" if
// the bytes are valid UTF-8, else "windows-1252" (what browsers assume). Lower case; only
// [a-z0-9._:-] survive, anything else makes it "".
std::string detectCharset(std::string_view contentType, std::string_view body, bool html);

// `body` converted from `charset` to UTF-8 (glibc iconv); a BOM is dropped, invalid sequences
// become U+FFFD. An unknown charset is decoded as windows-1252 and `charset` says so.
std::string decodeToUtf8(std::string_view body, std::string& charset);

// The media type of a Content-Type header: lower case, without parameters ("" when absent).
std::string mediaType(std::string_view contentType);

enum class Kind { HTML, TEXT, BINARY };
// What to do with a body: extract (HTML), pass through (text/*, JSON, XML), describe (the rest).
// Without a Content-Type the first bytes decide (markup → HTML, valid UTF-8 → text).
Kind classifyBody(const std::string& media, std::string_view body);

// "binary content, image/png, 12345 bytes" (", truncated at the limit" when cut).
std::string describeBinary(const std::string& media, uint64_t bytes, bool truncated);

}  // namespace chitin::web
