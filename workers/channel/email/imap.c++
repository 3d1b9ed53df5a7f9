// SPDX-License-Identifier: Apache-2.0
// The IMAP subset of the email channel (see imap.h).
// Runs in: worker (sandboxed)

#include "imap.h"

#include <algorithm>
#include <cctype>
#include <functional>

#include "../platform.h"
#include "mime-decode.h"

namespace chitin::channel::email {

namespace {

using std::chrono::milliseconds;

constexpr size_t MAX_LINE = 1u << 20;  // a SEARCH reply for a large mailbox is long
constexpr size_t MAX_VALUES = 100000;  // tokens in one response
constexpr int MAX_NESTING = 32;

bool isImapDigit(char c) { return c >= '0' && c <= '9'; }

class Tokenizer {
 public:
  explicit Tokenizer(const ImapLine& line) : text_(line.text), literals_(line.literals) {}

  std::vector<ImapValue> all() {
    std::vector<ImapValue> out;
    while (skipSpace()) {
      if (text_[pos_] == ')') {  // unbalanced: skip it
        ++pos_;
        continue;
      }
      out.push_back(value(0));
      if (++count_ > MAX_VALUES) break;
    }
    return out;
  }

 private:
  bool skipSpace() {
    while (pos_ < text_.size() && text_[pos_] == ' ') ++pos_;
    return pos_ < text_.size();
  }

  ImapValue value(int depth) {
    ImapValue v;
    char c = text_[pos_];
    if (c == '(' && depth < MAX_NESTING) {
      v.kind = ImapValue::Kind::LIST;
      ++pos_;
      while (skipSpace() && text_[pos_] != ')') {
        v.items.push_back(value(depth + 1));
        if (++count_ > MAX_VALUES) return v;
      }
      if (pos_ < text_.size()) ++pos_;  // ')'
      return v;
    }
    if (c == '"') {
      v.kind = ImapValue::Kind::STRING;
      for (++pos_; pos_ < text_.size() && text_[pos_] != '"'; ++pos_) {
        if (text_[pos_] == '\\' && pos_ + 1 < text_.size()) ++pos_;
        v.text += text_[pos_];
      }
      ++pos_;
      return v;
    }
    if (c == '{') {
      size_t close = text_.find('}', pos_);
      if (close != std::string::npos) {
        pos_ = close + 1;
        v.kind = ImapValue::Kind::STRING;
        if (nextLiteral_ < literals_.size()) v.text = literals_[nextLiteral_++];
        return v;
      }
    }
    // An atom; a "[...]" section inside it (BODY[HEADER.FIELDS (FROM)]) is part of it.
    while (pos_ < text_.size()) {
      char a = text_[pos_];
      if (a == ' ' || a == ')' || a == '(') break;
      if (a == '[') {
        size_t close = text_.find(']', pos_);
        size_t end = close == std::string::npos ? text_.size() : close + 1;
        v.text.append(text_, pos_, end - pos_);
        pos_ = end;
        continue;
      }
      v.text += a;
      ++pos_;
    }
    if (v.text.empty()) ++pos_;  // a stray character: never loop on it
    return v;
  }

  const std::string& text_;
  const std::vector<std::string>& literals_;
  size_t pos_ = 0;
  size_t nextLiteral_ = 0;
  size_t count_ = 0;
};

std::string quoteImap(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool quotable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x7F;
  });
}

uint32_t toUid(const std::string& s) {
  if (s.empty() || s.size() > 10 || !std::all_of(s.begin(), s.end(), isImapDigit)) return 0;
  uint64_t n = std::stoull(s);
  return n > 0xFFFFFFFFu ? 0 : static_cast<uint32_t>(n);
}

// The attribute list of "* n FETCH (...)" for `uid`, or nullptr.
const ImapValue* fetchAttributes(const std::vector<ImapValue>& values, uint32_t uid) {
  if (values.size() < 4 || values[2].text != "FETCH" || values[3].kind != ImapValue::Kind::LIST)
    return nullptr;
  const auto& items = values[3].items;
  for (size_t i = 0; i + 1 < items.size(); i += 2) {
    if (items[i].text == "UID" && toUid(items[i + 1].text) == uid) return &values[3];
  }
  return nullptr;
}

}  // namespace

std::vector<ImapValue> tokenizeImap(const ImapLine& line) { return Tokenizer(line).all(); }

