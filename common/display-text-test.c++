// SPDX-License-Identifier: Apache-2.0
// Tests for display text: every class of character that acts on a viewer is shown as an escape,
// the display reads back unambiguously, and pieces, cuts and re-escaping agree with one pass.
// Runs in: test

#include "display-text.h"
#include "test-time-limit.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace chitin {
namespace {

using namespace std::string_literals;

constexpr DisplayOptions BLOCK{DisplayLayout::BLOCK, DisplayBackslashes::MARK};

// Reads display text back (the inverse the header promises); nullopt-like "?" marks a display
// that does not parse, which would make it ambiguous.
std::string readBack(const std::string& d) {
  std::string out;
  auto hex = [&](size_t at, size_t n) { return std::stoul(d.substr(at, n), nullptr, 16); };
  auto utf8 = [&](unsigned long c) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    }
  };
  for (size_t i = 0; i < d.size();) {
    if (d[i] != '\\' || i + 1 == d.size()) {
      out += d[i++];
      continue;
    }
    char k = d[i + 1];
    if (k == '\\') {
      out += '\\';
      i += 2;
    } else if (k == 'n' || k == 'r' || k == 't') {
      out += k == 'n' ? '\n' : k == 'r' ? '\r' : '\t';
      i += 2;
    } else if (k == 'x') {
      out += static_cast<char>(hex(i + 2, 2));  // a control (< 0x80) or a raw byte (>= 0x80)
      i += 4;
    } else if (k == 'u') {
      utf8(hex(i + 2, 4));
      i += 6;
    } else if (k == 'U') {
      utf8(hex(i + 2, 8));
      i += 10;
    } else if (k == '[') {
      size_t close = d.find(']', i);
      out += std::string(std::stoul(d.substr(i + 2)), ' ');
      i = close + 1;
    } else {
      out += d[i++];  // a backslash that starts no escape is itself
    }
  }
  return out;
}

// Hostile and ordinary inputs used by the property checks below.
std::vector<std::string> corpus() {
  return {
      "",
      "plain text",
      "ls -la notes" + std::string(200, ' ') + "; rm -rf notes .git",
      "\x1b]52;c;ZXZpbA==\x07 and \x1b[2J\x1b[H",
      "\xc2\x9b"
      "31m C1 CSI",
      "abc\u202edef\u2066x\u2069 \u200e\u200f\u061c",
      "zero\u200bwidth\u200c\u200d\u2060\ufeff\u00ad",
      "tags \U000E0041\U000E007F vs \ufe0f\ufe0e",
      "emoji \u2764\ufe0f \u2764\ufe0f\ufe0f keycap 1\ufe0f\u20e3",
      "e\u0301\u0302\u0303\u0304 zalgo",
      "invalid \xff \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 cut \xe2\x82",
      "back\\slash \\n \\x1b \\\\ \\[3 spaces] C:\\dir \\",
      "\\ \\" + std::string(20, ' ') + "x\\\x1b\\\n",
      "trailing   \n  two\n\n   ",
      "tab\there\r\nwindows\v\f\x7f",
      "nbsp\u00a0em\u2003ideo\u3000line\u2028para\u2029",
      "\xf0\x9f\x98\x80 grin \xe4\xb8\xad\xe6\x96\x87",
  };
}

