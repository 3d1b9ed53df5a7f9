// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the web_fetch worker's page pipeline on hostile bytes: charset detection, iconv
// to UTF-8 and libxml2's HTML parse walked into Markdown or text; nothing may crash, and the
// output stays within its bound.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: byte 0 picks Markdown (odd) or text and a small or large maxChars; the rest is the body,
// served as text/html without a charset (so the BOM / <meta> / UTF-8 paths all run).

#include <cstdint>
#include <string>
#include <string_view>

#include "extract.h"
#include "fuzz-support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  bool markdown = (data[0] & 1) != 0;
  uint32_t maxChars = (data[0] & 2) != 0 ? 50 : 20000;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string charset = chitin::web::detectCharset("text/html", body, true);
  std::string text = chitin::web::decodeToUtf8(body, charset);
  auto out = chitin::web::extractHtml(text, "https://example.test/a/b", markdown, maxChars);
  // The renderer stops a little past 4 bytes per allowed character (one last text node's
  // character or markup); far past it is a bug.
  FUZZ_CHECK(out.text.size() <= size_t(maxChars) * 4 + 4096, "extracted text over its bound");
  chitin::web::classifyBody(chitin::web::mediaType(""), body);
  return 0;
}
