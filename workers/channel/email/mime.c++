// SPDX-License-Identifier: Apache-2.0
// A received mail message taken apart (see mime.h).
// Runs in: worker (sandboxed)

#include "mime.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <map>

namespace chitin::channel::email {

namespace {

constexpr size_t MAX_HEADERS = 1000;
constexpr size_t MAX_IDS = 100;

bool isDigit(char c) { return c >= '0' && c <= '9'; }

struct ContentType {
  std::string type = "text/plain";            // lower-cased
  std::map<std::string, std::string> params;  // names lower-cased, values decoded
};

// "type/subtype; a=b; c="d e"; f*=utf-8''%E2%82%AC; g*0=x; g*1=y"
ContentType parseContentType(std::string_view value, Charsets& charsets, bool hasType = true) {
  ContentType ct;
  size_t semi = value.find(';');
  if (hasType) {
    std::string type = lowerAscii(trimSpace(value.substr(0, semi)));
    if (type.find('/') != std::string::npos) ct.type = type;
  } else {
    ct.type = lowerAscii(trimSpace(value.substr(0, semi)));
  }
  std::map<std::string, std::map<int, std::pair<std::string, bool>>>
      pieces;  // name -> n -> (value, extended)
  size_t i = semi == std::string_view::npos ? value.size() : semi + 1;
  while (i < value.size()) {
    while (i < value.size() &&
           (std::isspace(static_cast<unsigned char>(value[i])) || value[i] == ';'))
      ++i;
    size_t eq = value.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string name = lowerAscii(trimSpace(value.substr(i, eq - i)));
    i = eq + 1;
    while (i < value.size() && std::isspace(static_cast<unsigned char>(value[i]))) ++i;
    std::string v;
    if (i < value.size() && value[i] == '"') {
      for (++i; i < value.size() && value[i] != '"'; ++i) {
        if (value[i] == '\\' && i + 1 < value.size()) ++i;
        v += value[i];
      }
      ++i;
    } else {
      size_t end = value.find(';', i);
      if (end == std::string_view::npos) end = value.size();
      v = trimSpace(value.substr(i, end - i));
      i = end;
    }
    bool extended = !name.empty() && name.back() == '*';
    if (extended) name.pop_back();
    int index = -1;
    size_t star = name.rfind('*');
    if (star != std::string::npos && star + 1 < name.size() &&
        std::all_of(name.begin() + static_cast<long>(star) + 1, name.end(), isDigit) &&
        name.size() - star <= 4) {
      index = std::stoi(name.substr(star + 1));
      name.resize(star);
    }
    if (pieces.size() < 50 && pieces[name].size() < 50) pieces[name][index] = {v, extended};
  }
  for (auto& [name, parts] : pieces) {
    // RFC 2231: the charset is named in the first extended piece; later ones are %-encoded too.
    std::string raw;
    std::string charset;
    bool anyExtended = false;
    for (auto& [index, piece] : parts) {
      std::string part = piece.first;
      if (piece.second) {
        anyExtended = true;
        if (index <= 0) {
          size_t q1 = part.find('\''), q2 = q1 == std::string::npos ? q1 : part.find('\'', q1 + 1);
          if (q2 != std::string::npos) {
            charset = part.substr(0, q1);
            part = part.substr(q2 + 1);
          }
        }
        raw += percentDecode(part);
      } else {
        raw += part;
      }
    }
    ct.params[name] =
        anyExtended ? charsets.toUtf8(raw, charset) : decodeHeaderWords(raw, charsets);
  }
  return ct;
}

std::string_view stripLineEnd(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
    line.remove_suffix(1);
  return line;
}

// The parts of a multipart body: what lies between "--boundary" lines, without the line break
// that belongs to the delimiter.
std::vector<std::string_view> splitMultipart(std::string_view body, const std::string& boundary) {
  std::vector<std::string_view> parts;
  std::string delimiter = "--" + boundary;
  size_t partStart = std::string_view::npos;
  size_t lineStart = 0;
  while (lineStart < body.size()) {
    size_t nl = body.find('\n', lineStart);
    size_t lineEnd = nl == std::string_view::npos ? body.size() : nl;
    std::string_view line = stripLineEnd(body.substr(lineStart, lineEnd - lineStart));
    bool closing = line == delimiter + "--";
    if (closing || line == delimiter) {
      if (partStart != std::string_view::npos) {
        size_t end = lineStart;
        if (end > partStart && body[end - 1] == '\n') --end;
        if (end > partStart && body[end - 1] == '\r') --end;
        parts.push_back(body.substr(partStart, end - partStart));
      }
      if (closing) return parts;
      partStart = nl == std::string_view::npos ? body.size() : nl + 1;
    }
    if (nl == std::string_view::npos) break;
    lineStart = nl + 1;
  }
  if (partStart != std::string_view::npos && partStart < body.size())
    parts.push_back(body.substr(partStart));
  return parts;
}

std::string decodeBody(std::string_view body, const std::string& transferEncoding) {
  if (transferEncoding == "base64") return decodeBase64(body);
  if (transferEncoding == "quoted-printable") return decodeQuotedPrintable(body);
  return std::string(body);
}

struct Walker {
  const MimeLimits& limits;
  Charsets& charsets;
  ParsedMail& mail;
  std::vector<std::string> plain;
  std::vector<std::string> html;
  size_t parts = 0;

