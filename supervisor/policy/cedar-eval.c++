// SPDX-License-Identifier: Apache-2.0
// Cedar expression evaluator (see cedar-eval.h). Semantics follow the Cedar language reference:
// && and || short-circuit, == never fails (values of different types are unequal), everything
// else is strictly typed.
// Runs in: supervisor

#include "cedar-eval.h"

#include <algorithm>

namespace chitin::policy {

namespace {

using Op = Expr::Op;

bool fail(EvalEnv& env, std::string message) {
  env.error = std::move(message);
  return false;
}

bool typeError(EvalEnv& env, const char* what, const char* expected, const Value& got) {
  return fail(env, std::string("type error: ") + what + " expects " + expected + ", got " +
                       kindName(got.kind()) + " " + got.str(60));
}

bool evalBool(const Expr& e, EvalEnv& env, const char* what, bool& out) {
  Value v;
  if (!evalExpr(e, env, v)) return false;
  if (!v.isBool()) return typeError(env, what, "a bool", v);
  out = v.asBool();
  return true;
}

bool evalLong(const Expr& e, EvalEnv& env, const char* what, int64_t& out) {
  Value v;
  if (!evalExpr(e, env, v)) return false;
  if (!v.isLong()) return typeError(env, what, "a long", v);
  out = v.asLong();
  return true;
}

bool evalSet(const Expr& e, EvalEnv& env, const char* what, Value& out) {
  if (!evalExpr(e, env, out)) return false;
  if (!out.isSet()) return typeError(env, what, "a set", out);
  return true;
}

bool setContains(const Value::Set& s, const Value& v) {
  return std::binary_search(s.begin(), s.end(), v,
                            [](const Value& a, const Value& b) { return a.compare(b) < 0; });
}

// Glob match with `*` parts; byte-wise is exact for UTF-8 since literal runs are whole
// characters.
bool likeMatch(std::string_view s, const std::vector<PatternPart>& pat) {
  size_t si = 0, pi = 0;
  size_t starPi = SIZE_MAX, starSi = 0;
  while (true) {
    if (pi < pat.size() && pat[pi].wildcard) {
      starPi = ++pi;
      starSi = si;
      continue;
    }
    if (pi < pat.size()) {
      const std::string& lit = pat[pi].text;
      if (s.compare(si, lit.size(), lit) == 0 && si + lit.size() <= s.size()) {
        si += lit.size();
        ++pi;
        continue;
      }
    } else if (si == s.size()) {
      return true;
    }
    // Mismatch (or pattern done with input left): let the last `*` swallow one more byte.
    if (starPi == SIZE_MAX || starSi >= s.size()) return false;
    si = ++starSi;
    pi = starPi;
  }
}

bool inValue(EvalEnv& env, const EntityUid& lhs, const Value& rhs, bool& out) {
  if (rhs.isEntity()) {
    out = env.ancestors.in(lhs, rhs.asEntity());
    return true;
  }
  if (!rhs.isSet()) return typeError(env, "'in'", "an entity or a set of entities", rhs);
  for (const Value& v : rhs.asSet()) {
    if (!v.isEntity()) return typeError(env, "'in'", "a set of entities", v);
  }
  out = false;
  for (const Value& v : rhs.asSet()) {
    if (env.ancestors.in(lhs, v.asEntity())) {
      out = true;
      break;
    }
  }
  return true;
}

// `a + b - c * ...` as one node: left to right, each step checked for overflow, as the
// left-nested binary operations would be.
bool arith(const Expr& e, EvalEnv& env, Value& out) {
  auto what = [](Op op) { return op == Op::ADD ? "'+'" : op == Op::SUB ? "'-'" : "'*'"; };
  int64_t acc;
  if (!evalLong(*e.kids[0], env, what(e.arith[0]), acc)) return false;
  for (size_t i = 1; i < e.kids.size(); ++i) {
    Op op = e.arith[i - 1];
    int64_t b, r;
    if (!evalLong(*e.kids[i], env, what(op), b)) return false;
    bool overflow = op == Op::ADD   ? __builtin_add_overflow(acc, b, &r)
                    : op == Op::SUB ? __builtin_sub_overflow(acc, b, &r)
                                    : __builtin_mul_overflow(acc, b, &r);
    if (overflow) {
      return fail(env, "overflow: " + std::to_string(acc) + " " +
                           std::string(what(op)).substr(1, 1) + " " + std::to_string(b) +
                           " does not fit in a Long");
    }
    acc = r;
  }
  out = Value::integer(acc);
  return true;
}

// `e has a.b.c`: Cedar's `e has a && e.a has b && e.a.b has c`, walking the value once.
bool hasPath(const Expr& e, EvalEnv& env, Value& out) {
  Value v;
  if (!evalExpr(*e.kids[0], env, v)) return false;
  for (const std::string& key : e.keys) {
    const Value::Record* rec;
    if (v.isRecord()) {
      rec = &v.asRecord();
    } else if (v.isEntity()) {
      const Entity* ent = env.entities.find(v.asEntity());
      if (ent == nullptr) {  // an entity not in the store has no attributes
        out = Value::boolean(false);
        return true;
      }
      rec = &ent->attrs.asRecord();
    } else {
      return typeError(env, "'has'", "an entity or a record", v);
    }
    auto it = rec->find(key);
    if (it == rec->end()) {
      out = Value::boolean(false);
      return true;
    }
    Value next = it->second;  // before `v`, which may own the record, is replaced
    v = std::move(next);
  }
  out = Value::boolean(true);
  return true;
}

}  // namespace

bool evalExpr(const Expr& e, EvalEnv& env, Value& out) {
  switch (e.op) {
    case Op::LIT:
      out = e.lit;
      return true;
    case Op::VAR:
      switch (e.var) {
        case Var::PRINCIPAL:
          out = env.principal;
          return true;
        case Var::ACTION:
          out = env.action;
          return true;
        case Var::RESOURCE:
          out = env.resource;
          return true;
        case Var::CONTEXT:
          out = env.context;
          return true;
      }
      return false;
    case Op::IF: {
      bool c;
      if (!evalBool(*e.kids[0], env, "if", c)) return false;
      return evalExpr(*e.kids[c ? 1 : 2], env, out);
    }
    case Op::AND:
    case Op::OR: {
      // Left to right; the first operand that decides (false for &&, true for ||) ends it.
      const bool decides = e.op == Op::OR;
      const char* what = decides ? "'||'" : "'&&'";
      for (const auto& k : e.kids) {
        bool v;
        if (!evalBool(*k, env, what, v)) return false;
        if (v == decides) {
          out = Value::boolean(decides);
          return true;
        }
      }
      out = Value::boolean(!decides);
      return true;
    }
    case Op::NOT: {
      bool a;
      if (!evalBool(*e.kids[0], env, "'!'", a)) return false;
      out = Value::boolean(!a);
      return true;
    }
    case Op::NEG: {
      int64_t a;
      if (!evalLong(*e.kids[0], env, "unary '-'", a)) return false;
      if (a == INT64_MIN) return fail(env, "overflow: -(" + std::to_string(a) + ")");
      out = Value::integer(-a);
      return true;
    }
    case Op::EQ:
    case Op::NE: {
      Value a, b;
      if (!evalExpr(*e.kids[0], env, a) || !evalExpr(*e.kids[1], env, b)) return false;
      out = Value::boolean((a == b) == (e.op == Op::EQ));
      return true;
    }
    case Op::LT:
    case Op::LE:
    case Op::GT:
    case Op::GE: {
      int64_t a, b;
      if (!evalLong(*e.kids[0], env, "comparison", a) ||
          !evalLong(*e.kids[1], env, "comparison", b)) {
        return false;
      }
      bool r = e.op == Op::LT ? a < b : e.op == Op::LE ? a <= b : e.op == Op::GT ? a > b : a >= b;
      out = Value::boolean(r);
      return true;
    }
    case Op::ARITH:
      return arith(e, env, out);
    case Op::ADD:
    case Op::SUB:
    case Op::MUL:
      break;  // only inside ARITH
    case Op::IN: {
      Value a, b;
      if (!evalExpr(*e.kids[0], env, a)) return false;
      if (!a.isEntity()) return typeError(env, "'in'", "an entity on the left", a);
      if (!evalExpr(*e.kids[1], env, b)) return false;
      bool r;
      if (!inValue(env, a.asEntity(), b, r)) return false;
      out = Value::boolean(r);
      return true;
    }
    case Op::HAS:
      return hasPath(e, env, out);
    case Op::LIKE: {
      Value a;
      if (!evalExpr(*e.kids[0], env, a)) return false;
      if (!a.isString()) return typeError(env, "'like'", "a string", a);
      out = Value::boolean(likeMatch(a.asString(), e.pattern));
      return true;
    }
    case Op::IS:
    case Op::IS_IN: {
      Value a;
      if (!evalExpr(*e.kids[0], env, a)) return false;
      if (!a.isEntity()) return typeError(env, "'is'", "an entity", a);
      if (a.asEntity().type != e.name || e.op == Op::IS) {
        out = Value::boolean(a.asEntity().type == e.name);
        return true;
      }
      Value b;
      if (!evalExpr(*e.kids[1], env, b)) return false;
      bool r;
      if (!inValue(env, a.asEntity(), b, r)) return false;
      out = Value::boolean(r);
      return true;
    }
    case Op::GET_ATTR: {
      Value a;
      if (!evalExpr(*e.kids[0], env, a)) return false;
      const Value::Record* rec;
      if (a.isRecord()) {
        rec = &a.asRecord();
      } else if (a.isEntity()) {
        const Entity* ent = env.entities.find(a.asEntity());
        if (ent == nullptr) {
          return fail(env,
                      "entity " + a.asEntity().str() + " does not exist (reading ." + e.name + ")");
        }
        rec = &ent->attrs.asRecord();
      } else {
        return typeError(env, "attribute access", "an entity or a record", a);
      }
      auto it = rec->find(e.name);
      if (it == rec->end()) {
        return fail(env, (a.isEntity() ? a.asEntity().str() : std::string("record")) +
                             " does not have the attribute \"" + e.name + "\"");
      }
      // Copy before `a` (which may own the record) goes away.
      Value v = it->second;
      out = std::move(v);
      return true;
    }
    case Op::CONTAINS: {
      Value s, v;
      if (!evalSet(*e.kids[0], env, "contains()", s) || !evalExpr(*e.kids[1], env, v)) {
        return false;
      }
      out = Value::boolean(setContains(s.asSet(), v));
      return true;
    }
    case Op::CONTAINS_ALL:
    case Op::CONTAINS_ANY: {
      bool all = e.op == Op::CONTAINS_ALL;
      const char* what = all ? "containsAll()" : "containsAny()";
      Value s, t;
      if (!evalSet(*e.kids[0], env, what, s) || !evalSet(*e.kids[1], env, what, t)) return false;
      bool r = all;
      for (const Value& v : t.asSet()) {
        if (setContains(s.asSet(), v) != all) {
          r = !all;
          break;
        }
      }
      out = Value::boolean(r);
      return true;
    }
    case Op::IS_EMPTY: {
      Value s;
      if (!evalSet(*e.kids[0], env, "isEmpty()", s)) return false;
      out = Value::boolean(s.asSet().empty());
      return true;
    }
    case Op::SET: {
      Value::Set s;
      s.reserve(e.kids.size());
      for (const auto& k : e.kids) {
        Value v;
        if (!evalExpr(*k, env, v)) return false;
        s.push_back(std::move(v));
      }
      out = Value::set(std::move(s));
      return true;
    }
    case Op::RECORD: {
      Value::Record r;
      for (size_t i = 0; i < e.kids.size(); ++i) {
        Value v;
        if (!evalExpr(*e.kids[i], env, v)) return false;
        r.emplace(e.keys[i], std::move(v));
      }
      out = Value::record(std::move(r));
      return true;
    }
  }
  return fail(env, "internal error: unknown expression");
}

namespace {

bool constraintMatches(const ScopeConstraint& c, const EntityUid& v, Ancestors& ancestors) {
  using K = ScopeConstraint::Kind;
  switch (c.kind) {
    case K::ANY:
      return true;
    case K::EQ:
      return v == c.entities[0];
    case K::IN:
      return ancestors.in(v, c.entities[0]);
    case K::IN_SET:
      return std::any_of(c.entities.begin(), c.entities.end(),
                         [&](const EntityUid& u) { return ancestors.in(v, u); });
    case K::IS:
      return v.type == c.type;
    case K::IS_IN:
      return v.type == c.type && ancestors.in(v, c.entities[0]);
  }
  return false;
}

}  // namespace

bool scopeMatches(const Policy& p, const EvalEnv& env) {
  return constraintMatches(p.action, env.request.action, env.ancestors) &&
         constraintMatches(p.principal, env.request.principal, env.ancestors) &&
         constraintMatches(p.resource, env.request.resource, env.ancestors);
}

PolicyResult evalConditions(const Policy& p, EvalEnv& env) {
  for (const Condition& c : p.conditions) {
    bool v;
    if (!evalBool(*c.expr, env, c.when ? "when" : "unless", v)) return PolicyResult::ERROR;
    if (v != c.when) return PolicyResult::NOT_SATISFIED;
  }
  return PolicyResult::SATISFIED;
}

}  // namespace chitin::policy
