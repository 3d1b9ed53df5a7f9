// SPDX-License-Identifier: Apache-2.0
// Cedar lexer and string-literal decoding (see cedar-lexer.h).
// Runs in: supervisor

#include "cedar-lexer.h"

#include <cctype>

namespace chitin::policy {

namespace {

bool identStart(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool identChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

void appendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    *out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    *out += static_cast<char>(0xC0 | (cp >> 6));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    *out += static_cast<char>(0xE0 | (cp >> 12));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    *out += static_cast<char>(0xF0 | (cp >> 18));
    *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    *out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes one escape starting at raw[i] == '\\'; appends to *out, advances i past it.
// `star` is set when the escape was \* (only valid in patterns; the caller decides).
bool decodeEscape(std::string_view raw, size_t& i, std::string* out, bool* star,
                  std::string* error) {
  *star = false;
  if (i + 1 >= raw.size()) {
    *error = "string ends in the middle of an escape";
    return false;
  }
  char c = raw[i + 1];
  switch (c) {
    case 'n':
      *out += '\n';
      i += 2;
      return true;
    case 'r':
      *out += '\r';
      i += 2;
      return true;
    case 't':
      *out += '\t';
      i += 2;
      return true;
    case '\\':
      *out += '\\';
      i += 2;
      return true;
    case '0':
      *out += '\0';
      i += 2;
      return true;
    case '\'':
      *out += '\'';
      i += 2;
      return true;
    case '"':
      *out += '"';
      i += 2;
      return true;
    case '*':
      *out += '*';
      *star = true;
      i += 2;
      return true;
    case 'x': {
      int hi = i + 2 < raw.size() ? hexDigit(raw[i + 2]) : -1;
      int lo = i + 3 < raw.size() ? hexDigit(raw[i + 3]) : -1;
      if (hi < 0 || lo < 0 || hi > 7) {
        *error = "bad escape: \\x must be followed by two hex digits of at most 7F";
        return false;
      }
      *out += static_cast<char>(hi * 16 + lo);
      i += 4;
      return true;
    }
    case 'u': {
      size_t k = i + 2;
      if (k >= raw.size() || raw[k] != '{') {
        *error = "bad escape: expected \\u{hex digits}";
        return false;
      }
      ++k;
      uint32_t cp = 0;
      int digits = 0;
      while (k < raw.size() && hexDigit(raw[k]) >= 0 && digits < 7) {
        cp = cp * 16 + hexDigit(raw[k]);
        ++k;
        ++digits;
      }
      if (k >= raw.size() || raw[k] != '}' || digits == 0 || digits > 6 || cp > 0x10FFFF ||
          (cp >= 0xD800 && cp <= 0xDFFF)) {
        *error = "bad escape: \\u{...} needs 1 to 6 hex digits naming a Unicode scalar value";
        return false;
      }
      appendUtf8(out, cp);
      i = k + 1;
      return true;
    }
    default:
      *error = std::string("bad escape \\") + c +
               " (Cedar allows \\n \\r \\t \\\\ \\0 \\' \\\" \\xHH \\u{...}, and \\* in patterns)";
      return false;
  }
}

}  // namespace

std::vector<Token> lex(std::string_view src) {
  std::vector<Token> out;
  int line = 1;
  size_t lineStart = 0;
  size_t i = 0;
  auto push = [&](Tok kind, size_t start, size_t end, std::string text) {
    out.push_back(
        Token{kind, std::move(text), line, static_cast<int>(start - lineStart) + 1, start, end});
  };
  while (true) {
    // Whitespace and // comments.
    while (i < src.size()) {
      char c = src[i];
      if (c == '\n') {
        ++line;
        lineStart = ++i;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++i;
      } else if (c == '/' && i + 1 < src.size() && src[i + 1] == '/') {
        while (i < src.size() && src[i] != '\n') ++i;
      } else {
        break;
      }
    }
    if (i >= src.size()) {
      push(Tok::END, i, i, "");
      return out;
    }
    size_t start = i;
    char c = src[i];
    if (identStart(c)) {
      while (i < src.size() && identChar(src[i])) ++i;
      push(Tok::IDENT, start, i, std::string(src.substr(start, i - start)));
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      while (i < src.size() && std::isdigit(static_cast<unsigned char>(src[i]))) ++i;
      push(Tok::INT, start, i, std::string(src.substr(start, i - start)));
      continue;
    }
    if (c == '"') {
      int startLine = line;
      size_t startLineStart = lineStart;
      ++i;
      while (i < src.size() && src[i] != '"') {
        if (src[i] == '\\' && i + 1 < src.size()) {
          ++i;
        }
        if (src[i] == '\n') {
          ++line;
          lineStart = i + 1;
        }
        ++i;
      }
      if (i >= src.size()) {
        out.push_back(Token{Tok::ERROR, "unterminated string literal (no closing \")", startLine,
                            static_cast<int>(start - startLineStart) + 1, start, i});
        out.push_back(Token{Tok::END, "", line, static_cast<int>(i - lineStart) + 1, i, i});
        return out;
      }
      ++i;
      out.push_back(Token{Tok::STRING, std::string(src.substr(start + 1, i - start - 2)), startLine,
                          static_cast<int>(start - startLineStart) + 1, start, i});
      continue;
    }
    auto two = [&](char next) { return i + 1 < src.size() && src[i + 1] == next; };
    Tok kind;
    size_t len = 1;
    switch (c) {
      case '(':
        kind = Tok::LPAREN;
        break;
      case ')':
        kind = Tok::RPAREN;
        break;
      case '[':
        kind = Tok::LBRACKET;
        break;
      case ']':
        kind = Tok::RBRACKET;
        break;
      case '{':
        kind = Tok::LBRACE;
        break;
      case '}':
        kind = Tok::RBRACE;
        break;
      case ',':
        kind = Tok::COMMA;
        break;
      case ';':
        kind = Tok::SEMI;
        break;
      case '.':
        kind = Tok::DOT;
        break;
      case '@':
        kind = Tok::AT;
        break;
      case '?':
        kind = Tok::QUESTION;
        break;
      case '+':
        kind = Tok::PLUS;
        break;
      case '-':
        kind = Tok::MINUS;
        break;
      case '*':
        kind = Tok::STAR;
        break;
      case ':':
        kind = two(':') ? (len = 2, Tok::COLONCOLON) : Tok::COLON;
        break;
      case '=':
        kind = two('=') ? (len = 2, Tok::EQEQ) : Tok::ERROR;
        break;
      case '!':
        kind = two('=') ? (len = 2, Tok::NE) : Tok::NOT;
        break;
      case '<':
        kind = two('=') ? (len = 2, Tok::LE) : Tok::LT;
        break;
      case '>':
        kind = two('=') ? (len = 2, Tok::GE) : Tok::GT;
        break;
      case '&':
        kind = two('&') ? (len = 2, Tok::AND) : Tok::ERROR;
        break;
      case '|':
        kind = two('|') ? (len = 2, Tok::OR) : Tok::ERROR;
        break;
      default:
        kind = Tok::ERROR;
    }
    if (kind == Tok::ERROR) {
      std::string msg;
      if (c == '=') {
        msg = "unexpected '=' (comparison is '==')";
      } else if (c == '&' || c == '|') {
        msg = std::string("unexpected '") + c + "' (did you mean '" + c + c + "'?)";
      } else if (c == '/' && two('*')) {
        msg = "block comments /* */ are not supported (use //)";
      } else if (static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f) {
        msg = std::string("unexpected character '") + c + "'";
      } else {
        char buf[8];
        snprintf(buf, sizeof buf, "0x%02x", static_cast<unsigned>(static_cast<unsigned char>(c)));
        msg = std::string("unexpected byte ") + buf;
      }
      push(Tok::ERROR, start, start + 1, msg);
      push(Tok::END, src.size(), src.size(), "");
      return out;
    }
    i += len;
    push(kind, start, i, "");
  }
}

std::string describe(const Token& t) {
  switch (t.kind) {
    case Tok::END:
      return "end of file";
    case Tok::IDENT:
      return "'" + t.text + "'";
    case Tok::STRING:
      return "string \"" + t.text.substr(0, 40) + "\"";
    case Tok::INT:
      return "number " + t.text;
    case Tok::ERROR:
      return t.text;
    case Tok::LPAREN:
      return "'('";
    case Tok::RPAREN:
      return "')'";
    case Tok::LBRACKET:
      return "'['";
    case Tok::RBRACKET:
      return "']'";
    case Tok::LBRACE:
      return "'{'";
    case Tok::RBRACE:
      return "'}'";
    case Tok::COMMA:
      return "','";
    case Tok::SEMI:
      return "';'";
    case Tok::DOT:
      return "'.'";
    case Tok::COLON:
      return "':'";
    case Tok::COLONCOLON:
      return "'::'";
    case Tok::AT:
      return "'@'";
    case Tok::QUESTION:
      return "'?'";
    case Tok::EQEQ:
      return "'=='";
    case Tok::NE:
      return "'!='";
    case Tok::LT:
      return "'<'";
    case Tok::LE:
      return "'<='";
    case Tok::GT:
      return "'>'";
    case Tok::GE:
      return "'>='";
    case Tok::AND:
      return "'&&'";
    case Tok::OR:
      return "'||'";
    case Tok::NOT:
      return "'!'";
    case Tok::MINUS:
      return "'-'";
    case Tok::PLUS:
      return "'+'";
    case Tok::STAR:
      return "'*'";
  }
  return "?";
}

bool unescapeString(std::string_view raw, std::string* out, std::string* error, size_t* errorAt) {
  out->clear();
  for (size_t i = 0; i < raw.size();) {
    if (raw[i] != '\\') {
      *out += raw[i++];
      continue;
    }
    size_t at = i;
    bool star;
    if (!decodeEscape(raw, i, out, &star, error)) {
      *errorAt = at;
      return false;
    }
    if (star) {
      *error = "bad escape \\* (only allowed in like-patterns)";
      *errorAt = at;
      return false;
    }
  }
  return true;
}

bool unescapePattern(std::string_view raw, std::vector<PatternPart>* out, std::string* error,
                     size_t* errorAt) {
  out->clear();
  auto literal = [&]() -> std::string& {
    if (out->empty() || out->back().wildcard) out->push_back(PatternPart{false, ""});
    return out->back().text;
  };
  for (size_t i = 0; i < raw.size();) {
    if (raw[i] == '*') {
      if (out->empty() || !out->back().wildcard) out->push_back(PatternPart{true, ""});
      ++i;
    } else if (raw[i] == '\\') {
      size_t at = i;
      std::string decoded;
      bool star;
      if (!decodeEscape(raw, i, &decoded, &star, error)) {
        *errorAt = at;
        return false;
      }
      literal() += decoded;
    } else {
      literal() += raw[i++];
    }
  }
  return true;
}

}  // namespace chitin::policy
