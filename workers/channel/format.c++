// SPDX-License-Identifier: Apache-2.0
// Markdown to Telegram HTML, Slack mrkdwn and plain text (see format.h).
// Runs in: worker (sandboxed)
//
// Not a CommonMark implementation: a small, total converter for what models write. Blocks are
// found line by line (fenced code, headings, quotes, list items, paragraphs); inline markup is
// matched by searching for a closing marker, and only a marker that finds its partner becomes
// markup, so the output is always well nested and an unbalanced or overlapping marker is just
// text. Every search is bounded or remembered (a marker without a partner from position p has
// none from any later position), so hostile input costs linear time, and nesting deeper than
// MAX_DEPTH is emitted as text.

#include <cstdint>
#include <map>

#include "format.h"

namespace chitin::channel {

namespace {

constexpr int MAX_DEPTH = 8;
constexpr size_t MAX_LINK_TEXT = 1000;  // bytes searched for a link's "]" and its ")"
constexpr size_t MAX_LINK_URL = 2000;

bool isSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool isAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool isPunct(char c) { return c > ' ' && c < 0x7f && !isAlnum(c); }

// What each format writes for each construct.
class Writer {
 public:
  explicit Writer(Format format) : format_(format) {}

  void text(std::string_view s, std::string& out) const {
    if (format_ == Format::PLAIN) {
      out += s;
      return;
    }
    for (char c : s) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        default:
          out += c;
      }
    }
  }

  // kind: 'b' bold, 'i' italic, 's' strike, 'c' code
  void span(char kind, const std::string& inner, std::string& out) const {
    if (format_ == Format::PLAIN) {
      out += inner;
    } else if (format_ == Format::TELEGRAM_HTML) {
      const char* tag = kind == 'b' ? "b" : kind == 'i' ? "i" : kind == 's' ? "s" : "code";
      out += std::string("<") + tag + ">" + inner + "</" + tag + ">";
    } else {
      const char* mark = kind == 'b' ? "*" : kind == 'i' ? "_" : kind == 's' ? "~" : "`";
      out += mark + inner + mark;
    }
  }

  void link(const std::string& inner, std::string_view url, std::string& out) const {
    if (format_ == Format::TELEGRAM_HTML) {
      out += "<a href=\"";
      for (char c : url) {
        if (c == '"') {
          out += "&quot;";
        } else {
          text(std::string_view(&c, 1), out);
        }
      }
      out += "\">" + inner + "</a>";
    } else if (format_ == Format::SLACK_MRKDWN) {
      out += "<";
      text(url, out);
      out += "|" + inner + ">";
    } else if (inner == url) {
      out += url;
    } else {
      out += inner + " (" + std::string(url) + ")";
    }
  }

  void codeBlock(std::string_view lang, std::string_view code, std::string& out) const {
    if (format_ == Format::TELEGRAM_HTML) {
      std::string cleanLang;
      for (char c : lang) {
        if (isAlnum(c) || c == '_' || c == '+' || c == '-') cleanLang += c;
      }
      out += cleanLang.empty() ? "<pre><code>" : "<pre><code class=\"language-" + cleanLang + "\">";
      text(code, out);
      out += "</code></pre>";
    } else if (format_ == Format::SLACK_MRKDWN) {
      out += "```\n";
      text(code, out);
      out += "\n```";
    } else {
      out += code;
    }
  }

  void heading(const std::string& inner, std::string& out) const {
    if (format_ == Format::PLAIN) {
      out += inner;
    } else {
      span('b', inner, out);
    }
  }

  void quote(const std::string& inner, std::string& out) const {
    if (format_ == Format::TELEGRAM_HTML) {
      out += "<blockquote>" + inner + "</blockquote>";
      return;
    }
    // "> " before every line (mrkdwn renders it, and plain text reads it as a quote).
    out += "> ";
    for (char c : inner) {
      out += c;
      if (c == '\n') out += "> ";
    }
  }

  std::string_view bullet() const { return format_ == Format::PLAIN ? "- " : "\u2022 "; }

 private:
  Format format_;
};