  void walk(std::string_view entity, int depth) {
    if (++parts > limits.maxParts || depth > limits.maxDepth) {
      mail.partsDropped = true;
      return;
    }
    size_t bodyStart = 0;
    Headers headers = parseHeaders(entity, &bodyStart);
    std::string_view body = entity.substr(bodyStart);
    std::string ctValue = headerValue(headers, "content-type");
    ContentType ct = parseContentType(ctValue, charsets);
    ContentType disposition =
        parseContentType(headerValue(headers, "content-disposition"), charsets, false);
    std::string cte = lowerAscii(trimSpace(headerValue(headers, "content-transfer-encoding")));

    if (ct.type.rfind("multipart/", 0) == 0 && !ct.params["boundary"].empty()) {
      for (std::string_view part : splitMultipart(body, ct.params["boundary"]))
        walk(part, depth + 1);
      return;
    }
    std::string name =
        disposition.params.count("filename") ? disposition.params["filename"] : ct.params["name"];
    bool text = ct.type == "text/plain" || ct.type == "text/html";
    bool attachment = disposition.type == "attachment" || !text ||
                      (!name.empty() && disposition.type != "inline");
    std::string data = decodeBody(body, cte);
    if (!attachment) {
      std::string converted;
      for (char c : charsets.toUtf8(data, ct.params["charset"])) {
        if (c != '\r') converted += c;  // CRLF (the wire's line end) -> "\n"
      }
      (ct.type == "text/plain" ? plain : html).push_back(std::move(converted));
      return;
    }
    if (mail.attachments.size() >= limits.maxAttachments) {
      ++mail.attachmentsDropped;
      return;
    }
    Attachment a;
    a.name = name.empty()
                 ? (ct.type == "message/rfc822" ? "message.eml" : "part-" + std::to_string(parts))
                 : truncateUtf8(name, 255);
    a.mimeType = ct.type.size() <= 100 ? ct.type : "application/octet-stream";
    a.size = data.size();
    if (data.size() <= limits.maxAttachmentBytes) a.data = std::move(data);
    mail.attachments.push_back(std::move(a));
  }
};

std::string joinTexts(const std::vector<std::string>& texts) {
  std::string out;
  for (const std::string& t : texts) {
    std::string trimmed = trimSpace(t);
    if (trimmed.empty()) continue;
    out += (out.empty() ? "" : "\n\n") + trimmed;
  }
  return out;
}

std::string cutUtf8(const std::string& text, size_t max) {
  if (text.size() <= max) return text;
  return truncateUtf8(text, max) + "\n[... message cut at " + std::to_string(max) + " bytes]";
}

}  // namespace

Headers parseHeaders(std::string_view raw, size_t* bodyStart) {
  Headers headers;
  size_t i = 0;
  while (i < raw.size()) {
    size_t nl = raw.find('\n', i);
    size_t end = nl == std::string_view::npos ? raw.size() : nl;
    std::string_view line = raw.substr(i, end - i);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    i = nl == std::string_view::npos ? raw.size() : nl + 1;
    if (line.empty()) {
      *bodyStart = i;
      return headers;
    }
    if ((line[0] == ' ' || line[0] == '\t') && !headers.empty()) {
      if (headers.back().second.size() < 65536) headers.back().second += std::string(line);
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || headers.size() >= MAX_HEADERS) continue;
    headers.emplace_back(lowerAscii(trimSpace(line.substr(0, colon))),
                         trimSpace(line.substr(colon + 1)));
  }
  *bodyStart = raw.size();
  return headers;
}

std::string headerValue(const Headers& headers, std::string_view lowerName) {
  for (const auto& [name, value] : headers) {
    if (name == lowerName) return value;
  }
  return "";
}

bool validAddress(std::string_view a) {
  if (a.empty() || a.size() > MAX_ADDRESS_BYTES || std::count(a.begin(), a.end(), '@') != 1)
    return false;
  if (a.front() == '@' || a.back() == '@') return false;
  return std::none_of(a.begin(), a.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u >= 0x7F || c == '<' || c == '>' || c == '(' || c == ')' || c == ',' ||
           c == ';' || c == '"' || c == '\\';
  });
}

