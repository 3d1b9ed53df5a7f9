// SPDX-License-Identifier: Apache-2.0
// Recursive-descent parser for chitin's Cedar subset: tokens and errors, policies, scopes and
// the entry points (see cedar-parser.h; the grammar is in cedar-parser-internal.h).
// Runs in: supervisor

#include "cedar-parser.h"

#include <algorithm>

#include "cedar-parser-internal.h"
#include "policy-model.h"

namespace chitin::policy {

std::string ParseError::str() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

namespace parser {

namespace {

// Cedar's reserved identifiers (cedar-policy's grammar), and the prefix it keeps for itself.
// Cedar rejects them as attribute names, record keys and type-path parts; so does chitin.
bool isReserved(std::string_view name) {
  static constexpr std::string_view RESERVED[] = {"true", "false", "if",   "then", "else",
                                                  "in",   "is",    "like", "has",  "__cedar"};
  return std::find(std::begin(RESERVED), std::end(RESERVED), name) != std::end(RESERVED);
}

}  // namespace

Parser::Parser(std::string_view src, std::string file, std::vector<ParseError>& errors)
    : src_(src), file_(std::move(file)), toks_(lex(src)), errors_(errors) {
  size_t slash = file_.rfind('/');
  base_ = slash == std::string::npos ? file_ : file_.substr(slash + 1);
}

void Parser::parseFile(std::vector<std::shared_ptr<const Policy>>& out) {
  while (peek().kind != Tok::END) {
    try {
      out.push_back(parsePolicy());
    } catch (Fail&) {
      nesting_ = 0;
      // Resume after the next ';' (or stop at a lexer error, which ends the token stream).
      while (peek().kind != Tok::END && peek().kind != Tok::SEMI && peek().kind != Tok::ERROR) {
        ++pos_;
      }
      if (peek().kind != Tok::END) ++pos_;
      if (toks_[pos_ - 1].kind == Tok::ERROR) break;
    }
  }
}

std::optional<EntityUid> Parser::parseLoneEntity() {
  try {
    if (peek().kind != Tok::IDENT) fail(peek(), "expected Type::\"id\", found " + describe(peek()));
    EntityUid uid = entityLiteral(false);
    if (peek().kind != Tok::END)
      fail(peek(), "unexpected " + describe(peek()) + " after the entity");
    return uid;
  } catch (Fail&) {
    return std::nullopt;
  }
}

void Parser::report(int line, int column, std::string message) {
  errors_.push_back(ParseError{file_, line, column, std::move(message)});
}

void Parser::fail(const Token& at, std::string message) {
  if (at.kind == Tok::ERROR) message = at.text;  // the lexer's message says it better
  failAt(at.line, at.column, std::move(message));
}

void Parser::failAt(int line, int column, std::string message) {
  report(line, column, std::move(message));
  throw Fail();
}

const Token& Parser::expect(Tok kind, const char* what) {
  if (peek().kind != kind)
    fail(peek(), std::string("expected ") + what + ", found " + describe(peek()));
  return next();
}

void Parser::expectIdent(const char* name, const char* context) {
  if (!isIdent(name)) {
    fail(peek(), std::string("expected '") + name + "'" + context + ", found " + describe(peek()));
  }
  next();
}

std::pair<int, int> Parser::position(const Token& t, size_t offset) const {
  // Only the token's own bytes are scanned: a file full of bad strings stays linear.
  int line = t.line;
  size_t lineStart = t.offset - static_cast<size_t>(t.column - 1);
  for (size_t i = t.offset; i < offset && i < src_.size(); ++i) {
    if (src_[i] == '\n') {
      ++line;
      lineStart = i + 1;
    }
  }
  return {line, static_cast<int>(offset - lineStart) + 1};
}

std::string Parser::decodeString(const Token& t) {
  std::string out, error;
  size_t at = 0;
  if (!unescapeString(t.text, &out, &error, &at)) {
    auto [line, column] = position(t, t.offset + 1 + at);
    failAt(line, column, error);
  }
  return out;
}

const Token& Parser::name(const char* what) {
  const Token& t = expect(Tok::IDENT, what);
  checkName(t, what);
  return t;
}

void Parser::checkName(const Token& t, const char* what, const char* hint) {
  if (isReserved(t.text))
    fail(t, "'" + t.text + "' is reserved in Cedar and cannot be " + what + hint);
}

void Parser::checkType(const std::string& type, const Token& at) {
  if (!isKnownEntityType(type)) {
    report(at.line, at.column,
           "unknown entity type \"" + type + "\" (known: " + knownEntityTypesList() + ")");
  }
}

// Path '::' STRING, with the first IDENT current. `validate`: check the type and action id.
EntityUid Parser::entityLiteral(bool validate) {
  const Token& first = peek();
  std::string type = name("an entity type").text;
  while (true) {
    expect(Tok::COLONCOLON, "'::' after the entity type");
    if (peek().kind == Tok::STRING) break;
    if (peek().kind == Tok::IDENT) {
      type += "::" + name("part of an entity type").text;
      continue;
    }
    fail(peek(), "expected a quoted entity id after '" + type + "::', found " + describe(peek()));
  }
  const Token& idTok = next();
  EntityUid uid{type, decodeString(idTok)};
  if (validate) {
    checkType(type, first);
    if (type == "Action" && !isKnownAction(uid.id)) {
      report(idTok.line, idTok.column,
             "unknown action \"" + uid.id + "\" (known: " + knownActionsList() + ")");
    }
  }
  return uid;
}

EntityUid Parser::scopeEntity() {
  if (peek().kind == Tok::QUESTION) {
    fail(peek(), "templates (?principal, ?resource) are not supported");
  }
  if (peek().kind != Tok::IDENT)
    fail(peek(), "expected an entity Type::\"id\", found " + describe(peek()));
  return entityLiteral(true);
}

std::string Parser::typePath() {
  const Token& first = peek();
  std::string type = name("an entity type").text;
  while (peek().kind == Tok::COLONCOLON && peek(1).kind == Tok::IDENT) {
    next();
    type += "::" + name("part of an entity type").text;
  }
  checkType(type, first);
  return type;
}

ScopeConstraint Parser::principalOrResource(const char* var) {
  expectIdent(var, " in the policy scope");
  ScopeConstraint c;
  if (peek().kind == Tok::EQEQ) {
    next();
    c.kind = ScopeConstraint::Kind::EQ;
    c.entities.push_back(scopeEntity());
  } else if (isIdent("is")) {
    next();
    c.type = typePath();
    c.kind = ScopeConstraint::Kind::IS;
    if (isIdent("in")) {
      next();
      c.kind = ScopeConstraint::Kind::IS_IN;
      c.entities.push_back(scopeEntity());
    }
  } else if (isIdent("in")) {
    next();
    if (peek().kind == Tok::LBRACKET) {
      fail(peek(), std::string("'") + var +
                       " in [...]' is not allowed (only the action scope takes a list)");
    }
    c.kind = ScopeConstraint::Kind::IN;
    c.entities.push_back(scopeEntity());
  }
  return c;
}

ScopeConstraint Parser::actionScope() {
  expectIdent("action", " in the policy scope");
  ScopeConstraint c;
  if (peek().kind == Tok::EQEQ) {
    next();
    c.kind = ScopeConstraint::Kind::EQ;
    c.entities.push_back(scopeEntity());
  } else if (isIdent("in")) {
    next();
    if (peek().kind == Tok::LBRACKET) {
      next();
      c.kind = ScopeConstraint::Kind::IN_SET;
      commaList(Tok::RBRACKET, "',' or ']' in the action list",
                [&] { c.entities.push_back(scopeEntity()); });
    } else {
      c.kind = ScopeConstraint::Kind::IN;
      c.entities.push_back(scopeEntity());
    }
  } else if (isIdent("is")) {
    fail(peek(), "'action is' is not supported in the scope");
  }
  return c;
}

std::shared_ptr<const Policy> Parser::parsePolicy() {
  auto p = std::make_shared<Policy>();
  const Token& start = peek();
  p->file = file_;
  p->line = start.line;
  p->column = start.column;
  while (peek().kind == Tok::AT) {
    const Token& at = next();
    std::string key = expect(Tok::IDENT, "an annotation name after '@'").text;
    std::string value;
    if (peek().kind == Tok::LPAREN) {
      next();
      value = decodeString(expect(Tok::STRING, "a quoted annotation value"));
      expect(Tok::RPAREN, "')' after the annotation value");
    }
    if (!p->annotations.emplace(key, value).second) {
      report(at.line, at.column, "duplicate annotation @" + key);
    }
  }
  if (isIdent("namespace")) fail(peek(), "namespace declarations are not supported");
  if (!isIdent("permit") && !isIdent("forbid")) {
    fail(peek(), "expected 'permit' or 'forbid', found " + describe(peek()));
  }
  p->permit = next().text == "permit";
  expect(Tok::LPAREN, "'(' to open the scope");
  p->principal = principalOrResource("principal");
  expect(Tok::COMMA, "',' after the principal constraint");
  p->action = actionScope();
  expect(Tok::COMMA, "',' after the action constraint");
  p->resource = principalOrResource("resource");
  // Cedar allows one trailing comma, and nothing after it.
  if (peek().kind == Tok::COMMA && peek(1).kind == Tok::RPAREN) next();
  if (peek().kind == Tok::COMMA) {
    fail(peek(), "unexpected ',' after the resource constraint (the scope has three parts)");
  }
  expect(Tok::RPAREN, "')' to close the scope");
  while (isIdent("when") || isIdent("unless")) {
    bool when = next().text == "when";
    expect(Tok::LBRACE, "'{' to open the condition");
    p->conditions.push_back(Condition{when, expr()});
    expect(Tok::RBRACE, "'}' to close the condition");
  }
  if (peek().kind != Tok::SEMI) {
    fail(peek(),
         "expected ';' at the end of the policy (or 'when'/'unless'), found " + describe(peek()));
  }
  const Token& semi = next();
  p->text = std::string(src_.substr(start.offset, semi.end - start.offset));
  auto id = p->annotations.find("id");
  p->id = id != p->annotations.end() ? id->second : base_ + ":" + std::to_string(p->line);
  return p;
}

}  // namespace parser

std::vector<ParseError> parsePolicies(const std::string& text, const std::string& fileName,
                                      std::vector<std::shared_ptr<const Policy>>& out) {
  std::vector<ParseError> errors;
  if (text.size() > MAX_POLICY_FILE_BYTES) {
    errors.push_back(ParseError{fileName, 0, 0,
                                "the file has more than " + std::to_string(MAX_POLICY_FILE_BYTES) +
                                    " bytes, the limit for a policy file (split it into several "
                                    "files)"});
    return errors;
  }
  parser::Parser(text, fileName, errors).parseFile(out);
  return errors;
}

std::optional<EntityUid> parseEntityUid(const std::string& text, std::string* error) {
  std::vector<ParseError> errors;
  auto uid = parser::Parser(text, "", errors).parseLoneEntity();
  if (!uid) {
    *error = "expected an entity Type::\"id\" (e.g. Sender::\"telegram:123\") but got '" + text +
             "'" + (errors.empty() ? "" : ": " + errors[0].message);
  }
  return uid;
}

}  // namespace chitin::policy
