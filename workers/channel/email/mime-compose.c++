// SPDX-License-Identifier: Apache-2.0
// An outgoing mail message (see mime-compose.h).
// Runs in: worker (sandboxed)

#include "mime-compose.h"

#include <sys/random.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>

namespace chitin::channel::email {

namespace {

std::string oneLine(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

bool safeMimeType(std::string_view t) {
  size_t slash = t.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == t.size() || t.size() > 100)
    return false;
  return std::all_of(t.begin(), t.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) ||
           std::string_view("/+-.").find(c) != std::string_view::npos;
  });
}

// filename="x" for plain ASCII names, RFC 2231 filename*=utf-8''%XX otherwise.
std::string fileNameParameter(std::string_view rawName) {
  std::string name = oneLine(rawName);
  if (name.empty()) name = "attachment";
  bool plain = std::all_of(name.begin(), name.end(),
                           [](char c) { return c >= 0x20 && c < 0x7F && c != '"' && c != '\\'; });
  if (plain) return "filename=\"" + name + "\"";
  std::string out = "filename*=utf-8''";
  for (char ch : name) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || std::string_view("!#$&+-.^_`|~").find(ch) != std::string_view::npos) {
      out += ch;
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", c);
      out += escaped;
    }
  }
  return out;
}

std::string addressHeader(const MailAddress& a) {
  if (a.name.empty()) return "<" + a.address + ">";
  std::string name = oneLine(a.name);
  bool plain = std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c < 0x7F; });
  if (plain) {
    std::string quoted;
    for (char c : name) {
      if (c == '"' || c == '\\') quoted += '\\';
      quoted += c;
    }
    return "\"" + quoted + "\" <" + a.address + ">";
  }
  return encodeHeaderWords(name) + " <" + a.address + ">";
}

}  // namespace

std::string encodeQuotedPrintable(std::string_view text) {
  std::string out;
  std::string line;
  auto flushLine = [&](bool hardBreak) {
    // Trailing blanks would be stripped in transit: encode the last one.
    if (!line.empty() && (line.back() == ' ' || line.back() == '\t')) {
      char c = line.back();
      line.pop_back();
      line += c == ' ' ? "=20" : "=09";
    }
    out += line;
    out += hardBreak ? "\r\n" : "=\r\n";
    line.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '\r') continue;
    if (c == '\n') {
      flushLine(true);
      continue;
    }
    std::string piece;
    if ((c >= 33 && c <= 126 && c != '=') || c == ' ' || c == '\t') {
      piece = static_cast<char>(c);
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "=%02X", c);
      piece = escaped;
    }
    // A '.' alone at the start of a line is SMTP's end of data: libcurl escapes it, but keep
    // lines free of it anyway for any other transport.
    if (line.empty() && c == '.') piece = "=2E";
    if (line.size() + piece.size() > 75) flushLine(false);
    line += piece;
  }
  if (!line.empty()) flushLine(true);
  return out;
}

std::string formatDate(int64_t ms) {
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  static const char* DAYS[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* MONTHS[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%s, %02d %s %04d %02d:%02d:%02d +0000", DAYS[tm.tm_wday],
                tm.tm_mday, MONTHS[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  return buffer;
}

std::string randomToken(size_t bytes) {
  std::string raw(bytes, '\0');
  size_t got = 0;
  while (got < bytes) {
    ssize_t n = ::getrandom(raw.data() + got, bytes - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw ChannelError("getrandom failed");
    }
    got += static_cast<size_t>(n);
  }
  std::string hex;
  char byte[3];
  for (char c : raw) {
    std::snprintf(byte, sizeof byte, "%02x", static_cast<unsigned char>(c));
    hex += byte;
  }
  return hex;
}

std::string replySubject(std::string_view subject) {
  std::string s = trimSpace(subject);
  if (lowerAscii(s.substr(0, 3)) == "re:") return s;
  return "Re: " + s;
}

std::string composeMail(const OutgoingMail& mail, const std::string& boundary) {
  std::string m;
  m += "From: " + addressHeader(mail.from) + "\r\n";
  m += "To: <" + mail.to + ">\r\n";
  m += "Subject: " + encodeHeaderWords(oneLine(mail.subject)) + "\r\n";
  m += "Date: " + formatDate(mail.dateMs) + "\r\n";
  m += "Message-ID: <" + mail.messageId + ">\r\n";
  if (!mail.inReplyTo.empty()) m += "In-Reply-To: <" + mail.inReplyTo + ">\r\n";
  if (!mail.references.empty()) {
    m += "References:";
    for (const std::string& id : mail.references) m += " <" + id + ">\r\n";
    m.resize(m.size() - 2);  // folded one id per line; the last line ends below
    m += "\r\n";
  }
  // RFC 3834: an automatic reply says so, so that vacation responders and other bots do not
  // answer it (and we skip mail that says so: no loops between two assistants).
  m += std::string("Auto-Submitted: ") +
       (mail.inReplyTo.empty() ? "auto-generated" : "auto-replied") + "\r\n";
  m += "MIME-Version: 1.0\r\n";
  std::string textPart =
      "Content-Type: text/plain; charset=utf-8\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n\r\n" +
      encodeQuotedPrintable(mail.text);
  if (mail.attachments.empty()) return m + textPart;
  m += "Content-Type: multipart/mixed; boundary=\"" + boundary + "\"\r\n\r\n";
  m += "This is a multi-part message in MIME format.\r\n";
  m += "--" + boundary + "\r\n" + textPart;
  for (const Attachment& a : mail.attachments) {
    std::string type = safeMimeType(a.mimeType) ? a.mimeType : "application/octet-stream";
    m += "\r\n--" + boundary + "\r\n";
    m += "Content-Type: " + type + "\r\n";
    m += "Content-Disposition: attachment; " + fileNameParameter(a.name) + "\r\n";
    m += "Content-Transfer-Encoding: base64\r\n\r\n";
    m += encodeBase64(a.data, 76) + "\r\n";
  }
  m += "--" + boundary + "--\r\n";
  return m;
}

}  // namespace chitin::channel::email
