// SPDX-License-Identifier: Apache-2.0
// Tokens of Cedar policy text, and the decoding of string literals (escapes, like-patterns).
// Runs in: supervisor

#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cedar-ast.h"

namespace chitin::policy {

enum class Tok : uint8_t {
  END,
  IDENT,
  STRING,
  INT,
  LPAREN,
  RPAREN,
  LBRACKET,
  RBRACKET,
  LBRACE,
  RBRACE,
  COMMA,
  SEMI,
  DOT,
  COLON,
  COLONCOLON,
  AT,
  QUESTION,
  EQEQ,
  NE,
  LT,
  LE,
  GT,
  GE,
  AND,
  OR,
  NOT,
  MINUS,
  PLUS,
  STAR,
  ERROR,
};

struct Token {
  Tok kind;
  std::string text;  // IDENT: the name; STRING: the raw body between the quotes; INT: digits;
                     // ERROR: the message
  int line, column;
  size_t offset, end;  // byte range in the source
};

// Never fails: bad input becomes an ERROR token (and lexing stops there), so the parser reports
// it in order with everything else. The last token is END.
std::vector<Token> lex(std::string_view src);

// How a token is named in "expected X, found Y" messages.
std::string describe(const Token& t);

// Decodes a string literal's raw body. Cedar's escapes: \n \r \t \\ \0 \' \" \xHH (ASCII)
// \u{H..H}. On a bad escape returns false with *error set and *errorAt the byte index of the
// backslash in `raw`.
bool unescapeString(std::string_view raw, std::string* out, std::string* error, size_t* errorAt);
// The same for a like-pattern, where `*` is the wildcard and `\*` a literal star.
bool unescapePattern(std::string_view raw, std::vector<PatternPart>* out, std::string* error,
                     size_t* errorAt);

}  // namespace chitin::policy
