// SPDX-License-Identifier: Apache-2.0
// IRC lines in and out (see irc-message.h).
// Runs in: worker (sandboxed)

#include "irc-message.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <ctime>

#include "../format.h"

namespace chitin::channel::irc {

namespace {

// IRCv3 message-tags: the tag section (with '@' and the space) may take 8191 bytes.
constexpr size_t MAX_TAG_BYTES = 8191;
constexpr size_t MAX_PARAMS = 15;  // RFC 2812 2.3.1

std::string unescapeTagValue(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] != '\\') {
      out += v[i];
      continue;
    }
    if (++i == v.size()) break;  // a trailing lone backslash is dropped
    switch (v[i]) {
      case ':':
        out += ';';
        break;
      case 's':
        out += ' ';
        break;
      case 'r':
        out += '\r';
        break;
      case 'n':
        out += '\n';
        break;
      default:
        out += v[i];  // "\\" and any other escaped character stand for themselves
    }
  }
  return out;
}

std::string_view nextWord(std::string_view& rest) {
  size_t end = rest.find(' ');
  std::string_view word = rest.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  return word;
}

bool isNickChar(unsigned char c) {
  return std::isalnum(c) ||
         std::string_view("[]\\`_^{|}-").find(static_cast<char>(c)) != std::string_view::npos;
}

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one.
size_t utf8SequenceAt(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 0;
  }
  if (n == 2 && c < 0xC2) return 0;  // overlong
  return n;
}

}  // namespace

const std::string& Message::param(size_t i) const {
  static const std::string empty;
  return i < params.size() ? params[i] : empty;
}

std::string Message::tag(const std::string& key) const {
  auto it = tags.find(key);
  return it == tags.end() ? std::string() : it->second;
}

std::optional<Message> parseLine(std::string_view line) {
  Message m;
  std::string_view rest = line;
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  if (!rest.empty() && rest.front() == '@') {
    std::string_view tagPart = nextWord(rest);
    if (tagPart.size() > MAX_TAG_BYTES) return std::nullopt;
    tagPart.remove_prefix(1);
    while (!tagPart.empty()) {
      size_t semi = tagPart.find(';');
      std::string_view item = tagPart.substr(0, semi);
      tagPart = semi == std::string_view::npos ? std::string_view() : tagPart.substr(semi + 1);
      if (item.empty()) continue;
      size_t eq = item.find('=');
      std::string key(item.substr(0, eq));
      m.tags[key] =
          eq == std::string_view::npos ? std::string() : unescapeTagValue(item.substr(eq + 1));
    }
  }
  if (!rest.empty() && rest.front() == ':') {
    std::string_view source = nextWord(rest).substr(1);
    size_t at = source.find('@');
    if (at != std::string_view::npos) {
      m.prefix.host = std::string(source.substr(at + 1));
      source = source.substr(0, at);
    }
    size_t bang = source.find('!');
    if (bang != std::string_view::npos) {
      m.prefix.user = std::string(source.substr(bang + 1));
      source = source.substr(0, bang);
    }
    m.prefix.nick = std::string(source);
  }
  std::string_view command = nextWord(rest);
  if (command.empty()) return std::nullopt;
  m.command.reserve(command.size());
  for (char c : command)
    m.command += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  while (!rest.empty()) {
    if (rest.front() == ':' || m.params.size() == MAX_PARAMS - 1) {
      if (rest.front() == ':') rest.remove_prefix(1);
      m.params.emplace_back(rest);
      break;
    }
    m.params.emplace_back(nextWord(rest));
  }
  return m;
}

CaseMapping caseMappingFromToken(std::string_view value) {
  if (value == "ascii") return CaseMapping::ASCII;
  if (value == "strict-rfc1459") return CaseMapping::STRICT_RFC1459;
  return CaseMapping::RFC1459;
}

