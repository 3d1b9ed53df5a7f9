// SPDX-License-Identifier: Apache-2.0
// The expression half of the Cedar parser (grammar in cedar-parser-internal.h): builds Expr
// trees no deeper than MAX_EXPR_DEPTH, with chains as one wide node.
// Runs in: supervisor
//
// Two checks keep crafted text from recursing: expr() counts its own nesting on the way down
// (so 5,000 '(' stop at the 101st, before any node exists), and seal() measures each node on
// the way up (so `.a.a.a...` or `!` under `-` under a set cannot build a deep tree either).

#include <algorithm>
#include <set>

#include "cedar-parser-internal.h"

namespace chitin::policy::parser {

namespace {

bool isRelOp(const Token& t) {
  switch (t.kind) {
    case Tok::EQEQ:
    case Tok::NE:
    case Tok::LT:
    case Tok::LE:
    case Tok::GT:
    case Tok::GE:
      return true;
    case Tok::IDENT:
      return t.text == "in" || t.text == "has" || t.text == "like" || t.text == "is";
    default:
      return false;
  }
}

constexpr const char* QUOTE_HINT = " (quote it: [\"...\"], has \"...\", {\"...\": ...})";

}  // namespace

void Parser::tooDeep(int line, int column) {
  failAt(line, column,
         "the expression nests deeper than the limit of " + std::to_string(MAX_EXPR_DEPTH) +
             " levels (parentheses, sets, records, if, operators and attribute accesses each "
             "count one)");
}

ExprPtr Parser::seal(ExprPtr e, int extraLevels) {
  int depth = 0;
  for (const ExprPtr& k : e->kids) depth = std::max<int>(depth, k->depth);
  depth += 1 + extraLevels;
  if (depth > MAX_EXPR_DEPTH) tooDeep(e->line, e->column);
  e->depth = static_cast<uint16_t>(depth);
  return e;
}

ExprPtr Parser::expr() {
  struct Nest {
    int& n;
    ~Nest() { --n; }
  } nest{++nesting_};
  if (nesting_ > MAX_EXPR_DEPTH) tooDeep(peek().line, peek().column);
  if (isIdent("if")) {
    ExprPtr e = node(Expr::Op::IF, next());
    e->kids.push_back(expr());
    expectIdent("then", " after the if-condition");
    e->kids.push_back(expr());
    expectIdent("else", " (Cedar's if needs an else)");
    e->kids.push_back(expr());
    return seal(std::move(e));
  }
  return orExpr();
}

ExprPtr Parser::orExpr() {
  ExprPtr first = andExpr();
  if (peek().kind != Tok::OR) return first;
  ExprPtr e = node(Expr::Op::OR, peek());
  e->kids.push_back(std::move(first));
  while (peek().kind == Tok::OR) {
    next();
    e->kids.push_back(andExpr());
  }
  return seal(std::move(e));
}

ExprPtr Parser::andExpr() {
  ExprPtr first = relation();
  if (peek().kind != Tok::AND) return first;
  ExprPtr e = node(Expr::Op::AND, peek());
  e->kids.push_back(std::move(first));
  while (peek().kind == Tok::AND) {
    next();
    e->kids.push_back(relation());
  }
  return seal(std::move(e));
}

ExprPtr Parser::relation() {
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
          auto [line, column] = position(pat, pat.offset + 1 + at);
          failAt(line, column, error);
        }
        e->kids.push_back(std::move(lhs));
        return seal(std::move(e));
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
        return seal(std::move(e));
      }
      return lhs;
    default:
      return lhs;
  }
  next();
  ExprPtr e = node(op, t);
  e->kids.push_back(std::move(lhs));
  e->kids.push_back(add());
  if (isRelOp(peek())) {
    fail(peek(), "comparisons do not chain: add parentheses before " + describe(peek()));
  }
  return seal(std::move(e));
}

// `e has a`, `e has "a b"`, and Cedar 4's `e has a.b` (= e has a && e.a has b): one node with
// the path, evaluated in one pass (cedar-eval.c++), each attribute a level of depth.
ExprPtr Parser::hasExpr(ExprPtr lhs) {
  ExprPtr e = node(Expr::Op::HAS, next());
  if (peek().kind == Tok::STRING) {
    e->keys.push_back(decodeString(next()));
  } else {
    const Token& first = expect(Tok::IDENT, "an attribute name or quoted string after 'has'");
    checkName(first, "an attribute name", QUOTE_HINT);
    e->keys.push_back(first.text);
    while (peek().kind == Tok::DOT && peek(1).kind == Tok::IDENT) {
      next();
      const Token& part = next();
      checkName(part, "an attribute name", QUOTE_HINT);
      if (lhs->depth + e->keys.size() + 1 > MAX_EXPR_DEPTH) tooDeep(part.line, part.column);
      e->keys.push_back(part.text);
    }
  }
  e->kids.push_back(std::move(lhs));
  int steps = static_cast<int>(e->keys.size());  // before e is moved from
  return seal(std::move(e), steps - 1);
}

ExprPtr Parser::add() {
  ExprPtr first = mult();
  if (peek().kind != Tok::PLUS && peek().kind != Tok::MINUS) return first;
  ExprPtr e = node(Expr::Op::ARITH, peek());
  e->kids.push_back(std::move(first));
  while (peek().kind == Tok::PLUS || peek().kind == Tok::MINUS) {
    e->arith.push_back(next().kind == Tok::PLUS ? Expr::Op::ADD : Expr::Op::SUB);
    e->kids.push_back(mult());
  }
  return seal(std::move(e));
}

