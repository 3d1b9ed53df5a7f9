// SPDX-License-Identifier: Apache-2.0
// policy-bench: time decide() against the shipped default.cedar with a realistic entity store.
// Prints "policy decide p50 X.XX us p90 Y.YY us (n=N)" (scripts/bench reads that line).
// `policy-bench --shape FILE` times one run of a generated shape instead (tests/bench/bench.py
// writes it, and times the reference Cedar on the same file with tests/policy/cedar-bench.cjs).
// Runs in: test (a tool; not part of the supervisor)

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "policy.h"

using namespace chitin::policy;

#ifndef CHITIN_POLICIES_DIR
#define CHITIN_POLICIES_DIR "policies"
#endif

namespace {

Value ctx(bool tainted, std::string program, bool simple, Value args) {
  Value::Record r{{"tainted", Value::boolean(tainted)},
                  {"channel", Value::string("telegram")},
                  {"chatType", Value::string("direct")},
                  {"mentioned", Value::boolean(false)},
                  {"args", std::move(args)}};
  if (!program.empty()) {
    r.emplace("program", Value::string(std::move(program)));
    r.emplace("simple", Value::boolean(simple));
  }
  return Value::record(std::move(r));
}

double msSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// One run of a shape {"policies": "<text>", "entities": [...], "requests": [{"principal",
// "action", "resource", "context"}]}: parse the policies and the store (from the JSON text),
// then authorize every request (one evaluation each, as the reference's isAuthorized).
// Prints "shape load X ms, N requests Y ms, decisions D" where D is one letter (a/d) per request.
int shape(const char* path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  auto t0 = std::chrono::steady_clock::now();
  nlohmann::json j = nlohmann::json::parse(text.str());
  PolicySet set;
  auto errors = set.addFile(j.at("policies").get<std::string>(), "shape.cedar");
  for (auto& e : errors) fprintf(stderr, "%s\n", e.str().c_str());
  if (!errors.empty()) return 2;
  Entities entities = Entities::fromJson(j.at("entities"), "shape entities");
  double load = msSince(t0);
  std::string decisions;
  auto t1 = std::chrono::steady_clock::now();
  for (const auto& r : j.at("requests")) {
    Request req{uidFromJson(r.at("principal"), "principal"), uidFromJson(r.at("action"), "action"),
                uidFromJson(r.at("resource"), "resource"),
                valueFromJson(r.at("context"), "context")};
    decisions += isAuthorized(set, entities, req).allow ? 'a' : 'd';
  }
  double requests = msSince(t1);
  printf("shape load %.3f ms, %zu requests %.3f ms, decisions %s\n", load, decisions.size(),
         requests, decisions.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--shape") return shape(argv[2]);
  std::string dir = argc > 1 ? argv[1] : CHITIN_POLICIES_DIR;
  size_t n = argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 100000;
  auto loaded = PolicySet::loadDirs({dir});
  if (auto* errors = std::get_if<std::vector<ParseError>>(&loaded)) {
    for (auto& e : *errors) fprintf(stderr, "%s\n", e.str().c_str());
    return 2;
  }
  const PolicySet& set = std::get<PolicySet>(loaded);

  // ~20 entities: the defaults plus paired senders, users, groups and agents.
  Entities base = defaultEntities();
  for (int i = 0; i < 6; ++i) {
    std::string u = "user" + std::to_string(i);
    base.add({"User", u}, {}, {{"Group", i < 2 ? "owners" : "family"}});
    base.add({"Sender", "telegram:10" + std::to_string(i)}, {}, {{"User", u}});
  }
  base.add({"Group", "family"}, {}, {});
  for (const char* a : {"work", "home", "kids"}) {
    base.add({"Agent", a}, {{"owner", Value::entity({"User", "user1"})}}, {});
  }

  Value noArgs = Value::record({});
  struct Shape {
    const char* name;
    EntityUid principal, action, resource;
    Value context;
    bool file;
  };
  EntityUid owner{"Sender", "telegram:100"}, stranger{"Sender", "telegram:999"};
  EntityUid agent{"Agent", "main"};
  Value lsArgs = Value::record({{"command", Value::string("ls -la")}});
  Value rmArgs = Value::record({{"command", Value::string("rm -rf build")}});
  Value writeArgs = Value::record(
      {{"path", Value::string("notes/todo.md")}, {"content", Value::string("hello")}});
  std::vector<Shape> shapes = {
      {"owner chat", owner, {"Action", "chat"}, agent, ctx(false, "", false, noArgs), false},
      {"owner exec ls", owner, {"Action", "exec"}, agent, ctx(false, "ls", true, lsArgs), false},
      {"owner exec rm", owner, {"Action", "exec"}, agent, ctx(false, "rm", true, rmArgs), false},
      {"stranger chat", stranger, {"Action", "chat"}, agent, ctx(false, "", false, noArgs), false},
      {"owner write tainted",
       owner,
       {"Action", "write"},
       {},
       ctx(true, "", false, writeArgs),
       true},
      {"owner read", owner, {"Action", "read"}, {}, ctx(false, "", false, writeArgs), true},
  };

  std::vector<double> all;
  all.reserve(n);
  std::vector<std::vector<double>> perShape(shapes.size());
  int outcomes[3] = {0, 0, 0};
  for (size_t i = 0; i < n; ++i) {
    size_t s = i % shapes.size();
    Shape& sh = shapes[s];
    auto t0 = std::chrono::steady_clock::now();
    Request req{sh.principal, sh.action, sh.resource, sh.context};
    Entities entities(&base);
    if (sh.file) req.resource = addFileEntity(entities, "main", "notes/todo.md");
    Verdict v = decide(set, entities, req);
    auto t1 = std::chrono::steady_clock::now();
    ++outcomes[static_cast<int>(v.outcome)];
    double us = std::chrono::duration<double, std::micro>(t1 - t0).count();
    all.push_back(us);
    perShape[s].push_back(us);
  }
  auto pct = [](std::vector<double>& v, double p) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[static_cast<size_t>(p * (v.size() - 1))];
  };
  for (size_t s = 0; s < shapes.size(); ++s) {
    printf("  %-20s p50 %.2f us\n", shapes[s].name, pct(perShape[s], 0.5));
  }
  printf("  outcomes: %d allow, %d ask, %d deny; %zu policies, %zu entities\n", outcomes[0],
         outcomes[1], outcomes[2], set.size(), base.size());
  double p50 = pct(all, 0.5), p90 = pct(all, 0.9);
  printf("policy decide p50 %.2f us p90 %.2f us (n=%zu)\n", p50, p90, n);
  return 0;
}