std::string lowerIrc(std::string_view s, CaseMapping mapping) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    } else if (mapping != CaseMapping::ASCII) {
      if (c == '[')
        c = '{';
      else if (c == ']')
        c = '}';
      else if (c == '\\')
        c = '|';
      else if (c == '~' && mapping == CaseMapping::RFC1459)
        c = '^';
    }
  }
  return out;
}

bool mentions(std::string_view text, std::string_view nick, CaseMapping mapping) {
  if (nick.empty()) return false;
  std::string haystack = lowerIrc(text, mapping);
  std::string needle = lowerIrc(nick, mapping);
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    bool startOk = at == 0 || !isNickChar(static_cast<unsigned char>(haystack[at - 1]));
    size_t end = at + needle.size();
    bool endOk = end == haystack.size() || !isNickChar(static_cast<unsigned char>(haystack[end]));
    if (startOk && endOk) return true;
  }
  return false;
}

std::optional<Ctcp> parseCtcp(std::string_view text) {
  if (text.size() < 2 || text.front() != '\x01') return std::nullopt;
  text.remove_prefix(1);
  if (text.back() == '\x01') text.remove_suffix(1);  // the closing \x01 is optional in practice
  size_t space = text.find(' ');
  Ctcp ctcp;
  for (char c : text.substr(0, space)) {
    ctcp.command += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  if (space != std::string_view::npos) ctcp.argument = std::string(text.substr(space + 1));
  if (ctcp.command.empty()) return std::nullopt;
  return ctcp;
}

std::string cleanInboundText(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == 0x03) {  // colour: \x03[fg[,bg]], one or two digits each
      ++i;
      for (int k = 0; k < 2 && i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]));
           ++k)
        ++i;
      if (i + 1 < text.size() && text[i] == ',' &&
          std::isdigit(static_cast<unsigned char>(text[i + 1]))) {
        ++i;
        for (int k = 0;
             k < 2 && i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++k)
          ++i;
      }
      continue;
    }
    if (c == 0x04) {  // hex colour: \x04RRGGBB[,RRGGBB]
      ++i;
      for (int k = 0;
           k < 6 && i < text.size() && std::isxdigit(static_cast<unsigned char>(text[i])); ++k)
        ++i;
      continue;
    }
    if (c < 0x20 && c != '\t') {  // bold, italics, reset, ... and every other control
      ++i;
      continue;
    }
    size_t n = utf8SequenceAt(text, i);
    if (n == 0) {  // Latin-1 byte -> its code point in UTF-8
      out += static_cast<char>(0xC0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3F));
      ++i;
      continue;
    }
    out.append(text.substr(i, n));
    i += n;
  }
  return out;
}

bool validTarget(std::string_view target) {
  if (target.empty() || target.size() > 200 || target.front() == ':') return false;
  return target.find_first_of(std::string_view(" ,\r\n\0\x07", 6)) == std::string_view::npos;
}

std::string escapeId(std::string_view raw) {
  std::string out;
  for (char ch : raw) {
    auto c = static_cast<unsigned char>(ch);
    if (c > 0x20 && c < 0x7F && c != '%') {
      out += ch;
    } else {
      static const char HEX[] = "0123456789ABCDEF";
      out += '%';
      out += HEX[c >> 4];
      out += HEX[c & 15];
    }
  }
  return out;
}

bool plainAscii(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7F; });
}

