// SPDX-License-Identifier: Apache-2.0
// Markdown conversion per platform and chunking at platform limits.
// Runs in: tests

#include <doctest/doctest.h>

#include <chrono>

#include "format.h"
#include "test-time-limit.h"

namespace chitin::channel {
namespace {

std::string tg(std::string_view md) { return convertMarkdown(md, Format::TELEGRAM_HTML); }
std::string slack(std::string_view md) { return convertMarkdown(md, Format::SLACK_MRKDWN); }
std::string plain(std::string_view md) { return convertMarkdown(md, Format::PLAIN); }

// Every tag opened is closed, in order: what Telegram's entity parser requires.
bool wellNested(const std::string& html) {
  std::vector<std::string> stack;
  for (size_t i = html.find('<'); i != std::string::npos; i = html.find('<', i + 1)) {
    size_t end = html.find('>', i);
    if (end == std::string::npos) return false;
    std::string tag = html.substr(i + 1, end - i - 1);
    if (!tag.empty() && tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1)) return false;
      stack.pop_back();
    } else {
      stack.push_back(tag.substr(0, tag.find(' ')));
    }
  }
  return stack.empty();
}

size_t utf16Length(const std::string& s) {
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    auto b = static_cast<unsigned char>(s[i]);
    if ((b & 0xc0) == 0x80) continue;
    n += b >= 0xf0 ? 2 : 1;
  }
  return n;
}