// Inline markup of one block.
class Inline {
 public:
  Inline(const Writer& writer, std::string_view s) : w_(writer), s_(s) {}

  std::string run() {
    std::string out;
    render(0, s_.size(), 0, out);
    return out;
  }

 private:
  // Renders s_[begin, end) into out.
  void render(size_t begin, size_t end, int depth, std::string& out) {
    // "No closer for this marker at or after position p (before `end`)": valid for this range.
    std::map<std::string, size_t> noCloser;
    size_t i = begin;
    size_t textStart = i;
    auto flush = [&](size_t upTo) {
      if (upTo > textStart) w_.text(s_.substr(textStart, upTo - textStart), out);
    };
    while (i < end) {
      char c = s_[i];
      if (c == '\\' && i + 1 < end && isPunct(s_[i + 1])) {
        flush(i);
        w_.text(s_.substr(i + 1, 1), out);
        i += 2;
        textStart = i;
      } else if (c == '`') {
        size_t run = runLength(i, end, '`');
        size_t close = findCodeClose(i + run, end, run, noCloser);
        if (close == std::string::npos) {
          i += run;
          continue;
        }
        flush(i);
        std::string_view code = s_.substr(i + run, close - i - run);
        if (code.size() >= 2 && code.front() == ' ' && code.back() == ' ') {
          code = code.substr(1, code.size() - 2);
        }
        std::string inner;
        w_.text(code, inner);
        w_.span('c', inner, out);
        i = close + run;
        textStart = i;
      } else if (c == '[' && depth < MAX_DEPTH) {
        size_t textEnd, urlBegin, urlEnd;
        if (!parseLink(i, end, textEnd, urlBegin, urlEnd)) {
          ++i;
          continue;
        }
        flush(i);
        std::string_view url = s_.substr(urlBegin, urlEnd - urlBegin);
        std::string inner;
        render(i + 1, textEnd, depth + 1, inner);
        if (safeUrl(url)) {
          w_.link(inner, url, out);
        } else {
          // Not a scheme a chat client should open (javascript:, file:): show it, inert.
          out += inner;
          w_.text(" (", out);
          w_.text(url, out);
          w_.text(")", out);
        }
        i = urlEnd + 1;
        textStart = i;
      } else if ((c == '*' || c == '_' || c == '~') && depth < MAX_DEPTH) {
        size_t run = runLength(i, end, c);
        size_t used = 0;
        if (emphasis(i, end, c, run, depth, noCloser, out, textStart, used)) {
          i += used;
          textStart = i;
        } else {
          i += run;
        }
      } else {
        ++i;
      }
    }
    flush(end);
  }

  size_t runLength(size_t i, size_t end, char c) const {
    size_t j = i;
    while (j < end && s_[j] == c) ++j;
    return j - i;
  }

  // The start of the next run of exactly `run` backticks in [from, end), or npos.
  size_t findCodeClose(size_t from, size_t end, size_t run, std::map<std::string, size_t>& no) {
    std::string key = "`" + std::to_string(run);
    auto known = no.find(key);
    if (known != no.end() && known->second <= from) return std::string::npos;
    for (size_t j = from; j < end;) {
      if (s_[j] != '`') {
        ++j;
        continue;
      }
      size_t n = runLength(j, end, '`');
      if (n == run) return j;
      j += n;
    }
    no[key] = from;
    return std::string::npos;
  }

  // [text](url) at i: the positions of "]", and of the URL.
  bool parseLink(size_t i, size_t end, size_t& textEnd, size_t& urlBegin, size_t& urlEnd) const {
    int nesting = 0;
    size_t limit = std::min(end, i + MAX_LINK_TEXT);
    size_t j = i + 1;
    for (; j < limit; ++j) {
      if (s_[j] == '\\') {
        ++j;
      } else if (s_[j] == '[') {
        ++nesting;
      } else if (s_[j] == ']') {
        if (nesting-- == 0) break;
      } else if (s_[j] == '\n' && j + 1 < end && s_[j + 1] == '\n') {
        return false;
      }
    }
    if (j >= limit || j + 1 >= end || s_[j + 1] != '(' || j == i + 1) return false;
    textEnd = j;
    urlBegin = j + 2;
    int parens = 0;
    size_t urlLimit = std::min(end, urlBegin + MAX_LINK_URL);
    for (size_t k = urlBegin; k < urlLimit; ++k) {
      char c = s_[k];
      if (isSpace(c) || c == '<' || c == '>' || c == '"') return false;
      if (c == '(') ++parens;
      if (c == ')' && parens-- == 0) {
        urlEnd = k;
        return k > urlBegin;
      }
    }
    return false;
  }

