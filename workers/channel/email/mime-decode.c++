// SPDX-License-Identifier: Apache-2.0
// Mail decoders (see mime-decode.h).
// Runs in: worker (sandboxed)

#include "mime-decode.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <vector>

namespace chitin::channel::email {

namespace {

constexpr char BASE64_ALPHABET[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

void appendCodePoint(std::string& out, uint32_t cp) {
  if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Windows-1252's 0x80..0x9F; 0 = undefined there.
constexpr uint16_t CP1252_HIGH[32] = {
    0x20AC, 0,      0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0,      0x017D, 0,      0,      0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0,      0x017E, 0x0178};

std::string fromSingleByte(std::string_view bytes, bool cp1252) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    auto c = static_cast<unsigned char>(ch);
    uint32_t cp = c;
    if (cp1252 && c >= 0x80 && c < 0xA0)
      cp = CP1252_HIGH[c - 0x80] ? CP1252_HIGH[c - 0x80] : 0xFFFD;
    appendCodePoint(out, cp);
  }
  return out;
}

bool validUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size() || (n == 2 && c < 0xC2)) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

std::string canonicalCharset(std::string_view charset) {
  std::string c = lowerAscii(trimSpace(charset));
  if (c.size() >= 2 && c.front() == '"' && c.back() == '"') c = c.substr(1, c.size() - 2);
  return c;
}

}  // namespace

std::string lowerAscii(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string truncateUtf8(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return std::string(s.substr(0, cut));
}

std::string trimSpace(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string decodeBase64(std::string_view in) {
  std::string out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    int v = base64Value(c);
    if (v < 0) continue;  // line breaks and junk
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  return out;
}

std::string encodeBase64(std::string_view in, size_t lineLength) {
  std::string out;
  out.reserve(in.size() * 4 / 3 + in.size() / 38 + 4);
  size_t column = 0;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t n = static_cast<uint32_t>(static_cast<unsigned char>(in[i])) << 16;
    if (i + 1 < in.size()) n |= static_cast<uint32_t>(static_cast<unsigned char>(in[i + 1])) << 8;
    if (i + 2 < in.size()) n |= static_cast<unsigned char>(in[i + 2]);
    out += BASE64_ALPHABET[(n >> 18) & 63];
    out += BASE64_ALPHABET[(n >> 12) & 63];
    out += i + 1 < in.size() ? BASE64_ALPHABET[(n >> 6) & 63] : '=';
    out += i + 2 < in.size() ? BASE64_ALPHABET[n & 63] : '=';
    column += 4;
    if (lineLength && column >= lineLength && i + 3 < in.size()) {
      out += "\r\n";
      column = 0;
    }
  }
  return out;
}

std::string decodeQuotedPrintable(std::string_view in, bool headerForm) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (headerForm && c == '_') {
      out += ' ';
    } else if (c == '=') {
      if (i + 2 < in.size() && hexValue(in[i + 1]) >= 0 && hexValue(in[i + 2]) >= 0) {
        out += static_cast<char>(hexValue(in[i + 1]) * 16 + hexValue(in[i + 2]));
        i += 2;
      } else {
        // A soft line break: "=" then optional trailing blanks, then CRLF or LF.
        size_t j = i + 1;
        while (j < in.size() && (in[j] == ' ' || in[j] == '\t')) ++j;
        if (j < in.size() && in[j] == '\r') ++j;
        if (j < in.size() && in[j] == '\n') {
          i = j;
        } else if (j == in.size()) {
          i = j - 1;
        } else {
          out += '=';  // not an escape: keep it, as most readers do
        }
      }
    } else {
      out += c;
    }
  }
  return out;
}

Charsets::Charsets() = default;

Charsets::~Charsets() {
  for (auto& [name, cd] : open_) {
    if (cd != reinterpret_cast<iconv_t>(-1)) iconv_close(cd);
  }
}