TEST_CASE("display text: terminal escapes (CSI, OSC 52 clipboard write, C1) are shown, not sent") {
  CHECK(displayLine("a\x1b[2Jb") == "a\\x1b[2Jb");
  CHECK(displayLine("\x1b]52;c;ZXZpbA==\x07") == "\\x1b]52;c;ZXZpbA==\\x07");
  CHECK(displayLine("\x1b[1A\x1b[2K") == "\\x1b[1A\\x1b[2K");
  CHECK(displayLine("\xc2\x9b"
                    "2J") == "\\u009b2J");  // U+009B: CSI as one C1 character
  CHECK(displayLine("nul\0x"s) == "nul\\x00x");
  CHECK(displayLine("del\x7f") == "del\\x7f");
  CHECK(displayLine("bell\a back\b vt\v ff\f") == "bell\\x07 back\\x08 vt\\x0b ff\\x0c");
  for (const std::string& input : corpus()) {
    for (DisplayOptions o : {DisplayOptions{}, BLOCK}) {
      std::string d = displayText(input, o);
      for (unsigned char c : d) {
        CHECK_MESSAGE((c >= 0x20 || (c == '\n' && o.layout == DisplayLayout::BLOCK)), input);
        CHECK_MESSAGE(c != 0x7F, input);
      }
      CHECK_MESSAGE(d.find("\xc2\x9b") == std::string::npos, input);
    }
  }
}

TEST_CASE("display text: bidi controls and invisible characters are shown as \\u escapes") {
  CHECK(displayLine("abc\u202edcb") == "abc\\u202edcb");
  CHECK(displayLine("\u202a\u202b\u202c\u202d") == "\\u202a\\u202b\\u202c\\u202d");
  CHECK(displayLine("\u2066\u2067\u2068\u2069") == "\\u2066\\u2067\\u2068\\u2069");
  CHECK(displayLine("\u200e\u200f\u061c") == "\\u200e\\u200f\\u061c");
  CHECK(displayLine("rm\u200b -rf") == "rm\\u200b -rf");
  CHECK(displayLine("\u200c\u200d\u2060\u2061\u2064\ufeff\u00ad") ==
        "\\u200c\\u200d\\u2060\\u2061\\u2064\\ufeff\\u00ad");
  CHECK(displayLine("\u3164\u115f\u2800") == "\\u3164\\u115f\\u2800");  // blank-looking letters
  CHECK(displayLine("tag\U000E0041\U000E007F") == "tag\\U000e0041\\U000e007f");
  CHECK(displayLine("pua\ue000\U000F0000") == "pua\\ue000\\U000f0000");
  CHECK(displayLine("non\ufffe\U0001FFFF") == "non\\ufffe\\U0001ffff");
  CHECK(displayLine("ls\u00a0-la\u2003x\u3000y") == "ls\\u00a0-la\\u2003x\\u3000y");
  CHECK(displayBlock("a\u2028b\u2029c") == "a\\u2028b\\u2029c");
  // Variation selectors: one emoji presentation selector after a shown character stays, every
  // other one (a run of them smuggles bytes) is escaped.
  CHECK(displayLine("\u2764\ufe0f") == "\u2764\ufe0f");
  CHECK(displayLine("\u2764\ufe0f\ufe0f") == "\u2764\ufe0f\\ufe0f");
  CHECK(displayLine("a\ufe00") == "a\\ufe00");
  CHECK(displayLine("\ufe0f") == "\\ufe0f");
  CHECK(displayLine("a \ufe0f") == "a \\ufe0f");
  CHECK(displayLine("a\U000E0100") == "a\\U000e0100");
  // Combining marks: two on a character are shown, more are escaped (they paint over lines).
  CHECK(displayLine("e\u0323\u0302") == "e\u0323\u0302");
  CHECK(displayLine("e\u0301\u0302\u0303") == "e\u0301\u0302\\u0303");
  CHECK(displayLine("\u0301x") == "\\u0301x");
  // Ordinary text from every script is left alone.
  CHECK(displayLine("h\u00e9llo \u4e2d\u6587 \u0645\u0631\u062d\u0628\u0627 \U0001F600") ==
        "h\u00e9llo \u4e2d\u6587 \u0645\u0631\u062d\u0628\u0627 \U0001F600");
}

TEST_CASE("display text: invalid UTF-8 bytes are shown as \\x escapes >= \\x80") {
  CHECK(displayLine("a\xff"
                    "b") == "a\\xffb");
  CHECK(displayLine("\xc0\xaf") == "\\xc0\\xaf");                    // overlong '/'
  CHECK(displayLine("\xed\xa0\x80") == "\\xed\\xa0\\x80");           // a surrogate
  CHECK(displayLine("\xf4\x90\x80\x80") == "\\xf4\\x90\\x80\\x80");  // above U+10FFFF
  CHECK(displayLine("cut \xe2\x82") == "cut \\xe2\\x82");
  CHECK(displayLine("\x80") == "\\x80");
}

