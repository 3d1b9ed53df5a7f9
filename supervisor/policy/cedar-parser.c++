// SPDX-License-Identifier: Apache-2.0
// Recursive-descent parser for chitin's Cedar subset, with validation (see cedar-parser.h).
// Runs in: supervisor
//
// Grammar (Cedar's, minus what docs/cedar-subset.md excludes):
//   Policy    ::= {Annotation} ('permit'|'forbid') '(' Scope ')' {Condition} ';'
//   Condition ::= ('when'|'unless') '{' Expr '}'
//   Expr      ::= Or | 'if' Expr 'then' Expr 'else' Expr
//   Or ::= And {'||' And}          And ::= Relation {'&&' Relation}
//   Relation  ::= Add [RELOP Add] | Add 'has' (IDENT{'.'IDENT}|STR) | Add 'like' STR
//               | Add 'is' Path ['in' Add]
//   Add ::= Mult {('+'|'-') Mult}  Mult ::= Unary {'*' Unary}
//   Unary ::= {'!'|'-'} Member     Member ::= Primary {'.' IDENT ['(' Args ')'] | '[' STR ']'}
//   Primary   ::= INT | STR | 'true' | 'false' | Var | Entity | '(' Expr ')' | '[' Args ']'
//               | '{' [Key ':' Expr {',' Key ':' Expr}] '}'
// Parse errors unwind to the policy with an exception (parse time only; evaluation never
// throws), and parsing resumes after the next ';'.

#include "cedar-parser.h"

#include <set>

#include "cedar-lexer.h"
#include "policy-model.h"