iconv_t Charsets::converter(const std::string& charset) {
  auto it = open_.find(charset);
  if (it != open_.end()) return it->second;
  // A bounded cache: a hostile sender naming thousands of charsets costs one miss each.
  if (open_.size() >= 64) return reinterpret_cast<iconv_t>(-1);
  iconv_t cd = iconv_open("UTF-8", charset.c_str());
  open_[charset] = cd;
  return cd;
}

std::string Charsets::toUtf8(std::string_view bytes, std::string_view charsetName) {
  std::string charset = canonicalCharset(charsetName);
  if (charset.empty() || charset == "utf-8" || charset == "utf8" || charset == "us-ascii" ||
      charset == "ascii" || charset == "unknown-8bit" || charset == "x-unknown") {
    return utf8OrLatin1(bytes);
  }
  if (charset == "iso-8859-1" || charset == "latin1" || charset == "iso8859-1")
    return fromSingleByte(bytes, false);
  if (charset == "windows-1252" || charset == "cp1252") return fromSingleByte(bytes, true);
  std::lock_guard<std::mutex> lock(mutex_);
  iconv_t cd = converter(charset);
  if (cd == reinterpret_cast<iconv_t>(-1)) return utf8OrLatin1(bytes);
  iconv(cd, nullptr, nullptr, nullptr, nullptr);  // reset the shift state
  std::string out;
  std::vector<char> input(bytes.begin(), bytes.end());
  char* in = input.data();
  size_t inLeft = input.size();
  char buffer[4096];
  while (inLeft > 0) {
    char* o = buffer;
    size_t outLeft = sizeof buffer;
    size_t rc = iconv(cd, &in, &inLeft, &o, &outLeft);
    out.append(buffer, static_cast<size_t>(o - buffer));
    if (rc == static_cast<size_t>(-1)) {
      if (errno == E2BIG) continue;
      // EILSEQ / EINVAL: one bad or truncated byte becomes U+FFFD and conversion goes on.
      out += "\xEF\xBF\xBD";
      ++in;
      --inLeft;
      iconv(cd, nullptr, nullptr, nullptr, nullptr);
    }
  }
  char* o = buffer;
  size_t outLeft = sizeof buffer;
  iconv(cd, nullptr, nullptr, &o, &outLeft);  // flush a pending shift sequence
  out.append(buffer, static_cast<size_t>(o - buffer));
  return out;
}

std::string utf8OrLatin1(std::string_view bytes) {
  return validUtf8(bytes) ? std::string(bytes) : fromSingleByte(bytes, true);
}

std::string decodeHeaderWords(std::string_view value, Charsets& charsets) {
  std::string out;
  std::string pendingSpace;  // whitespace after an encoded word, dropped if another follows
  bool lastWasWord = false;
  size_t i = 0;
  while (i < value.size()) {
    if (value.substr(i, 2) == "=?") {
      // =?charset?E?text?=  (charset may carry *lang, RFC 2231 section 5)
      size_t q1 = value.find('?', i + 2);
      size_t q2 = q1 == std::string_view::npos ? q1 : value.find('?', q1 + 1);
      size_t end = q2 == std::string_view::npos ? q2 : value.find("?=", q2 + 1);
      if (end != std::string_view::npos && q2 == q1 + 2 && end - i <= 1024) {
        std::string_view charset = value.substr(i + 2, q1 - i - 2);
        charset = charset.substr(0, charset.find('*'));
        char encoding = static_cast<char>(std::toupper(static_cast<unsigned char>(value[q1 + 1])));
        std::string_view text = value.substr(q2 + 1, end - q2 - 1);
        if ((encoding == 'B' || encoding == 'Q') && text.find(' ') == std::string_view::npos) {
          std::string raw =
              encoding == 'B' ? decodeBase64(text) : decodeQuotedPrintable(text, true);
          if (!lastWasWord) out += pendingSpace;
          pendingSpace.clear();
          out += charsets.toUtf8(raw, charset);
          lastWasWord = true;
          i = end + 2;
          continue;
        }
      }
    }
    char c = value[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (c == ' ' || c == '\t') pendingSpace += c;
      ++i;
      continue;
    }
    out += pendingSpace;
    pendingSpace.clear();
    size_t next = i + 1;
    while (next < value.size() && value[next] != ' ' && value[next] != '\t' &&
           value.substr(next, 2) != "=?")
      ++next;
    out += utf8OrLatin1(value.substr(i, next - i));
    lastWasWord = false;
    i = next;
  }
  if (!lastWasWord) out += pendingSpace;
  return out;
}