std::string responseCode(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  if (text.empty() || text.front() != '[') return "";
  size_t close = text.find(']');
  return close == std::string_view::npos ? "" : std::string(text.substr(1, close - 1));
}

ImapSession::ImapSession(const std::string& host, uint16_t port, Tls tls, const std::string& caFile,
                         const std::string& egressSocket) {
  StreamOptions options;
  options.egressSocket = egressSocket;
  options.tls = tls == Tls::IMPLICIT;
  options.caFile = caFile;
  stream_ = Stream::open(host, port, options);
  peer_ = "IMAP " + stream_->peer();
  ImapLine greeting = readLine(std::chrono::seconds(30));
  if (greeting.text.rfind("* OK", 0) != 0 && greeting.text.rfind("* PREAUTH", 0) != 0) {
    throw ChannelError(peer_ + ": unexpected greeting: " + greeting.text.substr(0, 200));
  }
  readCapabilities({}, greeting.text.substr(greeting.text.find(' ', 2) + 1));
  if (tls == Tls::STARTTLS) {
    if (!hasCapability("STARTTLS"))
      throw ChannelError(peer_ + ": the server does not offer STARTTLS");
    commandOk("STARTTLS", "STARTTLS");
    stream_->startTls(caFile);
    capabilities_.clear();  // RFC 3501 6.2.1: what was said before TLS is forgotten
  }
  if (capabilities_.empty()) {
    Response r = commandOk("CAPABILITY", "CAPABILITY");
    readCapabilities(r.untagged, r.text);
  }
}

ImapSession::~ImapSession() = default;

std::string ImapSession::nextTag() { return "c" + std::to_string(++tagCounter_); }

ImapLine ImapSession::readLine(milliseconds timeout) {
  ImapLine line;
  for (;;) {
    std::string part = stream_->readLine(timeout, MAX_LINE);
    line.text += part;
    if (line.text.size() > MAX_LINE) throw ChannelError(peer_ + ": response too long");
    // A literal announced at the end of the line: "{123}" (or "{123+}" from LITERAL+ servers).
    if (part.empty() || part.back() != '}') return line;
    size_t open = part.rfind('{');
    if (open == std::string::npos) return line;
    std::string digits = part.substr(open + 1, part.size() - open - 2);
    if (!digits.empty() && digits.back() == '+') digits.pop_back();
    if (digits.empty() || digits.size() > 12 ||
        !std::all_of(digits.begin(), digits.end(), isImapDigit))
      return line;
    uint64_t size = std::stoull(digits);
    if (size > maxLiteral_)
      throw ChannelError(peer_ + ": a literal of " + digits + " bytes is over the limit");
    std::string literal(size, '\0');
    size_t got = 0;
    while (got < size) {
      size_t n = stream_->read(literal.data() + got, size - got, timeout);
      if (n == 0) throw ChannelError(peer_ + ": connection closed inside a literal");
      got += n;
    }
    line.literals.push_back(std::move(literal));
  }
}

ImapSession::Response ImapSession::command(const std::string& line, milliseconds timeout) {
  std::string tag = nextTag();
  stream_->writeAll(tag + " " + line + "\r\n");
  Response r;
  for (;;) {
    ImapLine got = readLine(timeout);
    if (got.text.rfind(tag + " ", 0) == 0) {
      std::string rest = got.text.substr(tag.size() + 1);
      size_t space = rest.find(' ');
      r.status = rest.substr(0, space);
      r.text = space == std::string::npos ? "" : rest.substr(space + 1);
      return r;
    }
    if (got.text.rfind("* BYE", 0) == 0 && line != "LOGOUT") {
      throw ChannelError(peer_ + ": the server said goodbye: " + got.text.substr(5, 200));
    }
    if (got.text.rfind("* ", 0) == 0) {
      noteExists(got);
      if (r.untagged.size() < 100000) r.untagged.push_back(std::move(got));
    }
  }
}

ImapSession::Response ImapSession::commandOk(const std::string& line, const std::string& what) {
  Response r = command(line);
  if (r.status != "OK")
    throw ChannelError(peer_ + ": " + what + " failed: " + r.status + " " + r.text.substr(0, 200));
  return r;
}