std::vector<std::string> splitList(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string::npos) end = s.size();
    std::string item = s.substr(start, end - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

bool validNick(std::string_view nick) {
  if (nick.empty() || nick.size() > 64) return false;
  auto first = static_cast<unsigned char>(nick.front());
  if (std::isdigit(first) || first == '-') return false;
  return std::all_of(nick.begin(), nick.end(),
                     [](char c) { return isNickChar(static_cast<unsigned char>(c)); });
}

size_t conservativePrefixBytes(std::string_view nick) { return nick.size() + 1 + 10 + 1 + 63; }

std::vector<std::string> privmsgLines(std::string_view target, std::string_view text,
                                      size_t ourPrefixBytes) {
  bool action = text.substr(0, 4) == "/me ";
  if (action) text.remove_prefix(4);
  std::string head = "PRIVMSG " + std::string(target) + " :";
  // What other clients receive: ":" prefix " " head text [\x01 framing] "\r\n".
  size_t overhead = 1 + ourPrefixBytes + 1 + head.size() + 2 + (action ? 9 : 0);
  size_t budget = overhead < MAX_LINE_BYTES - 16 ? MAX_LINE_BYTES - overhead : 16;
  std::vector<std::string> lines;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view raw = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    std::string line;
    for (char c : raw) {
      if (c != '\r' && c != '\0') line += c;
    }
    if (line.find_first_not_of(" \t") == std::string::npos) continue;  // servers reject empty text
    for (const std::string& piece : chunkText(line, budget, Unit::BYTES)) {
      lines.push_back(action ? head +
                                   "\x01"
                                   "ACTION " +
                                   piece + "\x01"
                             : head + piece);
    }
  }
  return lines;
}

std::optional<int64_t> parseServerTime(std::string_view v) {
  // YYYY-MM-DDThh:mm:ss[.sss]Z
  if (v.size() < 20 || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' ||
      v.back() != 'Z') {
    return std::nullopt;
  }
  auto number = [&](size_t at, size_t len) -> int {
    int n = 0;
    for (size_t i = at; i < at + len; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(v[i]))) return -1;
      n = n * 10 + (v[i] - '0');
    }
    return n;
  };
  std::tm tm{};
  tm.tm_year = number(0, 4) - 1900;
  tm.tm_mon = number(5, 2) - 1;
  tm.tm_mday = number(8, 2);
  tm.tm_hour = number(11, 2);
  tm.tm_min = number(14, 2);
  tm.tm_sec = number(17, 2);
  if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
      tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 ||
      tm.tm_sec > 60) {
    return std::nullopt;
  }
  int64_t ms = 0;
  std::string_view fraction = v.substr(19, v.size() - 20);
  if (!fraction.empty()) {
    if (fraction.front() != '.' || fraction.size() < 2) return std::nullopt;
    int scale = 100;
    for (char c : fraction.substr(1)) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::nullopt;
      ms += (c - '0') * scale;
      scale /= 10;
    }
  }
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

std::vector<std::string> saslPlainLines(std::string_view user, std::string_view password) {
  std::string raw;
  raw.append(user).push_back('\0');
  raw.append(user).push_back('\0');
  raw.append(password);
  std::string encoded(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(encoded.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  encoded.resize(static_cast<size_t>(n));
  std::fill(raw.begin(), raw.end(), '\0');  // the password should not linger in freed memory
  std::vector<std::string> lines;
  for (size_t at = 0; at < encoded.size(); at += 400) {
    lines.push_back("AUTHENTICATE " + encoded.substr(at, 400));
  }
  if (encoded.size() % 400 == 0) lines.push_back("AUTHENTICATE +");
  return lines;
}

TokenBucket::TokenBucket(size_t burst, std::chrono::milliseconds interval)
    : tokens_(static_cast<double>(burst)),
      burst_(static_cast<double>(burst)),
      interval_(interval),
      last_(Clock::now()) {}

void TokenBucket::refill(Clock::time_point now) {
  if (now <= last_) return;
  double gained = std::chrono::duration<double, std::milli>(now - last_).count() /
                  static_cast<double>(std::max<int64_t>(interval_.count(), 1));
  tokens_ = std::min(burst_, tokens_ + gained);
  last_ = now;
}

std::chrono::milliseconds TokenBucket::take(Clock::time_point now) {
  refill(now);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return std::chrono::milliseconds(0);
  }
  double missing = (1.0 - tokens_) * static_cast<double>(interval_.count());
  return std::chrono::milliseconds(static_cast<int64_t>(missing) + 1);
}

}  // namespace chitin::channel::irc