namespace chitin::policy {

std::string ParseError::str() const {
  if (line == 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

namespace {

struct Fail {};

using ExprPtr = std::unique_ptr<Expr>;

class Parser {
 public:
  Parser(std::string_view src, std::string file, std::vector<ParseError>& errors)
      : src_(src), file_(std::move(file)), toks_(lex(src)), errors_(errors) {
    size_t slash = file_.rfind('/');
    base_ = slash == std::string::npos ? file_ : file_.substr(slash + 1);
  }

  void parseFile(std::vector<std::shared_ptr<const Policy>>& out) {
    while (peek().kind != Tok::END) {
      try {
        out.push_back(parsePolicy());
      } catch (Fail&) {
        // Resume after the next ';' (or stop at a lexer error, which ends the token stream).
        while (peek().kind != Tok::END && peek().kind != Tok::SEMI && peek().kind != Tok::ERROR) {
          ++pos_;
        }
        if (peek().kind != Tok::END) ++pos_;
        if (toks_[pos_ - 1].kind == Tok::ERROR) break;
      }
    }
  }

  // For parseEntityUid: one entity literal and nothing else.
  std::optional<EntityUid> parseLoneEntity() {
    try {
      if (peek().kind != Tok::IDENT)
        fail(peek(), "expected Type::\"id\", found " + describe(peek()));
      EntityUid uid = entityLiteral(false);
      if (peek().kind != Tok::END)
        fail(peek(), "unexpected " + describe(peek()) + " after the entity");
      return uid;
    } catch (Fail&) {
      return std::nullopt;
    }
  }

 private:
  std::string_view src_;
  std::string file_, base_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  std::vector<ParseError>& errors_;

  const Token& peek(size_t ahead = 0) const {
    size_t i = std::min(pos_ + ahead, toks_.size() - 1);
    return toks_[i];
  }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (t.kind != Tok::END && t.kind != Tok::ERROR) ++pos_;
    return t;
  }
  bool isIdent(const char* name, size_t ahead = 0) const {
    return peek(ahead).kind == Tok::IDENT && peek(ahead).text == name;
  }

  void report(int line, int column, std::string message) {
    errors_.push_back(ParseError{file_, line, column, std::move(message)});
  }
  [[noreturn]] void fail(const Token& at, std::string message) {
    if (at.kind == Tok::ERROR) message = at.text;  // the lexer's message says it better
    report(at.line, at.column, std::move(message));
    throw Fail();
  }
  const Token& expect(Tok kind, const char* what) {
    if (peek().kind != kind)
      fail(peek(), std::string("expected ") + what + ", found " + describe(peek()));
    return next();
  }
  void expectIdent(const char* name, const char* context) {
    if (!isIdent(name)) {
      fail(peek(),
           std::string("expected '") + name + "'" + context + ", found " + describe(peek()));
    }
    next();
  }

  // Line and column of a byte offset (only used on errors inside string literals).
  std::pair<int, int> position(size_t offset) const {
    int line = 1;
    size_t lineStart = 0;
    for (size_t i = 0; i < offset && i < src_.size(); ++i) {
      if (src_[i] == '\n') {
        ++line;
        lineStart = i + 1;
      }
    }
    return {line, static_cast<int>(offset - lineStart) + 1};
  }

  std::string decodeString(const Token& t) {
    std::string out, error;
    size_t at = 0;
    if (!unescapeString(t.text, &out, &error, &at)) {
      auto [line, column] = position(t.offset + 1 + at);
      report(line, column, error);
      throw Fail();
    }
    return out;
  }

  void checkType(const std::string& type, const Token& at) {
    if (!isKnownEntityType(type)) {
      report(at.line, at.column,
             "unknown entity type \"" + type + "\" (known: " + knownEntityTypesList() + ")");
    }
  }

  template <typename T>
  ExprPtr node(Expr::Op op, const T& at) {
    auto e = std::make_unique<Expr>();
    e->op = op;
    e->line = at.line;
    e->column = at.column;
    return e;
  }
  ExprPtr binary(Expr::Op op, const Token& at, ExprPtr a, ExprPtr b) {
    ExprPtr e = node(op, at);
    e->kids.push_back(std::move(a));
    e->kids.push_back(std::move(b));
    return e;
  }

  // Path '::' STRING, with the first IDENT current. `validate`: check the type and action id.
  EntityUid entityLiteral(bool validate) {
    const Token& first = peek();
    std::string type = expect(Tok::IDENT, "an entity type").text;
    while (true) {
      expect(Tok::COLONCOLON, "'::' after the entity type");
      if (peek().kind == Tok::STRING) break;
      if (peek().kind == Tok::IDENT) {
        type += "::" + next().text;
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

  EntityUid scopeEntity() {
    if (peek().kind == Tok::QUESTION) {
      fail(peek(), "templates (?principal, ?resource) are not supported");
    }
    if (peek().kind != Tok::IDENT)
      fail(peek(), "expected an entity Type::\"id\", found " + describe(peek()));
    return entityLiteral(true);
  }

  std::string typePath() {
    const Token& first = peek();
    std::string type = expect(Tok::IDENT, "an entity type").text;
    while (peek().kind == Tok::COLONCOLON && peek(1).kind == Tok::IDENT) {
      next();
      type += "::" + next().text;
    }
    checkType(type, first);
    return type;
  }

  ScopeConstraint principalOrResource(const char* var) {
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

  ScopeConstraint actionScope() {
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
        if (peek().kind != Tok::RBRACKET) {
          c.entities.push_back(scopeEntity());
          while (peek().kind == Tok::COMMA) {
            next();
            c.entities.push_back(scopeEntity());
          }
        }
        expect(Tok::RBRACKET, "',' or ']' in the action list");
      } else {
        c.kind = ScopeConstraint::Kind::IN;
        c.entities.push_back(scopeEntity());
      }
    } else if (isIdent("is")) {
      fail(peek(), "'action is' is not supported in the scope");
    }
    return c;
  }

  std::shared_ptr<const Policy> parsePolicy() {
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

  ExprPtr expr() {
    if (isIdent("if")) {
      ExprPtr e = node(Expr::Op::IF, next());
      e->kids.push_back(expr());
      expectIdent("then", " after the if-condition");
      e->kids.push_back(expr());
      expectIdent("else", " (Cedar's if needs an else)");
      e->kids.push_back(expr());
      return e;
    }
    return orExpr();
  }

  ExprPtr orExpr() {
    ExprPtr e = andExpr();
    while (peek().kind == Tok::OR) {
      const Token& op = next();
      e = binary(Expr::Op::OR, op, std::move(e), andExpr());
    }
    return e;
  }

  ExprPtr andExpr() {
    ExprPtr e = relation();
    while (peek().kind == Tok::AND) {
      const Token& op = next();
      e = binary(Expr::Op::AND, op, std::move(e), relation());
    }
    return e;
  }

  ExprPtr relation() {
    ExprPtr lhs = add();
    const Token& t = peek();
    Expr::Op op;
    switch (t.kind) {
      case Tok::EQEQ:
        op = Expr::Op::EQ;
        break;
      case Tok::NE:
        op = Expr::Op::NE;
        break;
      case Tok::LT:
        op = Expr::Op::LT;
        break;
      case Tok::LE:
        op = Expr::Op::LE;
        break;
      case Tok::GT:
        op = Expr::Op::GT;
        break;
      case Tok::GE:
        op = Expr::Op::GE;
        break;
      case Tok::IDENT:
        if (t.text == "in") {
          op = Expr::Op::IN;
          break;
        }
        if (t.text == "has") return hasExpr(std::move(lhs));
        if (t.text == "like") {
          ExprPtr e = node(Expr::Op::LIKE, next());
          const Token& pat = expect(Tok::STRING, "a quoted pattern after 'like'");
          std::string error;
          size_t at = 0;
          if (!unescapePattern(pat.text, &e->pattern, &error, &at)) {
            auto [line, column] = position(pat.offset + 1 + at);
            report(line, column, error);
            throw Fail();
          }
          e->kids.push_back(std::move(lhs));
          return e;
        }
        if (t.text == "is") {
          ExprPtr e = node(Expr::Op::IS, next());
          e->name = typePath();
          e->kids.push_back(std::move(lhs));
          if (isIdent("in")) {
            next();
            e->op = Expr::Op::IS_IN;
            e->kids.push_back(add());
          }
          return e;
        }
        return lhs;
      default:
        return lhs;
    }
    next();
    ExprPtr e = binary(op, t, std::move(lhs), add());
    const Token& after = peek();
    if (after.kind == Tok::EQEQ || after.kind == Tok::NE || after.kind == Tok::LT ||
        after.kind == Tok::LE || after.kind == Tok::GT || after.kind == Tok::GE ||
        (after.kind == Tok::IDENT && (after.text == "in" || after.text == "has" ||
                                      after.text == "like" || after.text == "is"))) {
      fail(after, "comparisons do not chain: add parentheses before " + describe(after));
    }
    return e;
  }

  // `e has a`, `e has "a b"`, and Cedar 4's `e has a.b` (= e has a && e.a has b).
  ExprPtr hasExpr(ExprPtr lhs) {
    const Token& hasTok = next();
    std::vector<std::string> path;
    if (peek().kind == Tok::STRING) {
      path.push_back(decodeString(next()));
    } else {
      path.push_back(expect(Tok::IDENT, "an attribute name or quoted string after 'has'").text);
      while (peek().kind == Tok::DOT && peek(1).kind == Tok::IDENT) {
        next();
        path.push_back(next().text);
      }
    }
    ExprPtr result;
    for (size_t i = 0; i < path.size(); ++i) {
      // Rebuild lhs.path[0..i) for each step: copying the lhs tree is parse-time only.
      ExprPtr target = clone(*lhs);
      for (size_t k = 0; k < i; ++k) {
        ExprPtr get = node(Expr::Op::GET_ATTR, hasTok);
        get->name = path[k];
        get->kids.push_back(std::move(target));
        target = std::move(get);
      }
      ExprPtr h = node(Expr::Op::HAS, hasTok);
      h->name = path[i];
      h->kids.push_back(std::move(target));
      result =
          result ? binary(Expr::Op::AND, hasTok, std::move(result), std::move(h)) : std::move(h);
    }
    return result;
  }

  static ExprPtr clone(const Expr& e) {
    auto c = std::make_unique<Expr>();
    c->op = e.op;
    c->line = e.line;
    c->column = e.column;
    c->var = e.var;
    c->lit = e.lit;
    c->name = e.name;
    c->pattern = e.pattern;
    c->keys = e.keys;
    for (const ExprPtr& k : e.kids) c->kids.push_back(clone(*k));
    return c;
  }

  ExprPtr add() {
    ExprPtr e = mult();
    while (peek().kind == Tok::PLUS || peek().kind == Tok::MINUS) {
      const Token& op = next();
      e = binary(op.kind == Tok::PLUS ? Expr::Op::ADD : Expr::Op::SUB, op, std::move(e), mult());
    }
    return e;
  }

  ExprPtr mult() {
    ExprPtr e = unary();
    while (peek().kind == Tok::STAR) {
      const Token& op = next();
      e = binary(Expr::Op::MUL, op, std::move(e), unary());
    }
    return e;
  }

  ExprPtr unary() {
    std::vector<const Token*> ops;
    while (peek().kind == Tok::NOT || peek().kind == Tok::MINUS) ops.push_back(&next());
    if (ops.size() > 4) fail(*ops[4], "more than 4 unary operators in a row");
    ExprPtr e;
    // `-` directly before a number is a negative literal, so -9223372036854775808 is valid.
    if (!ops.empty() && ops.back()->kind == Tok::MINUS && peek().kind == Tok::INT &&
        peek(1).kind != Tok::DOT && peek(1).kind != Tok::LBRACKET) {
      const Token& num = next();
      e = node(Expr::Op::LIT, *ops.back());
      e->lit = Value::integer(parseInt(num, true));
      ops.pop_back();
    } else {
      e = member();
    }
    while (!ops.empty()) {
      ExprPtr u = node(ops.back()->kind == Tok::NOT ? Expr::Op::NOT : Expr::Op::NEG, *ops.back());
      u->kids.push_back(std::move(e));
      e = std::move(u);
      ops.pop_back();
    }
    return e;
  }

  int64_t parseInt(const Token& t, bool negative) {
    // 9223372036854775808 fits only as the magnitude of INT64_MIN.
    const uint64_t limit = negative ? 9223372036854775808ULL : 9223372036854775807ULL;
    uint64_t v = 0;
    for (char c : t.text) {
      uint64_t d = static_cast<uint64_t>(c - '0');
      if (v > (limit - d) / 10)
        fail(t, "integer literal " + t.text + " is out of range for a Long");
      v = v * 10 + d;
    }
    return negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  }

  ExprPtr member() {
    ExprPtr e = primary();
    while (true) {
      if (peek().kind == Tok::DOT) {
        const Token& dot = next();
        const Token& name = expect(Tok::IDENT, "an attribute or method name after '.'");
        if (peek().kind == Tok::LPAREN) {
          e = method(std::move(e), name);
          continue;
        }
        ExprPtr g = node(Expr::Op::GET_ATTR, dot);
        g->name = name.text;
        g->kids.push_back(std::move(e));
        e = std::move(g);
      } else if (peek().kind == Tok::LBRACKET) {
        const Token& br = next();
        ExprPtr g = node(Expr::Op::GET_ATTR, br);
        g->name = decodeString(expect(Tok::STRING, "a quoted attribute name in [...]"));
        expect(Tok::RBRACKET, "']' after the attribute name");
        g->kids.push_back(std::move(e));
        e = std::move(g);
      } else {
        return e;
      }
    }
  }

  ExprPtr method(ExprPtr receiver, const Token& name) {
    Expr::Op op;
    size_t arity = 1;
    if (name.text == "contains") {
      op = Expr::Op::CONTAINS;
    } else if (name.text == "containsAll") {
      op = Expr::Op::CONTAINS_ALL;
    } else if (name.text == "containsAny") {
      op = Expr::Op::CONTAINS_ANY;
    } else if (name.text == "isEmpty") {
      op = Expr::Op::IS_EMPTY;
      arity = 0;
    } else if (name.text == "getTag" || name.text == "hasTag") {
      fail(name, "entity tags (" + name.text + ") are not supported");
    } else {
      static const std::set<std::string> EXTENSION_METHODS = {
          "lessThan",      "lessThanOrEqual", "greaterThan", "greaterThanOrEqual", "isIpv4",
          "isIpv6",        "isLoopback",      "isMulticast", "isInRange",          "offset",
          "durationSince", "toDate",          "toTime",      "toMilliseconds",     "toSeconds",
          "toMinutes",     "toHours",         "toDays"};
      if (EXTENSION_METHODS.count(name.text)) {
        fail(name, "extension methods (" + name.text + ") are not supported");
      }
      fail(name, "unknown method '" + name.text +
                     "' (supported: contains, containsAll, containsAny, isEmpty)");
    }
    ExprPtr e = node(op, name);
    e->kids.push_back(std::move(receiver));
    expect(Tok::LPAREN, "'('");
    if (peek().kind != Tok::RPAREN) {
      e->kids.push_back(expr());
      while (peek().kind == Tok::COMMA) {
        next();
        e->kids.push_back(expr());
      }
    }
    expect(Tok::RPAREN, "')' after the method arguments");
    if (e->kids.size() - 1 != arity) {
      report(
          name.line, name.column,
          name.text + "() takes " + std::to_string(arity) + " argument" + (arity == 1 ? "" : "s"));
      throw Fail();
    }
    return e;
  }

  ExprPtr primary() {
    const Token& t = peek();
    switch (t.kind) {
      case Tok::INT: {
        next();
        ExprPtr e = node(Expr::Op::LIT, t);
        e->lit = Value::integer(parseInt(t, false));
        return e;
      }
      case Tok::STRING: {
        next();
        ExprPtr e = node(Expr::Op::LIT, t);
        e->lit = Value::string(decodeString(t));
        return e;
      }
      case Tok::LPAREN: {
        next();
        ExprPtr e = expr();
        expect(Tok::RPAREN, "')'");
        return e;
      }
      case Tok::LBRACKET: {
        ExprPtr e = node(Expr::Op::SET, next());
        if (peek().kind != Tok::RBRACKET) {
          e->kids.push_back(expr());
          while (peek().kind == Tok::COMMA) {
            next();
            e->kids.push_back(expr());
          }
        }
        expect(Tok::RBRACKET, "',' or ']' in the set");
        return e;
      }
      case Tok::LBRACE: {
        ExprPtr e = node(Expr::Op::RECORD, next());
        std::set<std::string> seen;
        if (peek().kind != Tok::RBRACE) {
          while (true) {
            const Token& key = peek();
            std::string name;
            if (key.kind == Tok::IDENT) {
              name = next().text;
            } else if (key.kind == Tok::STRING) {
              name = decodeString(next());
            } else {
              fail(key, "expected a record key (name or quoted string), found " + describe(key));
            }
            if (!seen.insert(name).second) fail(key, "duplicate record key \"" + name + "\"");
            expect(Tok::COLON, "':' after the record key");
            e->keys.push_back(name);
            e->kids.push_back(expr());
            if (peek().kind != Tok::COMMA) break;
            next();
          }
        }
        expect(Tok::RBRACE, "',' or '}' in the record");
        return e;
      }
      case Tok::QUESTION:
        fail(t, "templates (?principal, ?resource) are not supported");
      case Tok::IDENT: {
        if (t.text == "true" || t.text == "false") {
          next();
          ExprPtr e = node(Expr::Op::LIT, t);
          e->lit = Value::boolean(t.text == "true");
          return e;
        }
        static const std::pair<const char*, Var> VARS[] = {{"principal", Var::PRINCIPAL},
                                                           {"action", Var::ACTION},
                                                           {"resource", Var::RESOURCE},
                                                           {"context", Var::CONTEXT}};
        for (const auto& [name, var] : VARS) {
          if (t.text == name) {
            next();
            ExprPtr e = node(Expr::Op::VAR, t);
            e->var = var;
            return e;
          }
        }
        // A function call, possibly namespaced: Cedar's are all extension functions.
        size_t k = 1;
        while (peek(k).kind == Tok::COLONCOLON && peek(k + 1).kind == Tok::IDENT) k += 2;
        if (peek(k).kind == Tok::LPAREN) {
          fail(t, "extension functions (" + t.text +
                      "(...); ip, decimal, datetime, duration) are not supported");
        }
        if (peek(1).kind == Tok::COLONCOLON) {
          ExprPtr e = node(Expr::Op::LIT, t);
          e->lit = Value::entity(entityLiteral(true));
          return e;
        }
        if (t.text == "if") fail(t, "wrap if-then-else in parentheses when it is an operand");
        fail(t,
             "unknown identifier '" + t.text +
                 "' (expected principal, action, resource, context, true, false, or Type::\"id\")");
      }
      default:
        fail(t, "expected an expression, found " + describe(t));
    }
  }
};

}  // namespace

std::vector<ParseError> parsePolicies(const std::string& text, const std::string& fileName,
                                      std::vector<std::shared_ptr<const Policy>>& out) {
  std::vector<ParseError> errors;
  Parser(text, fileName, errors).parseFile(out);
  return errors;
}

std::optional<EntityUid> parseEntityUid(const std::string& text, std::string* error) {
  std::vector<ParseError> errors;
  auto uid = Parser(text, "", errors).parseLoneEntity();
  if (!uid) {
    *error = "expected an entity Type::\"id\" (e.g. Sender::\"telegram:123\") but got '" + text +
             "'" + (errors.empty() ? "" : ": " + errors[0].message);
  }
  return uid;
}

}  // namespace chitin::policy
