// SPDX-License-Identifier: Apache-2.0
// Fuzz target: Cedar policy text through the parser and validator, and a policy set that
// parses through decide() and explain() for a few requests against a small entity store.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// The requests are the shapes the supervisor builds (guard.c++): each action, File/Agent/Host
// resources, and a context with tainted, channel, args, program and simple. Checks: evaluation
// never throws (its errors are values), decide() agrees with explain()'s verdict, and no parsed
// expression is deeper than MAX_EXPR_DEPTH (or than the depth its root records).

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz-support.h"
#include "policy.h"

namespace policy = chitin::policy;

namespace {

const char ENTITIES[] = R"([
  {"uid": {"type": "Group", "id": "owners"}, "attrs": {}, "parents": []},
  {"uid": {"type": "Group", "id": "friends"}, "attrs": {"trusted": false},
   "parents": [{"type": "Group", "id": "owners"}]},
  {"uid": {"type": "User", "id": "owner"}, "attrs": {"level": 9, "tags": ["admin"]},
   "parents": [{"type": "Group", "id": "owners"}]},
  {"uid": {"type": "User", "id": "alice"}, "attrs": {"level": 5},
   "parents": [{"type": "Group", "id": "friends"}]},
  {"uid": {"type": "Sender", "id": "local:operator"}, "attrs": {},
   "parents": [{"type": "User", "id": "owner"}]},
  {"uid": {"type": "Sender", "id": "telegram:1"}, "attrs": {"blocked": false, "level": 2},
   "parents": [{"type": "User", "id": "alice"}]},
  {"uid": {"type": "Agent", "id": "main"},
   "attrs": {"owner": {"__entity": {"type": "User", "id": "owner"}}}, "parents": []},
  {"uid": {"type": "Host", "id": "example.org"}, "attrs": {"port": 443}, "parents": []}
])";

struct Fixture {
  policy::Entities entities;
  std::vector<policy::Request> requests;

  Fixture() {
    entities = policy::Entities::fromJson(nlohmann::json::parse(ENTITIES), "fuzz-entities");
    auto uid = [](const char* type, const char* id) { return policy::EntityUid{type, id}; };
    policy::EntityUid file = policy::addFileEntity(entities, "main", "notes/todo.md");
    struct Shape {
      policy::EntityUid principal;
      const char* action;
      policy::EntityUid resource;
      bool tainted;
      const char* program;
    };
    const Shape shapes[] = {
        {uid("Sender", "local:operator"), "chat", uid("Agent", "main"), false, ""},
        {uid("Sender", "local:operator"), "exec", uid("Agent", "main"), false, "ls"},
        {uid("Sender", "telegram:1"), "exec", uid("Agent", "main"), true, "rm"},
        {uid("Sender", "local:operator"), "write", file, true, ""},
        {uid("Sender", "telegram:1"), "read", file, false, ""},
        {uid("Sender", "telegram:9"), "web_fetch", uid("Host", "example.org"), false, ""},
        {uid("User", "alice"), "approve", uid("Agent", "nobody"), false, ""},
    };
    for (const auto& shape : shapes) {
      policy::Value::Record args;
      args["command"] = policy::Value::string(shape.program);
      args["timeoutSeconds"] = policy::Value::integer(30);
      policy::Value::Record context;
      context["tainted"] = policy::Value::boolean(shape.tainted);
      context["channel"] = policy::Value::string(shape.tainted ? "telegram" : "local");
      context["chatType"] = policy::Value::string("direct");
      context["mentioned"] = policy::Value::boolean(true);
      context["args"] = policy::Value::record(std::move(args));
      context["program"] = policy::Value::string(shape.program);
      context["simple"] = policy::Value::boolean(!shape.tainted);
      policy::Request request;
      request.principal = shape.principal;
      request.action = uid("Action", shape.action);
      request.resource = shape.resource;
      request.context = policy::Value::record(std::move(context));
      requests.push_back(std::move(request));
    }
  }
};

// The height of an expression tree, measured without recursion (the fuzzer may find a way
// past the parser's bounds; this check must not be the thing that then overflows).
size_t height(const policy::Expr& root) {
  size_t deepest = 0;
  std::vector<std::pair<const policy::Expr*, size_t>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [e, depth] = stack.back();
    stack.pop_back();
    deepest = std::max(deepest, depth);
    for (const auto& k : e->kids) stack.push_back({k.get(), depth + 1});
  }
  return deepest;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  chitin::fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Fixture fixture;
  std::string text(reinterpret_cast<const char*>(data), size);
  policy::PolicySet set;
  auto errors = set.addFile(text, "fuzz.cedar");
  for (const auto& error : errors) (void)error.str();
  if (!errors.empty()) {
    FUZZ_CHECK(set.size() == 0, "a file with errors added policies");
    return 0;
  }
  for (const auto& p : set.policies()) {
    FUZZ_CHECK(set.find(p->id) == p.get(), p->id);
    for (const auto& c : p->conditions) {
      FUZZ_CHECK(c.expr->depth <= policy::MAX_EXPR_DEPTH, "an expression past the depth limit");
      FUZZ_CHECK(height(*c.expr) <= c.expr->depth, "an expression deeper than it records");
    }
  }
  for (const auto& request : fixture.requests) {
    policy::Verdict verdict = policy::decide(set, fixture.entities, request);
    policy::Explanation explanation = policy::explain(set, fixture.entities, request);
    FUZZ_CHECK(explanation.verdict.outcome == verdict.outcome, "explain() disagrees with decide()");
    FUZZ_CHECK(explanation.unconfirmed.trace.size() == set.size(), "trace misses policies");
  }
  return 0;
}