TEST_CASE("display text: newlines are \\n on one line and line breaks in a block") {
  CHECK(displayLine("ls\nrm -rf /") == "ls\\nrm -rf /");
  CHECK(displayLine("a\r\nb\tc") == "a\\r\\nb\\tc");
  CHECK(displayBlock("one\ntwo\n") == "one\ntwo\n");
  CHECK(displayBlock("a\r\nb\tc") == "a\\r\nb\\tc");
}

TEST_CASE("display text: long space runs and trailing spaces are counted, not hidden") {
  std::string padded = "ls -la notes" + std::string(200, ' ') + "; rm -rf notes .git";
  CHECK(displayLine(padded) == "ls -la notes\\[200 spaces]; rm -rf notes .git");
  CHECK(displayLine("a" + std::string(15, ' ') + "b") == "a" + std::string(15, ' ') + "b");
  CHECK(displayLine("a" + std::string(16, ' ') + "b") == "a\\[16 spaces]b");
  CHECK(displayLine("ls -la  x") == "ls -la  x");
  CHECK(displayLine("trailing ") == "trailing\\[1 space]");
  CHECK(displayLine("notes.txt   ") == "notes.txt\\[3 spaces]");
  // In a block, indentation stays; very deep runs and spaces before a line break are counted.
  CHECK(displayBlock("    indented\n") == "    indented\n");
  CHECK(displayBlock("x" + std::string(31, ' ') + "y") == "x" + std::string(31, ' ') + "y");
  CHECK(displayBlock("x" + std::string(40, ' ') + "y") == "x\\[40 spaces]y");
  CHECK(displayBlock("line  \nnext") == "line\\[2 spaces]\nnext");
  // Other padding is escaped character by character, so it cannot hide anything either.
  CHECK(displayLine(std::string(3, '\t') + "x") == "\\t\\t\\tx");
}

TEST_CASE("display text: a backslash is doubled only where it would read as an escape") {
  CHECK(displayLine("C:\\dir\\file") == "C:\\dir\\file");
  CHECK(displayLine("cd my\\ dir") == "cd my\\ dir");
  CHECK(displayLine("printf 'a\\nb'") == "printf 'a\\\\nb'");  // a literal \n is not a newline
  CHECK(displayLine("\\x1b") == "\\\\x1b");
  CHECK(displayLine("\\u202e \\U000e0041 \\[3 spaces]") ==
        "\\\\u202e \\\\U000e0041 \\\\[3 spaces]");
  CHECK(displayLine("\\\\") == "\\\\\\");  // two backslashes: the first doubled, the last alone
  CHECK(displayLine("a\\\x1b") == "a\\\\\\x1b");  // backslash then a real ESC
  CHECK(displayLine("end\\") == "end\\");
  CHECK(displayLine("x\\" + std::string(20, ' ') + "y") == "x\\\\\\[20 spaces]y");
  CHECK(displayBlock("x\\\ny") == "x\\\ny");
  // JSON text and display text keep their backslashes: they already are escapes.
  DisplayOptions asIs{DisplayLayout::LINE, DisplayBackslashes::AS_IS};
  CHECK(displayText("{\"a\":\"x\\ny\\u001b\"}", asIs) == "{\"a\":\"x\\ny\\u001b\"}");
  CHECK(displayText("raw\x1b and \u202e", asIs) == "raw\\x1b and \\u202e");
}

TEST_CASE("display text: reads back to exactly the input, in both layouts") {
  for (const std::string& input : corpus()) {
    CHECK_MESSAGE(readBack(displayLine(input)) == input, displayLine(input));
    CHECK_MESSAGE(readBack(displayBlock(input)) == input, displayBlock(input));
  }
}

