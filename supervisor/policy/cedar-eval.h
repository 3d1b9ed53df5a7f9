// SPDX-License-Identifier: Apache-2.0
// Evaluation of parsed Cedar policies against one request.
// Runs in: supervisor
//
// Never throws: a Cedar evaluation error (type mismatch, missing attribute, overflow, unknown
// entity) is an expected outcome that makes the policy not apply, so it is returned as a value.
// Recurses only as deep as the expression tree, which the parser bounds (MAX_EXPR_DEPTH);
// chains (`a || b || ...`, `1 + 2 + ...`) are one node, walked in a loop.

#pragma once

#include <string>

#include "cedar-ast.h"
#include "entities.h"

namespace chitin::policy {

struct Request {
  EntityUid principal, action, resource;
  Value context = Value::record({});  // a Record
};

// What one policy did for one request.
enum class PolicyResult : uint8_t { SCOPE_MISMATCH, SATISFIED, NOT_SATISFIED, ERROR };

// The request's variables as values, built once per evaluation of a policy set, and the
// ancestors of the entities met so far (shared by the evaluations of one request).
struct EvalEnv {
  EvalEnv(const Request& r, const Value& context, const Entities& e, Ancestors& a)
      : request(r),
        entities(e),
        ancestors(a),
        principal(Value::entity(r.principal)),
        action(Value::entity(r.action)),
        resource(Value::entity(r.resource)),
        context(context) {}
  const Request& request;
  const Entities& entities;
  Ancestors& ancestors;  // over `entities`
  Value principal, action, resource, context;
  std::string error;  // set when an evaluation fails
};

bool scopeMatches(const Policy& p, const EvalEnv& env);
// Evaluates the conditions (scope assumed matched). NOT_SATISFIED also covers "a when was false
// or an unless true". On ERROR, env.error has the message.
PolicyResult evalConditions(const Policy& p, EvalEnv& env);
// One expression; false on error with env.error set.
bool evalExpr(const Expr& e, EvalEnv& env, Value& out);

}  // namespace chitin::policy
