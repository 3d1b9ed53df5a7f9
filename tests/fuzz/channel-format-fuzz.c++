// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the channel workers' Markdown conversion and chunking (workers/channel/format.h),
// fed model text (which a prompt injection can shape).
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: byte 0 picks the unit (bytes, code points, UTF-16), byte 1 the limit (1..256), the
// rest is Markdown. Checks beyond "no crash": Telegram HTML is always well nested with only the
// tags the converter writes; with a limit that leaves room for fences every chunk of valid UTF-8
// fits and stays valid UTF-8; no chunk is empty.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "format.h"
#include "fuzz-support.h"

namespace {

using namespace chitin::channel;

bool validUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

size_t units(std::string_view s, Unit unit) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto b = static_cast<unsigned char>(s[i]);
    if (unit == Unit::BYTES) {
      ++n;
    } else if ((b & 0xc0) != 0x80) {
      n += unit == Unit::UTF16 && b >= 0xf0 ? 2 : 1;
    }
  }
  return n;
}

void checkHtml(const std::string& html) {
  static const std::vector<std::string> TAGS = {"b", "i", "s", "code", "pre", "a", "blockquote"};
  std::vector<std::string> stack;
  for (size_t i = html.find('<'); i != std::string::npos; i = html.find('<', i + 1)) {
    size_t end = html.find('>', i);
    FUZZ_CHECK(end != std::string::npos, html);
    std::string tag = html.substr(i + 1, end - i - 1);
    if (!tag.empty() && tag[0] == '/') {
      FUZZ_CHECK(!stack.empty() && stack.back() == tag.substr(1), html);
      stack.pop_back();
    } else {
      std::string name = tag.substr(0, tag.find(' '));
      bool known = false;
      for (auto& t : TAGS) known = known || t == name;
      FUZZ_CHECK(known, html);
      stack.push_back(name);
    }
  }
  FUZZ_CHECK(stack.empty(), html);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  Unit unit = data[0] % 3 == 0 ? Unit::BYTES : data[0] % 3 == 1 ? Unit::CODE_POINTS : Unit::UTF16;
  size_t limit = 1 + data[1];
  std::string_view markdown(reinterpret_cast<const char*>(data + 2), size - 2);
  checkHtml(convertMarkdown(markdown, Format::TELEGRAM_HTML));
  convertMarkdown(markdown, Format::SLACK_MRKDWN);
  convertMarkdown(markdown, Format::PLAIN);
  bool valid = validUtf8(markdown);
  for (const std::string& chunk : chunkText(markdown, limit, unit)) {
    FUZZ_CHECK(!chunk.empty(), "an empty chunk");
    if (valid) FUZZ_CHECK(validUtf8(chunk), chunk);
    // Below this, a reopened fence may not fit and the chunk degrades (documented); a single
    // code point longer than the limit (4 bytes into 3) is sent whole. (Counted on valid UTF-8:
    // an invalid byte is one unit to the chunker, and becomes U+FFFD on the wire.)
    if (limit >= 64 && valid) FUZZ_CHECK(units(chunk, unit) <= limit, chunk);
    checkHtml(convertMarkdown(chunk, Format::TELEGRAM_HTML));
  }
  return 0;
}
