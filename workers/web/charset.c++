// SPDX-License-Identifier: Apache-2.0
// Charset detection and conversion to UTF-8, content-type decisions (see extract.h).
// Runs in: worker (sandboxed)

#include <errno.h>
#include <iconv.h>

#include <algorithm>
#include <cctype>

#include "extract.h"

namespace chitin::web {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Only a plain charset name survives (it goes to iconv_open, and into the result).
std::string cleanName(std::string_view raw) {
  std::string name = lower(raw);
  while (!name.empty() && (name.front() == '"' || name.front() == '\'' || name.front() == ' '))
    name.erase(0, 1);
  size_t end = name.find_first_of("\"'; \t>/");
  if (end != std::string::npos) name.resize(end);
  if (name.empty() || name.size() > 40) return "";
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.' &&
        c != ':')
      return "";
  }
  return name;
}

// The value after "charset=" in `text`, if any.
std::string charsetParam(std::string_view text) {
  std::string l = lower(text);
  size_t at = l.find("charset=");
  if (at == std::string::npos) return "";
  return cleanName(std::string_view(l).substr(at + 8));
}

bool validUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0) return false;
    if (i + n > s.size()) return s.size() >= 1024;  // a long body cut mid-character
    for (size_t k = 1; k < n; k++) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

}  // namespace

std::string mediaType(std::string_view contentType) {
  std::string media = lower(contentType.substr(0, contentType.find(';')));
  media.erase(0, media.find_first_not_of(" \t"));
  media.erase(media.find_last_not_of(" \t") + 1);
  return media.size() > 100 ? media.substr(0, 100) : media;
}

std::string detectCharset(std::string_view contentType, std::string_view body, bool html) {
  if (body.substr(0, 3) == "\xef\xbb\xbf") return "utf-8";
  if (body.substr(0, 2) == "\xff\xfe") return "utf-16le";
  if (body.substr(0, 2) == "\xfe\xff") return "utf-16be";
  std::string fromHeader = charsetParam(contentType);
  if (!fromHeader.empty()) return fromHeader;
  if (html) {
    std::string head = lower(body.substr(0, 1024));
    for (size_t at = head.find("<meta"); at != std::string::npos; at = head.find("<meta", at + 5)) {
      std::string tag = head.substr(at, head.find('>', at) - at);
      std::string name = charsetParam(tag);
      if (!name.empty()) return name;
    }
  }
  return validUtf8(body) ? "utf-8" : "windows-1252";
}

std::string decodeToUtf8(std::string_view body, std::string& charset) {
  if (charset == "utf-8" || charset == "utf8") {
    if (body.substr(0, 3) == "\xef\xbb\xbf") body.remove_prefix(3);
    charset = "utf-8";
  } else if (charset == "us-ascii" || charset == "ascii") {
    charset = "us-ascii";
  }
  // Latin-1 labels are windows-1252 on the web (WHATWG Encoding).
  if (charset == "iso-8859-1" || charset == "latin1" || charset == "l1") charset = "windows-1252";
  iconv_t cd = iconv_open("UTF-8", charset.c_str());
  if (cd == reinterpret_cast<iconv_t>(-1)) {
    charset = "windows-1252 (instead of the unknown \"" + charset + "\")";
    cd = iconv_open("UTF-8", "WINDOWS-1252");
    if (cd == reinterpret_cast<iconv_t>(-1)) return std::string(body);  // no gconv: as is
  }
  if (body.substr(0, 2) == "\xff\xfe" || body.substr(0, 2) == "\xfe\xff") body.remove_prefix(2);
  std::string out;
  out.reserve(body.size() + body.size() / 4);
  char* in = const_cast<char*>(body.data());
  size_t inLeft = body.size();
  char buffer[16384];
  while (inLeft > 0) {
    char* o = buffer;
    size_t oLeft = sizeof(buffer);
    size_t rc = iconv(cd, &in, &inLeft, &o, &oLeft);
    out.append(buffer, sizeof(buffer) - oLeft);
    if (rc == static_cast<size_t>(-1)) {
      if (errno == E2BIG) continue;
      // EILSEQ (invalid) or EINVAL (cut at the end): one U+FFFD, skip a byte, go on.
      out += "\xef\xbf\xbd";
      in++;
      inLeft--;
      iconv(cd, nullptr, nullptr, nullptr, nullptr);
    }
  }
  iconv_close(cd);
  return out;
}

Kind classifyBody(const std::string& media, std::string_view body) {
  if (media == "text/html" || media == "application/xhtml+xml") return Kind::HTML;
  if (media.rfind("text/", 0) == 0 || media == "application/json" ||
      (media.size() > 5 && media.compare(media.size() - 5, 5, "+json") == 0) ||
      media == "application/xml" ||
      (media.size() > 4 && media.compare(media.size() - 4, 4, "+xml") == 0) ||
      media == "application/javascript" || media == "application/x-ndjson") {
    return Kind::TEXT;
  }
  if (!media.empty()) return Kind::BINARY;
  std::string start = lower(body.substr(0, 512));
  start.erase(0, start.find_first_not_of(" \t\r\n\xef\xbb\xbf"));
  if (start.rfind("<!doctype html", 0) == 0 || start.find("<html") != std::string::npos) {
    return Kind::HTML;
  }
  bool nul = body.substr(0, 4096).find('\0') != std::string_view::npos;
  return !nul && validUtf8(body.substr(0, 65536)) ? Kind::TEXT : Kind::BINARY;
}

std::string describeBinary(const std::string& media, uint64_t bytes, bool truncated) {
  std::string what = media.empty() ? "of unknown type" : media;
  return "binary content, " + what + ", " + std::to_string(bytes) + " bytes" +
         (truncated ? " (cut at the size limit)" : "") + "; not shown";
}

}  // namespace chitin::web