bool validUtf8(const std::string& s) {
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

TEST_CASE("telegram html: <, > and & are escaped in text, code and code blocks") {
  CHECK(tg("a < b && c > d") == "a &lt; b &amp;&amp; c &gt; d");
  CHECK(tg("`<script>&amp;`") == "<code>&lt;script&gt;&amp;amp;</code>");
  CHECK(tg("```html\n<b>x</b> & y\n```") ==
        "<pre><code class=\"language-html\">&lt;b&gt;x&lt;/b&gt; &amp; y</code></pre>");
  CHECK(tg("<b>not markup</b>") == "&lt;b&gt;not markup&lt;/b&gt;");
}

TEST_CASE("telegram html: bold, italic, strike, code, links, headings, lists, quotes") {
  CHECK(tg("**bold** and __also__") == "<b>bold</b> and <b>also</b>");
  CHECK(tg("*it* and _it_") == "<i>it</i> and <i>it</i>");
  CHECK(tg("***both***") == "<b><i>both</i></b>");
  CHECK(tg("~~gone~~") == "<s>gone</s>");
  CHECK(tg("use `ls -l`") == "use <code>ls -l</code>");
  CHECK(tg("[site](https://example.com/a?b=1&c=2)") ==
        "<a href=\"https://example.com/a?b=1&amp;c=2\">site</a>");
  // A quote could end the attribute: such a URL is no link.
  CHECK(tg("[site](https://x.test/\"onclick)") == "[site](https://x.test/\"onclick)");
  CHECK(tg("# Title") == "<b>Title</b>");
  CHECK(tg("## Sub ##") == "<b>Sub</b>");
  CHECK(tg("- one\n- **two**\n  * nested") == "\u2022 one\n\u2022 <b>two</b>\n  \u2022 nested");
  CHECK(tg("> quoted\n> more") == "<blockquote>quoted\nmore</blockquote>");
  CHECK(tg("para one\n\npara *two*\nline") == "para one\n\npara <i>two</i>\nline");
  CHECK(tg("```\nplain block\n```") == "<pre><code>plain block</code></pre>");
  CHECK(tg("bold **across\nlines**") == "bold <b>across\nlines</b>");
}

TEST_CASE("telegram html: nested markup nests, unbalanced markers stay text, output is valid") {
  CHECK(tg("**bold *and italic* bold**") == "<b>bold <i>and italic</i> bold</b>");
  CHECK(tg("**unclosed bold") == "**unclosed bold");
  CHECK(tg("*a **b* c**") == "<i>a **b</i> c**");
  CHECK(tg("snake_case_name and 2*3*4") == "snake_case_name and 2<i>3</i>4");
  CHECK(tg("a * b * c") == "a * b * c");
  CHECK(tg("`unclosed code and **bold**") == "`unclosed code and <b>bold</b>");
  CHECK(tg("**code `**` inside**") == "<b>code <code>**</code> inside</b>");
  CHECK(tg("\\*not italic\\*") == "*not italic*");
  CHECK(tg("[unclosed link](http://x") == "[unclosed link](http://x");
  CHECK(tg("[x](javascript:alert(1))") == "x (javascript:alert(1))");
  CHECK(tg("```py\nunclosed block") ==
        "<pre><code class=\"language-py\">unclosed block</code></pre>");
  for (const char* md : {"**a *b** c*", "__a _b__ c_", "~~a **b~~ c**", "[a **b](http://x) c**",
                         "***a** b*", "*a `b* c` d*", "[*a*](http://x)*", "**[a](http://x**)"}) {
    CAPTURE(md);
    CHECK(wellNested(tg(md)));
  }
}

TEST_CASE("telegram html: hostile input converts in linear time and nests boundedly") {
  std::string manyOpeners, deep, brackets;
  for (int i = 0; i < 20000; ++i) manyOpeners += "**a *b _c ~~d `e [f ";
  for (int i = 0; i < 5000; ++i) deep += "**a *";
  for (int i = 0; i < 50000; ++i) brackets += "[";
  auto start = std::chrono::steady_clock::now();
  CHECK(wellNested(tg(manyOpeners)));
  CHECK(wellNested(tg(deep)));
  CHECK(tg(brackets) == brackets);
  CHECK(std::chrono::steady_clock::now() - start < testing::timeLimit(std::chrono::seconds(3)));
}

TEST_CASE("slack mrkdwn: markers, links, escapes") {
  CHECK(slack("**bold** *it* ~~s~~ `c`") == "*bold* _it_ ~s~ `c`");
  CHECK(slack("[docs](https://x.test/a) & <tag>") == "<https://x.test/a|docs> &amp; &lt;tag&gt;");
  CHECK(slack("```js\nif (a < b) {}\n```") == "```\nif (a &lt; b) {}\n```");
  CHECK(slack("# Head") == "*Head*");
  CHECK(slack("> q1\n> q2") == "> q1\n> q2");
  CHECK(slack("- item") == "\u2022 item");
}

TEST_CASE("plain: markers dropped, links as text (url), code kept verbatim") {
  CHECK(plain("**bold** and *it* and `code`") == "bold and it and code");
  CHECK(plain("[docs](https://x.test)") == "docs (https://x.test)");
  CHECK(plain("[https://x.test](https://x.test)") == "https://x.test");
  CHECK(plain("```\n<raw> & **kept**\n```") == "<raw> & **kept**");
  CHECK(plain("# Title\n- a\n- b") == "Title\n- a\n- b");
  CHECK(plain("x < y & z") == "x < y & z");
}

TEST_CASE("discord: Markdown passes unchanged") {
  CHECK(convertMarkdown("**b** <x> & `c`", Format::DISCORD_MARKDOWN) == "**b** <x> & `c`");
}

TEST_CASE("chunks: short text is one chunk; limits in bytes, code points and UTF-16") {
  CHECK(chunkText("hello", 10, Unit::BYTES) == std::vector<std::string>{"hello"});
  CHECK(chunkText("", 10, Unit::BYTES).empty());
  // "é" is 2 bytes, 1 code point, 1 UTF-16 unit; "😀" is 4 bytes, 1 code point, 2 UTF-16 units.
  std::string s = "\u00e9\u00e9\u00e9\u00e9";  // 8 bytes
  CHECK(chunkText(s, 4, Unit::BYTES) == std::vector<std::string>{"\u00e9\u00e9", "\u00e9\u00e9"});
  CHECK(chunkText(s, 4, Unit::CODE_POINTS).size() == 1);
  std::string emoji = "\U0001F600\U0001F600\U0001F600";  // 6 UTF-16 units
  CHECK(chunkText(emoji, 4, Unit::CODE_POINTS).size() == 1);
  auto cut = chunkText(emoji, 4, Unit::UTF16);
  REQUIRE(cut.size() == 2);
  CHECK(cut[0] == "\U0001F600\U0001F600");
  CHECK(cut[1] == "\U0001F600");
}

TEST_CASE("chunks: never split a UTF-8 sequence, never exceed the limit") {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "a\u00e9\u4e2d\U0001F600 ";
  for (Unit unit : {Unit::BYTES, Unit::CODE_POINTS, Unit::UTF16}) {
    for (size_t limit : {5u, 7u, 13u, 64u, 4096u}) {
      CAPTURE(limit);
      auto chunks = chunkText(text, limit, unit);
      for (auto& c : chunks) {
        CHECK(validUtf8(c));
        if (unit == Unit::BYTES) CHECK(c.size() <= limit);
        if (unit == Unit::UTF16) CHECK(utf16Length(c) <= limit);
      }
    }
  }
  // A 4096-unit Telegram limit with astral characters: 3000 emoji = 6000 units = 2 chunks.
  std::string emoji;
  for (int i = 0; i < 3000; ++i) emoji += "\U0001F600";
  auto chunks = chunkText(emoji, 4096, Unit::UTF16);
  REQUIRE(chunks.size() == 2);
  CHECK(utf16Length(chunks[0]) == 4096);
  CHECK(utf16Length(chunks[1]) == 6000 - 4096);
}

TEST_CASE("chunks: paragraph before line before word; an overlong word is hard-cut") {
  CHECK(chunkText("aaaa bbbb\ncccc\n\ndddd", 16, Unit::BYTES) ==
        std::vector<std::string>{"aaaa bbbb\ncccc", "dddd"});
  CHECK(chunkText("aaaa bbbb\ncccc dddd", 16, Unit::BYTES) ==
        std::vector<std::string>{"aaaa bbbb", "cccc dddd"});
  CHECK(chunkText("aaaa bbbb cccc dddd", 12, Unit::BYTES) ==
        std::vector<std::string>{"aaaa bbbb", "cccc dddd"});
  CHECK(chunkText("abcdefghijklmnop", 5, Unit::BYTES) ==
        std::vector<std::string>{"abcde", "fghij", "klmno", "p"});
  // A break exactly at the limit is used, not a hard cut before it.
  CHECK(chunkText("abcde fgh", 5, Unit::BYTES) == std::vector<std::string>{"abcde", "fgh"});
}

TEST_CASE("chunks: a cut inside a code block closes it and reopens it with its language") {
  std::string code = "intro\n```python\n";
  for (int i = 0; i < 40; ++i) code += "print(" + std::to_string(i) + ")\n";
  code += "```\nafter";
  auto chunks = chunkText(code, 120, Unit::UTF16);
  REQUIRE(chunks.size() > 2);
  for (size_t i = 0; i < chunks.size(); ++i) {
    CAPTURE(chunks[i]);
    CHECK(utf16Length(chunks[i]) <= 120);
    // Each chunk has balanced fences, and every chunk after the first that continues code
    // reopens it as python.
    size_t fences = 0;
    for (size_t p = chunks[i].find("```"); p != std::string::npos; p = chunks[i].find("```", p + 3))
      ++fences;
    CHECK(fences % 2 == 0);
    if (i > 0 && chunks[i].find("print(") != std::string::npos) {
      CHECK(chunks[i].rfind("```python\n", 0) == 0);
    }
    // Converted, each is a closed <pre> block.
    CHECK(wellNested(tg(chunks[i])));
  }
  CHECK(chunks.back().find("after") != std::string::npos);
  // Nothing lost: every line is somewhere.
  std::string all;
  for (auto& c : chunks) all += c + "\n";
  for (int i = 0; i < 40; ++i)
    CHECK(all.find("print(" + std::to_string(i) + ")") != std::string::npos);
}

TEST_CASE("chunks: the block's own closing fence right after a cut is not reopened") {
  std::string code = "```\n" + std::string(50, 'x') + "\n```\ntail";
  auto chunks = chunkText(code, 60, Unit::BYTES);
  REQUIRE(chunks.size() == 2);
  CHECK(chunks[0] == "```\n" + std::string(50, 'x') + "\n```");
  CHECK(chunks[1] == "tail");
}

TEST_CASE("chunks: a limit too small for the fences still makes progress and loses nothing") {
  std::string code = "```c\nint main() { return 0; }\n```";
  auto chunks = chunkText(code, 6, Unit::BYTES);
  std::string joined;
  for (auto& c : chunks) {
    CHECK(c.size() <= 6);
    joined += c;
  }
  CHECK(joined.find("main()") != std::string::npos);
}

}  // namespace
}  // namespace chitin::channel
