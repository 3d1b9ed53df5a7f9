// SPDX-License-Identifier: Apache-2.0
// The parsed form of Cedar policies: scope constraints and condition expression trees.
// Runs in: supervisor
//
// Everything the evaluator needs is resolved here at parse time: literals are Values, string
// escapes and like-patterns are decoded, entity literals are uids.

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
    ADD,
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
  int line = 0, column = 0;
  Var var = Var::PRINCIPAL;          // VAR
  Value lit;                         // LIT
  std::string name;                  // HAS/GET_ATTR: the attribute; IS/IS_IN: the entity type
  std::vector<PatternPart> pattern;  // LIKE
  std::vector<std::string> keys;     // RECORD: one per kid
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