  static bool safeUrl(std::string_view url) {
    for (std::string_view scheme : {"http://", "https://", "mailto:", "tg://"}) {
      if (url.size() > scheme.size()) {
        bool same = true;
        for (size_t k = 0; k < scheme.size() && same; ++k) {
          char c = url[k];
          if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
          same = c == scheme[k];
        }
        if (same) return true;
      }
    }
    return false;
  }

  // *x*, _x_, **x**, __x__, ***x***, ~~x~~ at i (a run of `run` markers `c`). On success
  // writes the span, sets `used` to the bytes consumed and returns true.
  bool emphasis(size_t i, size_t end, char c, size_t run, int depth,
                std::map<std::string, size_t>& no, std::string& out, size_t textStart,
                size_t& used) {
    size_t width = c == '~' ? 2 : std::min<size_t>(run, 3);
    if (c == '~' && run != 2) return false;
    if (run != width) return false;  // a longer run (****) is just text
    size_t inner = i + width;
    // Opening: something to emphasize right after, and no word character before an underscore
    // (snake_case_names stay as they are).
    if (inner >= end || isSpace(s_[inner])) return false;
    if (c == '_' && i > 0 && isAlnum(s_[i - 1])) return false;
    std::string marker(width, c);
    auto known = no.find(marker);
    if (known != no.end() && known->second <= inner) return false;
    size_t close = std::string::npos;
    for (size_t j = inner; j < end;) {
      if (s_[j] == '`') {  // code spans hide markers
        size_t n = runLength(j, end, '`');
        size_t codeClose = findCodeClose(j + n, end, n, no);
        j = codeClose == std::string::npos ? j + n : codeClose + n;
        continue;
      }
      if (s_[j] != c) {
        ++j;
        continue;
      }
      size_t n = runLength(j, end, c);
      bool fits =
          n == width && !isSpace(s_[j - 1]) && !(c == '_' && j + n < end && isAlnum(s_[j + n]));
      if (fits && j > inner) {
        close = j;
        break;
      }
      j += n;
    }
    if (close == std::string::npos) {
      no[marker] = inner;
      return false;
    }
    if (i > textStart) w_.text(s_.substr(textStart, i - textStart), out);
    std::string content;
    render(inner, close, depth + 1, content);
    if (c == '~') {
      w_.span('s', content, out);
    } else if (width == 1) {
      w_.span('i', content, out);
    } else if (width == 2) {
      w_.span('b', content, out);
    } else {
      std::string italic;
      w_.span('i', content, italic);
      w_.span('b', italic, out);
    }
    used = close + width - i;
    return true;
  }

  const Writer& w_;
  std::string_view s_;
};

// Block structure, line by line (stripIndent: format.h).

// "```lang" / "~~~": the marker run (3+), else empty.
std::string_view fenceOf(std::string_view line) {
  std::string_view s = stripIndent(line);
  if (s.size() < 3 || (s[0] != '`' && s[0] != '~')) return {};
  size_t n = 0;
  while (n < s.size() && s[n] == s[0]) ++n;
  if (n < 3) return {};
  return s.substr(0, n);
}

bool closesFence(std::string_view line, std::string_view opener) {
  std::string_view f = fenceOf(line);
  if (f.empty() || f[0] != opener[0] || f.size() < opener.size()) return false;
  std::string_view rest = stripIndent(line).substr(f.size());
  for (char c : rest) {
    if (!isSpace(c)) return false;
  }
  return true;
}