MailAddress parseAddress(std::string_view value, Charsets& charsets) {
  MailAddress out;
  // The angle-bracketed address outside quotes and comments, else the first word with an '@'.
  bool quoted = false;
  int comment = 0;
  std::string display;
  for (size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (quoted) {
      if (c == '\\' && i + 1 < value.size())
        c = value[++i];
      else if (c == '"') {
        quoted = false;
        continue;
      }
      display += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == '(') {
      ++comment;
    } else if (c == ')' && comment > 0) {
      --comment;
    } else if (comment == 0 && c == '<') {
      size_t close = value.find('>', i);
      if (close == std::string_view::npos) break;
      out.address = lowerAscii(trimSpace(value.substr(i + 1, close - i - 1)));
      out.name = trimSpace(decodeHeaderWords(display, charsets));
      break;
    } else if (comment == 0 && c == ',') {
      break;  // a second mailbox: only the first one counts
    } else if (comment == 0) {
      display += c;
    }
  }
  if (out.address.empty()) {
    std::string word;
    for (char c : display + " ") {
      if (c == ' ' || c == '\t') {
        if (word.find('@') != std::string::npos) {
          out.address = lowerAscii(word);
          break;
        }
        word.clear();
      } else {
        word += c;
      }
    }
    out.name.clear();
  }
  if (!validAddress(out.address)) out.address.clear();
  return out;
}

std::vector<std::string> parseMessageIds(std::string_view value) {
  std::vector<std::string> ids;
  for (size_t i = value.find('<'); i != std::string_view::npos && ids.size() < MAX_IDS;
       i = value.find('<', i + 1)) {
    size_t close = value.find('>', i);
    if (close == std::string_view::npos) break;
    std::string id = trimSpace(value.substr(i + 1, close - i - 1));
    if (!id.empty() && id.size() <= 250 && std::none_of(id.begin(), id.end(), [](char c) {
          return static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7F ||
                 c == '<';
        })) {
      ids.push_back(id);
    }
    i = close;
  }
  return ids;
}

