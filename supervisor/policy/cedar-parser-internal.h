// SPDX-License-Identifier: Apache-2.0
// The parser's class, shared by its two halves: policies and scopes (cedar-parser.c++), and
// the expression grammar (cedar-parse-expr.c++). Private to the policy engine.
// Runs in: supervisor
//
// Grammar (Cedar's, minus what docs/cedar-subset.md excludes):
//   Policy    ::= {Annotation} ('permit'|'forbid') '(' Scope [','] ')' {Condition} ';'
//   Condition ::= ('when'|'unless') '{' Expr '}'
//   Expr      ::= Or | 'if' Expr 'then' Expr 'else' Expr
//   Or ::= And {'||' And}          And ::= Relation {'&&' Relation}
//   Relation  ::= Add [RELOP Add] | Add 'has' (NAME{'.'NAME}|STR) | Add 'like' STR
//               | Add 'is' Path ['in' Add]
//   Add ::= Mult {('+'|'-') Mult}  Mult ::= Unary {'*' Unary}
//   Unary ::= {'!'} Member | {'-'} Member      (at most 4; Cedar does not mix them)
//   Member    ::= Primary {'.' NAME ['(' [Exprs] ')'] | '[' STR ']'}
//   Primary   ::= INT | STR | 'true' | 'false' | Var | Entity | '(' Expr ')' | '[' [Exprs] ']'
//               | '{' [Key ':' Expr {',' Key ':' Expr} [',']] '}'
//   Exprs     ::= Expr {',' Expr} [',']
// NAME (an attribute, record key or type-path part) is an identifier that is not reserved:
// true false if then else in is like has __cedar. Parse errors unwind to the policy with an
// exception (parse time only; evaluation never throws), and parsing resumes after the next ';'.

#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cedar-lexer.h"
#include "cedar-parser.h"

namespace chitin::policy::parser {

struct Fail {};

using ExprPtr = std::unique_ptr<Expr>;

class Parser {
 public:
  Parser(std::string_view src, std::string file, std::vector<ParseError>& errors);

  void parseFile(std::vector<std::shared_ptr<const Policy>>& out);
  // For parseEntityUid: one entity literal and nothing else.
  std::optional<EntityUid> parseLoneEntity();

 private:
  std::string_view src_;
  std::string file_, base_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
  int nesting_ = 0;  // expr() calls under way: bounds the parser's own recursion
  std::vector<ParseError>& errors_;

  // --- tokens and errors (cedar-parser.c++)
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
  void report(int line, int column, std::string message);
  [[noreturn]] void fail(const Token& at, std::string message);
  [[noreturn]] void failAt(int line, int column, std::string message);
  const Token& expect(Tok kind, const char* what);
  void expectIdent(const char* name, const char* context);
  // The line and column of byte `offset`, which lies inside token `t`.
  std::pair<int, int> position(const Token& t, size_t offset) const;
  std::string decodeString(const Token& t);
  // An identifier used as a name (attribute, record key, type-path part): not a reserved word.
  const Token& name(const char* what);
  void checkName(const Token& t, const char* what, const char* hint = "");

  // --- policies and scopes (cedar-parser.c++)
  void checkType(const std::string& type, const Token& at);
  EntityUid entityLiteral(bool validate);
  EntityUid scopeEntity();
  std::string typePath();
  ScopeConstraint principalOrResource(const char* var);
  ScopeConstraint actionScope();
  std::shared_ptr<const Policy> parsePolicy();

  // --- expressions (cedar-parse-expr.c++)
  template <typename T>
  ExprPtr node(Expr::Op op, const T& at) {
    auto e = std::make_unique<Expr>();
    e->op = op;
    e->line = at.line;
    e->column = at.column;
    return e;
  }
  ExprPtr seal(ExprPtr e, int extraLevels = 0);
  [[noreturn]] void tooDeep(int line, int column);
  ExprPtr expr();
  ExprPtr orExpr();
  ExprPtr andExpr();
  ExprPtr relation();
  ExprPtr hasExpr(ExprPtr lhs);
  ExprPtr add();
  ExprPtr mult();
  ExprPtr unary();
  int64_t parseInt(const Token& t, bool negative);
  ExprPtr member();
  ExprPtr method(ExprPtr receiver, const Token& name);
  ExprPtr primary();
  ExprPtr setLiteral();
  ExprPtr recordLiteral();
  ExprPtr identifier();
  // Items separated by ',' up to `close` (consumed), with an optional trailing ','.
  template <typename F>
  void commaList(Tok close, const char* what, F item) {
    if (peek().kind != close) {
      item();
      while (peek().kind == Tok::COMMA) {
        next();
        if (peek().kind == close) break;
        item();
      }
    }
    expect(close, what);
  }
};

}  // namespace chitin::policy::parser
