// SPDX-License-Identifier: Apache-2.0
// The parsed form of Cedar policies: scope constraints and condition expression trees.
// Runs in: supervisor
//
// Everything the evaluator needs is resolved here at parse time: literals are Values, string
// escapes and like-patterns are decoded, entity literals are uids, and set or record literals
// made only of literals are one Value. Chains of `&&`, `||` and `+ - *` are one node with many
// kids, so a long flat chain is wide, not deep: the parser bounds every tree's depth
// (MAX_EXPR_DEPTH), and the evaluator's recursion follows the depth, never the width.

#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cedar-value.h"

namespace chitin::policy {

enum class Var : uint8_t { PRINCIPAL, ACTION, RESOURCE, CONTEXT };

// One piece of a like-pattern: a literal run, or the `*` wildcard.
struct PatternPart {
  bool wildcard;
  std::string text;
};

struct Expr {
  enum class Op : uint8_t {
    LIT,
    VAR,
    IF,
    AND,
    OR,
    NOT,
    NEG,
    EQ,
    NE,
    LT,
    LE,
    GT,
    GE,
    ARITH,  // kids[0] arith[0] kids[1] arith[1] kids[2] ..., left to right
    ADD,    // ADD, SUB and MUL appear only in `arith`
    SUB,
    MUL,
    IN,
    HAS,
    LIKE,
    IS,
    IS_IN,
    GET_ATTR,
    CONTAINS,
    CONTAINS_ALL,
    CONTAINS_ANY,
    IS_EMPTY,
    SET,
    RECORD,
  };
  Op op;
  uint16_t depth = 1;  // levels from here down, parentheses included (<= MAX_EXPR_DEPTH)
  int line = 0, column = 0;
  Var var = Var::PRINCIPAL;          // VAR
  Value lit;                         // LIT
  std::string name;                  // GET_ATTR: the attribute; IS/IS_IN: the entity type
  std::vector<PatternPart> pattern;  // LIKE
  std::vector<std::string> keys;     // RECORD: one per kid; HAS: the path (`e has a.b`: a, b)
  std::vector<Op> arith;             // ARITH: kids.size() - 1 operators
  // AND/OR/ARITH: two or more; IF: three; the rest: as many as the operator takes.
  std::vector<std::unique_ptr<Expr>> kids;
};

struct ScopeConstraint {
  enum class Kind : uint8_t { ANY, EQ, IN, IN_SET, IS, IS_IN };
  Kind kind = Kind::ANY;
  std::vector<EntityUid> entities;  // EQ/IN/IS_IN: one; IN_SET (action only): any number
  std::string type;                 // IS/IS_IN
};

struct Condition {
  bool when;  // false: unless
  std::unique_ptr<Expr> expr;
};

struct Policy {
  std::string id;
  bool permit = false;
  ScopeConstraint principal, action, resource;
  std::vector<Condition> conditions;
  std::map<std::string, std::string> annotations;
  std::string file;  // as given to addFile
  int line = 0, column = 0;
  std::string text;  // the policy's source text, annotations included
  std::string location() const { return file + ":" + std::to_string(line); }
};

}  // namespace chitin::policy