TEST_CASE("display text: shown again AS_IS, display text is unchanged (no double escaping)") {
  for (const std::string& input : corpus()) {
    for (DisplayLayout layout : {DisplayLayout::LINE, DisplayLayout::BLOCK}) {
      std::string once = displayText(input, {layout, DisplayBackslashes::MARK});
      CHECK(displayText(once, {layout, DisplayBackslashes::AS_IS}) == once);
    }
  }
}

TEST_CASE("display text: fed in pieces (even split UTF-8) it equals one pass") {
  for (const std::string& input : corpus()) {
    for (DisplayOptions o : {DisplayOptions{}, BLOCK}) {
      DisplayEscaper byByte(o);
      std::string pieces;
      for (char c : input) pieces += byByte.feed(std::string_view(&c, 1));
      pieces += byByte.finish();
      CHECK_MESSAGE(pieces == displayText(input, o), input);
      // And again with the same escaper: finish() readies it for a new text.
      std::string again = byByte.feed(input);
      again += byByte.finish();
      CHECK(again == displayText(input, o));
    }
  }
  // flush() lets output pause without holding anything back.
  DisplayEscaper e(BLOCK);
  CHECK(e.feed("Hello  ") == "Hello");
  CHECK(e.flush() == "  ");
  CHECK(e.feed("a\\") == "a");
  CHECK(e.flush() == "\\\\");
  CHECK(e.feed("\xe2\x80") == "");
  CHECK(e.flush() == "\\xe2\\x80");
}

TEST_CASE("display cut: within the budget, never inside an escape, and says what it left out") {
  DisplayCut whole = displayCut("short", 100);
  CHECK(whole.text == "short");
  CHECK(whole.omittedBytes == 0);
  DisplayCut cut = displayCut(std::string(1000, 'x'), 100);
  CHECK(cut.text == std::string(97, 'x') + "…");
  CHECK(cut.text.size() == 100);
  CHECK(cut.omittedBytes == 903);
  // The budget ends inside "\x1b": the whole escape goes, and the byte counts as left out.
  cut = displayCut("abcdef\x1bzzzz", 12);
  CHECK(cut.text == "abcdef…");
  CHECK(cut.omittedBytes == 5);
  cut = displayCut("ab\u4e2d\u6587\u5b57", 8);
  CHECK(cut.text == "ab\u4e2d…");
  CHECK(cut.omittedBytes == 6);
  cut = displayCut("ls" + std::string(300, ' ') + "; rm -rf x", 30);
  CHECK(cut.text == "ls\\[300 spaces]; rm -rf x");
  for (const std::string& input : corpus()) {
    for (size_t budget : {0, 3, 4, 5, 9, 20, 64}) {
      DisplayCut c = displayCut(input, budget);
      CHECK(c.text.size() <= std::max<size_t>(budget, 3));
      std::string shown = c.omittedBytes ? c.text.substr(0, c.text.size() - 3) : c.text;
      CHECK(displayLine(input).compare(0, shown.size(), shown) == 0);
    }
  }
}

TEST_CASE("display text: linear in the input, and the output stays within 6 bytes per byte") {
  std::string hostile;
  for (int i = 0; i < 200000; ++i) hostile += i % 7 == 0 ? "\x1b\\x " : "\u202e\xff\u0301";
  auto start = std::chrono::steady_clock::now();
  std::string d = displayLine(hostile);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start)
                .count();
  CHECK(d.size() <= 6 * hostile.size());
  CHECK(ms < testing::timeLimit(std::chrono::milliseconds(2000)).count());
  std::string spaces(1 << 20, ' ');
  CHECK(displayLine(spaces + "x") == "\\[1048576 spaces]x");
  std::string lines;
  for (int i = 0; i < 1000; ++i) lines += " \n";
  CHECK(displayBlock(lines).size() <= 6 * lines.size());
}

}  // namespace
}  // namespace chitin