ExprPtr Parser::mult() {
  ExprPtr first = unary();
  if (peek().kind != Tok::STAR) return first;
  ExprPtr e = node(Expr::Op::ARITH, peek());
  e->kids.push_back(std::move(first));
  while (peek().kind == Tok::STAR) {
    next();
    e->arith.push_back(Expr::Op::MUL);
    e->kids.push_back(unary());
  }
  return seal(std::move(e));
}

ExprPtr Parser::unary() {
  std::vector<const Token*> ops;
  while (peek().kind == Tok::NOT || peek().kind == Tok::MINUS) {
    const Token& op = next();
    if (!ops.empty() && op.kind != ops[0]->kind) {
      fail(op, describe(op) + " after " + describe(*ops[0]) +
                   ": Cedar does not mix unary operators (add parentheses)");
    }
    ops.push_back(&op);
  }
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
    e = seal(std::move(u));
    ops.pop_back();
  }
  return e;
}

int64_t Parser::parseInt(const Token& t, bool negative) {
  // 9223372036854775808 fits only as the magnitude of INT64_MIN.
  const uint64_t limit = negative ? 9223372036854775808ULL : 9223372036854775807ULL;
  uint64_t v = 0;
  for (char c : t.text) {
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (limit - d) / 10) fail(t, "integer literal " + t.text + " is out of range for a Long");
    v = v * 10 + d;
  }
  return negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
}

ExprPtr Parser::member() {
  ExprPtr e = primary();
  while (true) {
    if (peek().kind == Tok::DOT) {
      const Token& dot = next();
      const Token& name = expect(Tok::IDENT, "an attribute or method name after '.'");
      if (peek().kind == Tok::LPAREN) {
        e = method(std::move(e), name);
        continue;
      }
      checkName(name, "an attribute name", QUOTE_HINT);
      ExprPtr g = node(Expr::Op::GET_ATTR, dot);
      g->name = name.text;
      g->kids.push_back(std::move(e));
      e = seal(std::move(g));
    } else if (peek().kind == Tok::LBRACKET) {
      const Token& br = next();
      ExprPtr g = node(Expr::Op::GET_ATTR, br);
      g->name = decodeString(expect(Tok::STRING, "a quoted attribute name in [...]"));
      expect(Tok::RBRACKET, "']' after the attribute name");
      g->kids.push_back(std::move(e));
      e = seal(std::move(g));
    } else {
      return e;
    }
  }
}

ExprPtr Parser::method(ExprPtr receiver, const Token& name) {
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
  commaList(Tok::RPAREN, "')' after the method arguments", [&] { e->kids.push_back(expr()); });
  if (e->kids.size() - 1 != arity) {
    failAt(name.line, name.column,
           name.text + "() takes " + std::to_string(arity) + " argument" + (arity == 1 ? "" : "s"));
  }
  return seal(std::move(e));
}

ExprPtr Parser::primary() {
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
      if (e->depth + 1 > MAX_EXPR_DEPTH) tooDeep(t.line, t.column);
      ++e->depth;
      return e;
    }
    case Tok::LBRACKET:
      return setLiteral();
    case Tok::LBRACE:
      return recordLiteral();
    case Tok::QUESTION:
      fail(t, "templates (?principal, ?resource) are not supported");
    case Tok::IDENT:
      return identifier();
    default:
      fail(t, "expected an expression, found " + describe(t));
  }
}

// A set of literals is one literal Value, built here once instead of on every evaluation
// (a generated allowlist is such a set).
ExprPtr Parser::setLiteral() {
  ExprPtr e = node(Expr::Op::SET, next());
  commaList(Tok::RBRACKET, "',' or ']' in the set", [&] { e->kids.push_back(expr()); });
  e = seal(std::move(e));
  bool constant = true;
  for (const ExprPtr& k : e->kids) constant = constant && k->op == Expr::Op::LIT;
  if (!constant) return e;
  Value::Set values;
  values.reserve(e->kids.size());
  for (const ExprPtr& k : e->kids) values.push_back(k->lit);
  e->op = Expr::Op::LIT;
  e->lit = Value::set(std::move(values));
  e->kids.clear();
  return e;
}

ExprPtr Parser::recordLiteral() {
  ExprPtr e = node(Expr::Op::RECORD, next());
  std::set<std::string> seen;
  commaList(Tok::RBRACE, "',' or '}' in the record", [&] {
    const Token& key = peek();
    std::string name;
    if (key.kind == Tok::IDENT) {
      checkName(key, "a record key", QUOTE_HINT);
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
  });
  e = seal(std::move(e));
  bool constant = true;
  for (const ExprPtr& k : e->kids) constant = constant && k->op == Expr::Op::LIT;
  if (!constant) return e;
  Value::Record fields;
  for (size_t i = 0; i < e->kids.size(); ++i) fields.emplace(e->keys[i], e->kids[i]->lit);
  e->op = Expr::Op::LIT;
  e->lit = Value::record(std::move(fields));
  e->kids.clear();
  e->keys.clear();
  return e;
}

// true, false, a variable, or an entity literal (possibly namespaced).
ExprPtr Parser::identifier() {
  const Token& t = peek();
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
  fail(t, "unknown identifier '" + t.text +
              "' (expected principal, action, resource, context, true, false, or Type::\"id\")");
}

}  // namespace chitin::policy::parser
