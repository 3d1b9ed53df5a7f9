// SPDX-License-Identifier: Apache-2.0
// Tests for Cedar evaluation semantics: default deny, forbid wins, errors, short-circuiting,
// like, has, in (hierarchy, cycles), overflow, set operations, equality.
// Runs in: test

#include <doctest/doctest.h>

#include "policy.h"

namespace chitin::policy {
namespace {

PolicySet policies(const std::string& text) {
  PolicySet set;
  auto errors = set.addFile(text, "t.cedar");
  for (auto& e : errors) FAIL(e.str());
  return set;
}

Entities store() {
  Entities e = defaultEntities();
  e.add({"User", "alice"},
        {{"age", Value::integer(30)}, {"tags", Value::set({Value::string("a")})}},
        {{"Group", "friends"}});
  e.add({"Sender", "telegram:1"}, {{"name", Value::string("Alice")}}, {{"User", "alice"}});
  // A cycle: g1 in g2 in g1.
  e.add({"Group", "g1"}, {}, {{"Group", "g2"}});
  e.add({"Group", "g2"}, {}, {{"Group", "g1"}});
  e.add({"User", "cyc"}, {}, {{"Group", "g1"}});
  return e;
}

Request request(Value::Record context = {}) {
  return Request{{"Sender", "telegram:1"},
                 {"Action", "chat"},
                 {"Agent", "main"},
                 Value::record(std::move(context))};
}

// The decision for a single `permit ... when { cond }` policy.
Decision when(const std::string& cond, Value::Record context = {}) {
  PolicySet set =
      policies("@id(\"p\") permit (principal, action, resource) when { " + cond + " };");
  return isAuthorized(set, store(), request(std::move(context)));
}
bool holds(const std::string& cond, Value::Record context = {}) {
  Decision d = when(cond, std::move(context));
  CAPTURE(cond);
  CHECK(d.errors.empty());
  return d.allow;
}
std::string errorFor(const std::string& cond) {
  Decision d = when(cond);
  CAPTURE(cond);
  CHECK(!d.allow);
  REQUIRE(d.errors.size() == 1);
  return d.errors[0];
}

TEST_CASE("eval: default deny, permit allows, forbid wins regardless of order") {
  Entities e = store();
  CHECK(!isAuthorized(PolicySet(), e, request()).allow);
  CHECK(isAuthorized(policies("permit (principal, action, resource);"), e, request()).allow);
  for (const char* text : {"@id(\"f\") forbid (principal, action, resource);\n@id(\"p\") permit "
                           "(principal, action, resource);",
                           "@id(\"p\") permit (principal, action, resource);\n@id(\"f\") forbid "
                           "(principal, action, resource);"}) {
    Decision d = isAuthorized(policies(text), e, request());
    CHECK(!d.allow);
    CHECK(d.determining == std::vector<std::string>{"f"});
  }
  Decision d = isAuthorized(
      policies("@id(\"a\") permit (principal, action, resource);\n@id(\"b\") permit (principal, "
               "action == Action::\"chat\", resource);\n@id(\"c\") permit (principal, action == "
               "Action::\"exec\", resource);"),
      e, request());
  CHECK(d.determining == std::vector<std::string>{"a", "b"});
}

TEST_CASE("eval: scope constraints") {
  Entities e = store();
  auto allows = [&](const std::string& scope) {
    CAPTURE(scope);
    return isAuthorized(policies("permit (" + scope + ");"), e, request()).allow;
  };
  CHECK(allows("principal == Sender::\"telegram:1\", action, resource"));
  CHECK(!allows("principal == Sender::\"telegram:2\", action, resource"));
  CHECK(allows("principal in Group::\"friends\", action, resource"));
  CHECK(!allows("principal in Group::\"owners\", action, resource"));
  CHECK(allows("principal is Sender, action, resource"));
  CHECK(!allows("principal is User, action, resource"));
  CHECK(allows("principal is Sender in User::\"alice\", action, resource"));
  CHECK(!allows("principal is User in User::\"alice\", action, resource"));
  CHECK(allows("principal, action in [Action::\"exec\", Action::\"chat\"], resource"));
  CHECK(!allows("principal, action in [], resource"));
  CHECK(allows("principal, action in Action::\"chat\", resource"));
  CHECK(!allows("principal, action == Action::\"exec\", resource"));
  CHECK(allows("principal, action, resource == Agent::\"main\""));
  CHECK(allows("principal, action, resource is Agent"));
}

TEST_CASE("eval: an error makes only that policy not apply, and is reported with its id") {
  PolicySet set = policies(
      "@id(\"bad\") forbid (principal, action, resource) when { context.missing };\n"
      "@id(\"good\") permit (principal, action, resource);");
  Decision d = isAuthorized(set, store(), request());
  CHECK(d.allow);
  CHECK(d.determining == std::vector<std::string>{"good"});
  REQUIRE(d.errors.size() == 1);
  CHECK(d.errors[0] == "bad: record does not have the attribute \"missing\"");
}

TEST_CASE("eval: && and || short-circuit; the other side's error is never seen") {
  CHECK(!holds("false && context.missing"));
  CHECK(holds("true || context.missing"));
  CHECK(holds("if true then true else context.missing"));
  CHECK(errorFor("true && context.missing") == "p: record does not have the attribute \"missing\"");
  CHECK(errorFor("1 && true").find("type error: '&&' expects a bool") != std::string::npos);
  CHECK(errorFor("false || 1").find("type error: '||' expects a bool") != std::string::npos);
  CHECK(errorFor("if 1 then true else false").find("type error: if expects a bool") !=
        std::string::npos);
  // when {} must be a bool too.
  CHECK(errorFor("1").find("type error: when expects a bool") != std::string::npos);
}

TEST_CASE("eval: arithmetic, comparison and overflow") {
  CHECK(holds("1 + 2 * 3 == 7"));
  CHECK(holds("-3 - -4 == 1"));
  CHECK(holds("-9223372036854775808 < 0"));
  CHECK(holds("9223372036854775807 - 1 < 9223372036854775807"));
  CHECK(holds("2 <= 2 && 3 >= 2 && !(2 > 3)"));
  CHECK(errorFor("9223372036854775807 + 1 > 0").find("overflow") != std::string::npos);
  CHECK(errorFor("-9223372036854775808 - 1 > 0").find("overflow") != std::string::npos);
  CHECK(errorFor("4611686018427387904 * 2 > 0").find("overflow") != std::string::npos);
  CHECK(errorFor("-(-9223372036854775808) > 0").find("overflow") != std::string::npos);
  CHECK(errorFor("\"a\" < \"b\"").find("comparison expects a long") != std::string::npos);
  CHECK(errorFor("\"a\" + 1 == 1").find("'+' expects a long") != std::string::npos);
}

TEST_CASE("eval: equality never fails and compares sets as sets, records structurally") {
  CHECK(holds("[1, 2, 2] == [2, 1]"));
  CHECK(holds("[[1], [2]] == [[2], [1]]"));
  CHECK(holds("{a: 1, b: [true]} == {b: [true], a: 1}"));
  CHECK(!holds("{a: 1} == {a: 1, b: 2}"));
  CHECK(!holds("1 == \"1\""));
  CHECK(holds("1 != \"1\""));
  CHECK(holds("User::\"a\" != Group::\"a\""));
  CHECK(holds("principal == Sender::\"telegram:1\""));
  CHECK(!holds("[1] == {a: 1}"));
}

TEST_CASE("eval: like with wildcards and escapes") {
  Value::Record ctx{{"s", Value::string("a*b/c.md")}};
  CHECK(holds("context.s like \"a*\"", ctx));
  CHECK(holds("context.s like \"*.md\"", ctx));
  CHECK(holds("context.s like \"a\\*b*\"", ctx));  // \* is a literal star
  CHECK(!holds("context.s like \"a\\*c*\"", ctx));
  CHECK(holds("context.s like \"*\"", ctx));
  CHECK(holds("context.s like \"a**b*c*d\"", {{"s", Value::string("aXbYcZd")}}));
  CHECK(!holds("context.s like \"a*b*c*d\"", {{"s", Value::string("aXbYcZ")}}));
  CHECK(holds("\"\" like \"\""));
  CHECK(!holds("\"x\" like \"\""));
  CHECK(holds("\"\\u{e9}t\\u{e9}\" like \"\\u{e9}*\""));
  CHECK(errorFor("1 like \"1\"").find("'like' expects a string") != std::string::npos);
}

TEST_CASE("eval: has on records and entities; attribute access errors") {
  Value::Record ctx{{"args", Value::record({{"path", Value::string("x")}})}};
  CHECK(holds("context has args && context.args has path && context.args has \"path\"", ctx));
  CHECK(!holds("context.args has command", ctx));
  CHECK(holds("context has args.path && !(context has args.nope)", ctx));
  CHECK(holds("principal has name && principal.name == \"Alice\""));
  CHECK(holds("!(principal has age)"));
  CHECK(!holds("Sender::\"ghost\" has name"));  // unknown entity: false, no error
  CHECK(holds("context.args[\"path\"] == \"x\"", ctx));
  CHECK(errorFor("Sender::\"ghost\".name == \"\"") ==
        "p: entity Sender::\"ghost\" does not exist (reading .name)");
  CHECK(errorFor("principal.age == 1") ==
        "p: Sender::\"telegram:1\" does not have the attribute \"age\"");
  CHECK(errorFor("1 has a").find("'has' expects an entity or a record") != std::string::npos);
  // A path is Cedar's `e has a && e.a has b`: a non-record in the middle is a type error, a
  // missing step or an entity outside the store is false.
  Value::Record nested{{"a", Value::record({{"b", Value::integer(1)},
                                            {"u", Value::entity({"User", "ghost"})},
                                            {"s", Value::entity({"Sender", "telegram:1"})}})}};
  CHECK(holds("context has a.b", nested));
  CHECK(!holds("context has a.c.d", nested));
  CHECK(!holds("context has a.u.name", nested));
  CHECK(holds("context has a.s.name", nested));
  CHECK(!holds("context has a.s.age", nested));
  Decision d = when("context has a.b.c", nested);
  REQUIRE(d.errors.size() == 1);
  CHECK(d.errors[0].find("'has' expects an entity or a record, got long 1") != std::string::npos);
  CHECK(errorFor("\"s\".a == 1").find("attribute access expects") != std::string::npos);
}

TEST_CASE("eval: in follows the hierarchy transitively, terminates on cycles") {
  CHECK(holds("principal in User::\"alice\""));
  CHECK(holds("principal in Group::\"friends\""));
  CHECK(holds("principal in principal"));
  CHECK(!holds("principal in Group::\"owners\""));
  CHECK(holds("principal in [Group::\"owners\", Group::\"friends\"]"));
  CHECK(!holds("principal in []"));
  CHECK(holds("User::\"cyc\" in Group::\"g2\""));
  CHECK(!holds("User::\"cyc\" in Group::\"nowhere\""));
  CHECK(holds("Sender::\"ghost\" in Sender::\"ghost\""));  // not in the store: only equality
  CHECK(!holds("Sender::\"ghost\" in Group::\"friends\""));
  CHECK(holds("Sender::\"local:operator\" in Group::\"owners\""));
  CHECK(errorFor("1 in Group::\"a\"").find("'in' expects an entity on the left") !=
        std::string::npos);
  CHECK(errorFor("principal in [Group::\"friends\", 1]").find("'in' expects a set of entities") !=
        std::string::npos);
  CHECK(errorFor("principal in \"g\"").find("'in' expects an entity or a set") !=
        std::string::npos);
}

TEST_CASE("eval: is, contains, containsAll, containsAny, isEmpty") {
  CHECK(holds("principal is Sender && !(principal is User)"));
  CHECK(holds("principal is Sender in Group::\"friends\""));
  CHECK(!holds("principal is User in Group::\"friends\""));
  CHECK(holds("[1, \"a\", [2]].contains([2])"));
  CHECK(!holds("[1].contains(\"1\")"));
  CHECK(holds("[1, 2, 3].containsAll([3, 1]) && [1].containsAll([])"));
  CHECK(!holds("[1, 2].containsAll([1, 4])"));
  CHECK(holds("[1, 2].containsAny([4, 2]) && !([1].containsAny([]))"));
  CHECK(holds("[].isEmpty() && !([1].isEmpty())"));
  CHECK(holds("User::\"alice\".tags.contains(\"a\")"));
  CHECK(errorFor("\"abc\".contains(\"a\")").find("contains() expects a set") != std::string::npos);
  CHECK(errorFor("[1].containsAll(1)").find("containsAll() expects a set") != std::string::npos);
  CHECK(errorFor("1 is User").find("'is' expects an entity") != std::string::npos);
}

TEST_CASE("eval: unless, several conditions in order") {
  PolicySet set = policies(
      "@id(\"p\") permit (principal, action, resource) when { context.a } unless { context.b };");
  auto run = [&](bool a, bool b) {
    return isAuthorized(set, store(), request({{"a", Value::boolean(a)}, {"b", Value::boolean(b)}}))
        .allow;
  };
  CHECK(run(true, false));
  CHECK(!run(true, true));
  CHECK(!run(false, false));
  // A false `when` stops before a later condition's error.
  Decision d = isAuthorized(set, store(), request({{"a", Value::boolean(false)}}));
  CHECK(d.errors.empty());
}

TEST_CASE("eval: trace records every policy's scope and condition") {
  PolicySet set = policies(
      "@id(\"chat\") permit (principal, action == Action::\"chat\", resource) when { context.x };\n"
      "@id(\"exec\") permit (principal, action == Action::\"exec\", resource);\n"
      "@id(\"err\") forbid (principal, action, resource) when { context.y };");
  Decision d = isAuthorized(set, store(), request({{"x", Value::boolean(true)}}), true);
  REQUIRE(d.trace.size() == 3);
  CHECK(d.trace[0].scopeMatched);
  CHECK(d.trace[0].condition == PolicyTrace::Cond::TRUE);
  CHECK(d.trace[0].location == "t.cedar:1");
  CHECK(!d.trace[1].scopeMatched);
  CHECK(d.trace[1].condition == PolicyTrace::Cond::NOT_EVALUATED);
  CHECK(d.trace[2].condition == PolicyTrace::Cond::ERROR);
  CHECK(d.trace[2].error == "record does not have the attribute \"y\"");
  CHECK(d.allow);
  // Without a trace the action index skips "exec", and the decision is the same.
  Decision fast = isAuthorized(set, store(), request({{"x", Value::boolean(true)}}));
  CHECK(fast.allow);
  CHECK(fast.determining == d.determining);
  CHECK(fast.errors == d.errors);
}

TEST_CASE("values and entities: JSON round trip and errors name the input") {
  auto v = valueFromJson(nlohmann::json::parse(
      R"({"a": [1, 1, "x"], "e": {"__entity": {"type": "User", "id": "u"}}, "r": {"type": "User", "id": "u"}})"));
  CHECK(v.asRecord().at("a").asSet().size() == 2);
  CHECK(v.asRecord().at("e").isEntity());
  CHECK(v.asRecord().at("r").isRecord());  // without __entity, Cedar reads a record
  CHECK(valueFromJson(v.toJson()) == v);
  CHECK_THROWS_WITH_AS(valueFromJson(nlohmann::json::parse(R"({"n": {"x": 1.5}})"), "context"),
                       doctest::Contains("context.n.x: not an integer"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(valueFromJson(nlohmann::json::parse("null")), doctest::Contains("null"),
                       std::invalid_argument);

  Entities e = Entities::fromJson(nlohmann::json::parse(R"([
    {"uid": {"type": "User", "id": "a"}, "attrs": {}, "parents": [{"type": "Group", "id": "g"}]},
    {"uid": {"__entity": {"type": "Group", "id": "g"}}, "attrs": {"n": 1}, "parents": []}])"),
                                  "e.json");
  CHECK(e.in({"User", "a"}, {"Group", "g"}));
  CHECK(Entities::fromJson(e.toJson(), "again").toJson() == e.toJson());
  CHECK_THROWS_WITH_AS(
      Entities::fromJson(
          nlohmann::json::parse(R"([{"uid": {"type": "User", "id": "a"}}, {"uid": 3}])"), "e.json"),
      "e.json: entity 1: uid: expected an entity uid {\"type\": \"...\", \"id\": \"...\"}",
      std::invalid_argument);
  CHECK_THROWS_WITH_AS(Entities::fromJson(nlohmann::json::parse(R"({})"), "e.json"),
                       "e.json: expected a JSON array of entities", std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      Entities::fromJson(
          nlohmann::json::parse(R"([{"uid": {"type": "User", "id": "a"}, "attrs": {"x": 0.5}}])"),
          "e.json"),
      "e.json: entity 0: attrs.x: not an integer (Cedar has no fractional numbers): 0.5",
      std::invalid_argument);

  // A cycle in the parents is refused, as the reference Cedar refuses such a store.
  CHECK_THROWS_WITH_AS(
      Entities::fromJson(nlohmann::json::parse(R"([
        {"uid": {"type": "User", "id": "u"}, "parents": [{"type": "Group", "id": "a"}]},
        {"uid": {"type": "Group", "id": "a"}, "parents": [{"type": "Group", "id": "b"}]},
        {"uid": {"type": "Group", "id": "b"}, "parents": [{"type": "Group", "id": "a"}]}])"),
                         "e.json"),
      "e.json: the parents form a cycle (Group::\"a\" -> Group::\"b\" -> Group::\"a\"); Cedar "
      "requires a hierarchy without cycles",
      std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      Entities::fromJson(
          nlohmann::json::parse(
              R"([{"uid": {"type": "Group", "id": "a"}, "parents": [{"type": "Group", "id": "a"}]}])"),
          "e.json"),
      doctest::Contains("cycle (Group::\"a\" -> Group::\"a\")"), std::invalid_argument);
  // A diamond is not a cycle; nor is a parent named twice.
  CHECK_NOTHROW(Entities::fromJson(nlohmann::json::parse(R"([
        {"uid": {"type": "User", "id": "u"}, "parents": [{"type": "Group", "id": "a"}, {"type": "Group", "id": "b"}, {"type": "Group", "id": "b"}]},
        {"uid": {"type": "Group", "id": "a"}, "parents": [{"type": "Group", "id": "top"}]},
        {"uid": {"type": "Group", "id": "b"}, "parents": [{"type": "Group", "id": "top"}]},
        {"uid": {"type": "Group", "id": "top"}}])"),
                                   "e.json"));
  // add() does not check (the supervisor's own layers), and walks still end; findCycle says so.
  CHECK(store().findCycle().size() == 3);

  // An overlay adds without copying and hides the base's entity of the same uid.
  Entities overlay(&e);
  overlay.add({"User", "a"}, {}, {});
  CHECK(!overlay.in({"User", "a"}, {"Group", "g"}));
  CHECK(e.in({"User", "a"}, {"Group", "g"}));
  CHECK(overlay.find({"Group", "g"}) != nullptr);
}

}  // namespace
}  // namespace chitin::policy