std::string encodeHeaderWords(std::string_view utf8) {
  bool plain = std::all_of(utf8.begin(), utf8.end(), [](char c) { return c >= 0x20 && c < 0x7F; });
  if (plain && utf8.find("=?") == std::string_view::npos) return std::string(utf8);
  // Each word holds at most 45 input bytes (60 base64 characters + 12 of framing <= 75),
  // cut on UTF-8 character boundaries so every word decodes on its own (RFC 2047 section 5).
  std::string out;
  size_t i = 0;
  while (i < utf8.size()) {
    size_t take = std::min<size_t>(45, utf8.size() - i);
    while (take > 0 && i + take < utf8.size() &&
           (static_cast<unsigned char>(utf8[i + take]) & 0xC0) == 0x80)
      --take;
    if (take == 0) take = std::min<size_t>(45, utf8.size() - i);
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + encodeBase64(utf8.substr(i, take)) + "?=";
    i += take;
  }
  return out;
}

std::string decodeExtendedValue(std::string_view value, Charsets& charsets) {
  size_t q1 = value.find('\'');
  size_t q2 = q1 == std::string_view::npos ? q1 : value.find('\'', q1 + 1);
  std::string_view charset =
      q2 == std::string_view::npos ? std::string_view() : value.substr(0, q1);
  std::string_view text = q2 == std::string_view::npos ? value : value.substr(q2 + 1);
  return charsets.toUtf8(percentDecode(text), charset);
}

std::string percentDecode(std::string_view text) {
  std::string raw;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && hexValue(text[i + 1]) >= 0 &&
        hexValue(text[i + 2]) >= 0) {
      raw += static_cast<char>(hexValue(text[i + 1]) * 16 + hexValue(text[i + 2]));
      i += 2;
    } else {
      raw += text[i];
    }
  }
  return raw;
}

}  // namespace chitin::channel::email

namespace chitin::channel::email {

namespace {

// Named entities common in mail; the rest stay as written.
const std::map<std::string_view, uint32_t>& namedEntities() {
  static const std::map<std::string_view, uint32_t> entities = {
      {"amp", '&'},      {"lt", '<'},        {"gt", '>'},       {"quot", '"'},
      {"apos", '\''},    {"nbsp", 0xA0},     {"copy", 0xA9},    {"reg", 0xAE},
      {"euro", 0x20AC},  {"hellip", 0x2026}, {"mdash", 0x2014}, {"ndash", 0x2013},
      {"lsquo", 0x2018}, {"rsquo", 0x2019},  {"ldquo", 0x201C}, {"rdquo", 0x201D},
      {"bull", 0x2022},  {"middot", 0xB7},   {"zwnj", 0x200C}};
  return entities;
}

std::string decodeEntities(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out += '&';
      continue;
    }
    std::string_view name = s.substr(i + 1, semi - i - 1);
    uint32_t cp = 0;
    if (!name.empty() && name[0] == '#') {
      bool hex = name.size() > 1 && (name[1] == 'x' || name[1] == 'X');
      for (char c : name.substr(hex ? 2 : 1)) {
        int v = hex ? hexValue(c) : (std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : -1);
        if (v < 0 || cp > 0x10FFFF) {
          cp = 0xFFFD;
          break;
        }
        cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(v);
      }
    } else {
      auto it = namedEntities().find(name);
      if (it == namedEntities().end()) {
        out += '&';
        continue;
      }
      cp = it->second;
    }
    appendCodePoint(out, cp == 0xA0 ? ' ' : cp);
    i = semi;
  }
  return out;
}