void ImapSession::parseCapabilityList(std::string_view list) {
  capabilities_.clear();
  std::string word;
  for (char c : std::string(list) + " ") {
    if (c == ' ') {
      if (!word.empty() && word != "CAPABILITY") capabilities_.insert(word);
      word.clear();
    } else {
      word += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
  }
}

void ImapSession::readCapabilities(const std::vector<ImapLine>& lines,
                                   const std::string& taggedText) {
  for (const ImapLine& l : lines) {
    if (l.text.rfind("* CAPABILITY ", 0) == 0) parseCapabilityList(l.text.substr(13));
  }
  std::string code = responseCode(taggedText);
  if (code.rfind("CAPABILITY ", 0) == 0) parseCapabilityList(code.substr(11));
}

bool ImapSession::hasCapability(const std::string& name) const {
  return capabilities_.count(name) > 0;
}
bool ImapSession::tls() const { return stream_->tls(); }
void ImapSession::interrupt() { stream_->interrupt(); }

void ImapSession::login(const std::string& user, const std::string& password) {
  Response r;
  if (hasCapability("AUTH=PLAIN")) {
    std::string raw = std::string(1, '\0') + user + std::string(1, '\0') + password;
    std::string encoded = encodeBase64(raw);
    std::fill(raw.begin(), raw.end(), '\0');
    if (hasCapability("SASL-IR")) {
      r = command("AUTHENTICATE PLAIN " + encoded);
    } else {
      std::string tag = nextTag();
      stream_->writeAll(tag + " AUTHENTICATE PLAIN\r\n");
      for (;;) {
        ImapLine got = readLine(std::chrono::seconds(60));
        if (got.text.rfind("+", 0) == 0) {
          stream_->writeAll(encoded + "\r\n");
        } else if (got.text.rfind(tag + " ", 0) == 0) {
          std::string rest = got.text.substr(tag.size() + 1);
          r.status = rest.substr(0, rest.find(' '));
          r.text = rest.find(' ') == std::string::npos ? "" : rest.substr(rest.find(' ') + 1);
          break;
        }
      }
    }
    std::fill(encoded.begin(), encoded.end(), '\0');
  } else if (hasCapability("LOGINDISABLED")) {
    throw ImapAuthFailed{
        "the server refuses LOGIN on this connection (use imapTls=tls or starttls)"};
  } else if (quotable(user) && quotable(password)) {
    r = command("LOGIN " + quoteImap(user) + " " + quoteImap(password));
  } else {
    throw ImapAuthFailed{
        "the server offers no AUTHENTICATE PLAIN and the user name or password is not "
        "plain ASCII (LOGIN cannot carry it)"};
  }
  if (r.status != "OK")
    throw ImapAuthFailed{"IMAP login as '" + user + "' failed: " + r.text.substr(0, 200)};
  readCapabilities(r.untagged, r.text);
  if (!hasCapability("IMAP4REV1") && !hasCapability("IMAP4REV2")) {
    Response c = commandOk("CAPABILITY", "CAPABILITY");
    readCapabilities(c.untagged, c.text);
  }
}

Mailbox ImapSession::select(const std::string& mailbox) {
  Response r = commandOk("SELECT " + quoteImap(mailbox), "SELECT " + mailbox);
  Mailbox m;
  for (const ImapLine& l : r.untagged) {
    std::vector<ImapValue> v = tokenizeImap(l);
    if (v.size() >= 3 && v[2].text == "EXISTS") m.exists = toUid(v[1].text);
    std::string code = l.text.rfind("* OK ", 0) == 0 ? responseCode(l.text.substr(5)) : "";
    if (code.rfind("UIDVALIDITY ", 0) == 0) m.uidValidity = toUid(code.substr(12));
    if (code.rfind("UIDNEXT ", 0) == 0) m.uidNext = toUid(code.substr(8));
  }
  if (m.uidValidity == 0) throw ChannelError(peer_ + ": SELECT gave no UIDVALIDITY");
  return m;
}

void ImapSession::noteExists(const ImapLine& line) {
  // "* n EXISTS" may come with the answer to any command (RFC 3501 7.3.1), e.g. while we mark a
  // message \Seen; remembered here so the next idle() does not wait for one already sent.
  std::vector<ImapValue> v = tokenizeImap(line);
  if (v.size() >= 3 && v[2].text == "EXISTS") newMail_ = true;
}

std::vector<uint32_t> ImapSession::uidSearch(const std::string& criteria) {
  newMail_ = false;  // the search sees everything that arrived before it
  Response r = commandOk("UID SEARCH " + criteria, "UID SEARCH");
  std::vector<uint32_t> uids;
  for (const ImapLine& l : r.untagged) {
    std::vector<ImapValue> v = tokenizeImap(l);
    if (v.size() < 2 || v[1].text != "SEARCH") continue;
    for (size_t i = 2; i < v.size(); ++i) {
      if (uint32_t uid = toUid(v[i].text)) uids.push_back(uid);
    }
  }
  std::sort(uids.begin(), uids.end());
  uids.erase(std::unique(uids.begin(), uids.end()), uids.end());
  return uids;
}

uint64_t ImapSession::fetchSize(uint32_t uid) {
  Response r = commandOk("UID FETCH " + std::to_string(uid) + " (UID RFC822.SIZE)", "UID FETCH");
  for (const ImapLine& l : r.untagged) {
    std::vector<ImapValue> v = tokenizeImap(l);
    if (const ImapValue* attrs = fetchAttributes(v, uid)) {
      for (size_t i = 0; i + 1 < attrs->items.size(); i += 2) {
        if (attrs->items[i].text == "RFC822.SIZE")
          return std::stoull("0" + attrs->items[i + 1].text.substr(0, 15));
      }
    }
  }
  return 0;  // the message is gone (expunged meanwhile)
}

FetchedMessage ImapSession::fetchMessage(uint32_t uid, uint64_t maxBytes) {
  Response r = commandOk("UID FETCH " + std::to_string(uid) + " (UID RFC822.SIZE BODY.PEEK[]<0." +
                             std::to_string(maxBytes) + ">)",
                         "UID FETCH");
  FetchedMessage m;
  for (const ImapLine& l : r.untagged) {
    std::vector<ImapValue> v = tokenizeImap(l);
    const ImapValue* attrs = fetchAttributes(v, uid);
    if (!attrs) continue;
    m.uid = uid;
    for (size_t i = 0; i + 1 < attrs->items.size(); i += 2) {
      const std::string& key = attrs->items[i].text;
      if (key == "RFC822.SIZE") m.size = std::stoull("0" + attrs->items[i + 1].text.substr(0, 15));
      if (key.rfind("BODY[]", 0) == 0 && !attrs->items[i + 1].isNil())
        m.bytes = attrs->items[i + 1].text;
    }
  }
  m.truncated = m.size > m.bytes.size() && m.bytes.size() >= maxBytes;
  return m;
}

void ImapSession::markSeen(uint32_t uid) {
  commandOk("UID STORE " + std::to_string(uid) + " +FLAGS.SILENT (\\Seen)", "UID STORE");
}

void ImapSession::noop() { commandOk("NOOP", "NOOP"); }

bool ImapSession::idle(milliseconds maxWait) {
  if (newMail_) {
    newMail_ = false;
    return true;
  }
  std::string tag = nextTag();
  stream_->writeAll(tag + " IDLE\r\n");
  bool newMail = false;
  for (;;) {  // until the server's "+ idling"
    ImapLine got = readLine(std::chrono::seconds(30));
    if (got.text.rfind("+", 0) == 0) break;
    if (got.text.rfind(tag + " ", 0) == 0)
      throw ChannelError(peer_ + ": IDLE refused: " + got.text.substr(0, 200));
    if (got.text.find(" EXISTS") != std::string::npos) newMail = true;
  }
  auto deadline = std::chrono::steady_clock::now() + maxWait;
  while (!newMail) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    ImapLine got;
    try {
      got = readLine(left);
    } catch (const StreamTimeout&) {
      break;
    }
    std::vector<ImapValue> v = tokenizeImap(got);
    if (v.size() >= 3 && v[0].text == "*" && v[2].text == "EXISTS") newMail = true;
    if (got.text.rfind("* BYE", 0) == 0)
      throw ChannelError(peer_ + ": the server ended IDLE: " + got.text.substr(0, 200));
  }
  stream_->writeAll("DONE\r\n");
  for (;;) {
    ImapLine got = readLine(std::chrono::seconds(60));
    if (got.text.rfind(tag + " ", 0) == 0) return newMail;
  }
}

void ImapSession::logout() {
  try {
    command("LOGOUT", std::chrono::seconds(5));
  } catch (...) {
    // Leaving anyway: a server that does not answer LOGOUT changes nothing for us.
  }
}

}  // namespace chitin::channel::email