int64_t parseDate(std::string_view value) {
  // [Day ","] D Mon YYYY hh:mm[:ss] zone
  std::string v(value);
  size_t comma = v.find(',');
  if (comma != std::string::npos) v = v.substr(comma + 1);
  std::vector<std::string> words;
  std::string word;
  for (char c : v + " ") {
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      if (!word.empty()) words.push_back(word);
      word.clear();
    } else {
      word += c;
    }
  }
  if (words.size() < 4) return 0;
  static const char* MONTHS[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                 "jul", "aug", "sep", "oct", "nov", "dec"};
  std::tm tm{};
  try {
    tm.tm_mday = std::stoi(words[0]);
    std::string month = lowerAscii(words[1]).substr(0, 3);
    tm.tm_mon = -1;
    for (int m = 0; m < 12; ++m) {
      if (month == MONTHS[m]) tm.tm_mon = m;
    }
    int year = std::stoi(words[2]);
    if (words[2].size() <= 2) year += year < 50 ? 2000 : 1900;
    tm.tm_year = year - 1900;
    int h = 0, mi = 0, s = 0;
    if (std::sscanf(words[3].c_str(), "%d:%d:%d", &h, &mi, &s) < 2) return 0;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
  } catch (...) {
    return 0;
  }
  if (tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_year < 70 || tm.tm_year > 1100 ||
      tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
    return 0;
  }
  int64_t offsetMinutes = 0;
  if (words.size() > 4) {
    const std::string& zone = words[4];
    if ((zone[0] == '+' || zone[0] == '-') && zone.size() == 5 &&
        std::all_of(zone.begin() + 1, zone.end(), isDigit)) {
      offsetMinutes = std::stoi(zone.substr(1, 2)) * 60 + std::stoi(zone.substr(3, 2));
      if (zone[0] == '-') offsetMinutes = -offsetMinutes;
    } else {
      static const std::map<std::string, int> ZONES = {
          {"ut", 0},     {"gmt", 0},    {"z", 0},      {"est", -300}, {"edt", -240}, {"cst", -360},
          {"cdt", -300}, {"mst", -420}, {"mdt", -360}, {"pst", -480}, {"pdt", -420}};
      auto it = ZONES.find(lowerAscii(zone));
      if (it != ZONES.end()) offsetMinutes = it->second;
    }
  }
  return (static_cast<int64_t>(timegm(&tm)) - offsetMinutes * 60) * 1000;
}

ParsedMail parseMail(std::string_view raw, const MimeLimits& limits, Charsets& charsets) {
  ParsedMail mail;
  size_t bodyStart = 0;
  Headers headers = parseHeaders(raw, &bodyStart);
  mail.from = parseAddress(headerValue(headers, "from"), charsets);
  mail.subject = trimSpace(decodeHeaderWords(headerValue(headers, "subject"), charsets));
  std::vector<std::string> ids = parseMessageIds(headerValue(headers, "message-id"));
  if (!ids.empty()) mail.messageId = ids.front();
  ids = parseMessageIds(headerValue(headers, "in-reply-to"));
  if (!ids.empty()) mail.inReplyTo = ids.front();
  mail.references = parseMessageIds(headerValue(headers, "references"));
  mail.dateMs = parseDate(headerValue(headers, "date"));
  mail.autoSubmitted = lowerAscii(trimSpace(headerValue(headers, "auto-submitted")));
  mail.firstAuthResults = headerValue(headers, "authentication-results");

  Walker walker{limits, charsets, mail, {}, {}, 0};
  walker.walk(raw, 0);
  std::string text = joinTexts(walker.plain);
  if (text.empty()) {
    std::vector<std::string> converted;
    for (const std::string& h : walker.html) converted.push_back(htmlToText(h));
    text = joinTexts(converted);
  }
  mail.text = cutUtf8(std::move(text), limits.maxTextBytes);
  return mail;
}

bool senderAuthenticated(const ParsedMail& mail, std::string_view authservId) {
  std::string results = lowerAscii(mail.firstAuthResults);
  size_t semi = results.find(';');
  std::string id = trimSpace(std::string_view(results).substr(0, semi));
  id = id.substr(0, id.find_first_of(" \t"));  // an optional version number follows
  if (semi == std::string::npos || id.empty() || id != lowerAscii(authservId)) return false;
  size_t at = mail.from.address.rfind('@');
  if (at == std::string::npos) return false;
  std::string domain = mail.from.address.substr(at + 1);
  // Each result is "method=result ptype.property=value ...", separated by ';'.
  std::string_view rest = std::string_view(results).substr(semi + 1);
  while (!rest.empty()) {
    size_t next = rest.find(';');
    std::string item = trimSpace(rest.substr(0, next));
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
    if (item.rfind("dmarc=pass", 0) == 0) {
      size_t from = item.find("header.from=");
      if (from == std::string::npos) return true;
      std::string d = item.substr(from + 12, item.find_first_of(" \t", from) - from - 12);
      if (d == domain) return true;
    }
    if (item.rfind("dkim=pass", 0) == 0) {
      size_t d = item.find("header.d=");
      if (d != std::string::npos &&
          item.substr(d + 9, item.find_first_of(" \t", d) - d - 9) == domain)
        return true;
    }
  }
  return false;
}

}  // namespace chitin::channel::email