std::string attribute(std::string_view tag, std::string_view name) {
  std::string lower = lowerAscii(tag);
  size_t at = lower.find(std::string(name) + "=");
  if (at == std::string::npos) return "";
  at += name.size() + 1;
  char quote = at < tag.size() && (tag[at] == '"' || tag[at] == '\'') ? tag[at] : 0;
  size_t start = quote ? at + 1 : at;
  size_t end = quote ? tag.find(quote, start) : tag.find_first_of(" \t\r\n>", start);
  if (end == std::string_view::npos) end = tag.size();
  return decodeEntities(tag.substr(start, end - start));
}

// Where "</name" starts (any case) at or after `from`; the end of `html` when it never does.
size_t findClosingTag(std::string_view html, size_t from, const std::string& name) {
  for (size_t at = html.find("</", from); at != std::string_view::npos;
       at = html.find("</", at + 2)) {
    if (lowerAscii(html.substr(at + 2, name.size())) == name) return at;
  }
  return html.size();
}

}  // namespace

std::string htmlToText(std::string_view html) {
  std::string text;
  std::string href;      // of the open <a>
  size_t linkStart = 0;  // where its text began in `text`
  for (size_t i = 0; i < html.size();) {
    if (html[i] != '<') {
      size_t next = html.find('<', i);
      if (next == std::string_view::npos) next = html.size();
      text += decodeEntities(html.substr(i, next - i));
      i = next;
      continue;
    }
    if (html.substr(i, 4) == "<!--") {
      size_t end = html.find("-->", i + 4);
      i = end == std::string_view::npos ? html.size() : end + 3;
      continue;
    }
    size_t end = html.find('>', i);
    if (end == std::string_view::npos) break;
    std::string_view tag = html.substr(i + 1, end - i - 1);
    i = end + 1;
    bool closing = !tag.empty() && tag[0] == '/';
    std::string name = lowerAscii(tag.substr(
        closing ? 1 : 0, tag.find_first_of(" \t\r\n/>", closing ? 1 : 0) - (closing ? 1 : 0)));
    if (!closing && (name == "script" || name == "style" || name == "head" || name == "title")) {
      i = findClosingTag(html, i, name);
      continue;
    }
    if (name == "br" || name == "p" || name == "div" || name == "tr" || name == "table" ||
        name == "ul" || name == "ol" || name == "blockquote" || name == "pre" ||
        (name.size() == 2 && name[0] == 'h' && name[1] >= '1' && name[1] <= '6')) {
      text += '\n';
    } else if (name == "li" && !closing) {
      text += "\n- ";
    } else if (name == "td" || name == "th") {
      text += ' ';
    } else if (name == "a" && !closing) {
      href = attribute(tag, "href");
      linkStart = text.size();
    } else if (name == "a" && closing) {
      std::string shown = trimSpace(text.substr(std::min(linkStart, text.size())));
      if (!href.empty() && href != shown && href != "mailto:" + shown && href.rfind("#", 0) != 0) {
        text += " (" + href + ")";
      }
      href.clear();
    }
  }
  // Collapse runs of blanks; at most one empty line in a row.
  std::string out;
  int newlines = 0;
  bool space = false;
  for (char c : text) {
    if (c == '\r') continue;
    if (c == '\n') {
      if (++newlines <= 2 && !out.empty()) out += '\n';
      space = false;
      continue;
    }
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space && newlines == 0 && !out.empty()) out += ' ';
    space = false;
    newlines = 0;
    out += c;
  }
  return trimSpace(out);
}

}  // namespace chitin::channel::email