size_t headingLevel(std::string_view line) {
  std::string_view s = stripIndent(line);
  size_t n = 0;
  while (n < s.size() && s[n] == '#') ++n;
  if (n == 0 || n > 6 || n >= s.size() || s[n] != ' ') return 0;
  return n;
}

// "- item", "* item", "+ item" (any indent): the indent and the item's text.
bool listItem(std::string_view line, std::string_view& indent, std::string_view& rest) {
  size_t n = 0;
  while (n < line.size() && line[n] == ' ') ++n;
  if (n + 1 >= line.size()) return false;
  char m = line[n];
  if ((m != '-' && m != '*' && m != '+') || line[n + 1] != ' ') return false;
  indent = line.substr(0, n);
  rest = line.substr(n + 2);
  return true;
}

bool quoteLine(std::string_view line, std::string_view& rest) {
  std::string_view s = stripIndent(line);
  if (s.empty() || s[0] != '>') return false;
  rest = s.substr(1);
  if (!rest.empty() && rest[0] == ' ') rest = rest.substr(1);
  return true;
}

}  // namespace

std::string_view stripIndent(std::string_view line, size_t max) {
  size_t n = 0;
  while (n < line.size() && n < max && line[n] == ' ') ++n;
  return line.substr(n);
}

std::string convertMarkdown(std::string_view markdown, Format format) {
  // Discord renders Markdown itself.
  if (format == Format::DISCORD_MARKDOWN) return std::string(markdown);
  Writer w(format);
  std::vector<std::string_view> lines;
  for (size_t start = 0;;) {
    size_t nl = markdown.find('\n', start);
    std::string_view line = markdown.substr(start, nl == std::string_view::npos ? nl : nl - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    start = nl + 1;
  }

  std::string out;
  std::string paragraph;  // consecutive plain lines, for emphasis across a line break
  bool haveParagraph = false;
  bool first = true;
  auto newline = [&]() {
    if (!first) out += '\n';
    first = false;
  };
  auto flushParagraph = [&]() {
    if (!haveParagraph) return;
    newline();
    out += Inline(w, paragraph).run();
    paragraph.clear();
    haveParagraph = false;
  };

  for (size_t i = 0; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    std::string_view fence = fenceOf(line);
    std::string_view rest, indent;
    if (!fence.empty() && !(fence[0] == '`' && stripIndent(line).substr(fence.size()).find('`') !=
                                                   std::string::npos)) {
      flushParagraph();
      std::string_view lang = stripIndent(line).substr(fence.size());
      while (!lang.empty() && isSpace(lang.front())) lang.remove_prefix(1);
      lang = lang.substr(0, lang.find(' '));
      std::string code;
      size_t j = i + 1;
      for (; j < lines.size() && !closesFence(lines[j], fence); ++j) {
        if (j > i + 1) code += '\n';
        code += lines[j];
      }
      newline();
      w.codeBlock(lang, code, out);
      i = j;  // the closing fence (or past the end: an unclosed block runs to the end)
    } else if (size_t level = headingLevel(line)) {
      flushParagraph();
      std::string_view s = stripIndent(line).substr(level + 1);
      while (!s.empty() && (s.back() == '#' || s.back() == ' ')) s.remove_suffix(1);
      newline();
      w.heading(Inline(w, s).run(), out);
    } else if (quoteLine(line, rest)) {
      flushParagraph();
      std::string quoted(rest);
      while (i + 1 < lines.size() && quoteLine(lines[i + 1], rest)) {
        quoted += '\n';
        quoted += rest;
        ++i;
      }
      newline();
      w.quote(Inline(w, quoted).run(), out);
    } else if (listItem(line, indent, rest)) {
      flushParagraph();
      newline();
      out += indent;
      out += w.bullet();
      out += Inline(w, rest).run();
    } else if (stripIndent(line, SIZE_MAX).empty()) {
      flushParagraph();
      newline();
    } else {
      if (haveParagraph) paragraph += '\n';
      paragraph += line;
      haveParagraph = true;
    }
  }
  flushParagraph();
  return out;
}

}  // namespace chitin::channel
