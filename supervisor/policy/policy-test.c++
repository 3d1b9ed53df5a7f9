// SPDX-License-Identifier: Apache-2.0
// Tests for decide()'s three outcomes, loading policy directories, and the shipped
// default.cedar against chitin's request model.
// Runs in: test

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "policy.h"

namespace chitin::policy {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/chitin-policy-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) {
    std::ofstream(path / name) << text;
  }
};

PolicySet shipped() {
  auto r = PolicySet::loadDirs({CHITIN_POLICIES_DIR});
  if (auto* e = std::get_if<std::vector<ParseError>>(&r)) {
    for (auto& x : *e) FAIL(x.str());
  }
  return std::get<PolicySet>(std::move(r));
}

Value::Record execContext(const std::string& command, const std::string& program, bool simple,
                          bool tainted = false) {
  return {{"tainted", Value::boolean(tainted)},
          {"channel", Value::string("local")},
          {"chatType", Value::string("direct")},
          {"mentioned", Value::boolean(false)},
          {"args", Value::record({{"command", Value::string(command)}})},
          {"program", Value::string(program)},
          {"simple", Value::boolean(simple)}};
}

const EntityUid OPERATOR{"Sender", "local:operator"};
const EntityUid STRANGER{"Sender", "telegram:999"};
const EntityUid MAIN{"Agent", "main"};

Outcome run(const PolicySet& set, const EntityUid& principal, const std::string& action,
            const EntityUid& resource, Value::Record ctx, Verdict* out = nullptr) {
  Entities base = defaultEntities();
  Entities entities(&base);
  addImplicitFileEntity(entities, resource);
  Verdict v =
      decide(set, entities,
             Request{principal, {"Action", action}, resource, Value::record(std::move(ctx))});
  if (out != nullptr) *out = v;
  return v.outcome;
}

TEST_CASE("decide: allow, ask and deny come from two evaluations") {
  PolicySet set;
  REQUIRE(set.addFile(R"(
@id("free") permit (principal, action == Action::"read", resource);
@id("confirm") permit (principal, action == Action::"exec", resource) when { context.confirmed };
@id("never") forbid (principal, action == Action::"write", resource);
@id("w") permit (principal, action == Action::"write", resource);
@id("tainted") forbid (principal, action == Action::"edit", resource) when { context.tainted && !context.confirmed };
@id("e") permit (principal, action == Action::"edit", resource);
)",
                      "t.cedar")
              .empty());
  Entities e;
  auto req = [](const char* action, Value::Record ctx = {}) {
    return Request{
        {"User", "u"}, {"Action", action}, {"Agent", "main"}, Value::record(std::move(ctx))};
  };
  Verdict v = decide(set, e, req("read"));
  CHECK(v.outcome == Outcome::ALLOW);
  CHECK(v.policies == std::vector<std::string>{"free"});
  v = decide(set, e, req("exec", {{"confirmed", Value::boolean(true)}}));  // overwritten
  CHECK(v.outcome == Outcome::ASK);
  CHECK(v.policies == std::vector<std::string>{"confirm"});
  v = decide(set, e, req("write"));
  CHECK(v.outcome == Outcome::DENY);
  CHECK(v.policies == std::vector<std::string>{"never"});
  v = decide(set, e, req("chat"));
  CHECK(v.outcome == Outcome::DENY);
  CHECK(v.policies.empty());
  v = decide(set, e, req("edit", {{"tainted", Value::boolean(true)}}));
  CHECK(v.outcome == Outcome::ASK);
  CHECK(v.policies == std::vector<std::string>{"e"});
  v = decide(set, e, req("edit"));  // no tainted key: the forbid errors and does not apply
  CHECK(v.outcome == Outcome::ALLOW);
  CHECK(v.errors ==
        std::vector<std::string>{"tainted: record does not have the attribute \"tainted\""});
  CHECK(std::string(outcomeName(Outcome::ASK)) == "ask");

  Request bad = req("read");
  bad.context = Value::integer(1);
  v = decide(set, e, bad);
  CHECK(v.outcome == Outcome::DENY);
  CHECK(v.errors == std::vector<std::string>{"request: context must be a record, got long"});
}

TEST_CASE("loadDirs: sorted *.cedar files, missing dirs fine, errors from every file") {
  TempDir d;
  d.write("b.cedar", "@id(\"b\") permit (principal, action, resource);");
  d.write("a.cedar", "@id(\"a\") permit (principal, action, resource);");
  d.write("notes.txt", "not policy");
  auto r = PolicySet::loadDirs({d.path.string(), "/nonexistent/chitin-policies"});
  REQUIRE(std::holds_alternative<PolicySet>(r));
  const PolicySet& set = std::get<PolicySet>(r);
  REQUIRE(set.size() == 2);
  CHECK(set.policies()[0]->id == "a");
  CHECK(set.fileCount() == 2);

  d.write("c.cedar", "permit (principal, action == Action::\"fly\", resource);");
  d.write("d.cedar", "permit (principal, action, resource)");
  auto bad = PolicySet::loadDirs({d.path.string()});
  REQUIRE(std::holds_alternative<std::vector<ParseError>>(bad));
  auto& errors = std::get<std::vector<ParseError>>(bad);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].str() == (d.path / "c.cedar").string() +
                               ":1:38: unknown action \"fly\" (known: "
                               "chat, exec, read, write, edit, message_send, web_fetch, "
                               "web_search, browse, approve, command, memory_search, memory_get, "
                               "sessions_list, sessions_history, sessions_send)");
  CHECK(errors[1].str() == (d.path / "d.cedar").string() +
                               ":1:37: expected ';' at the end of the policy (or 'when'/'unless'), "
                               "found end of file");

  d.write("e.cedar", "");
  fs::permissions(d.path / "e.cedar", fs::perms::none);
  if (geteuid() != 0) {  // root reads anything
    auto unreadable = PolicySet::loadDirs({d.path.string()});
    REQUIRE(std::holds_alternative<std::vector<ParseError>>(unreadable));
    CHECK(std::get<std::vector<ParseError>>(unreadable).back().message.find("cannot read") == 0);
  }
}

TEST_CASE("loadDirs (the gateway's loading): deep nesting, long chains and huge files") {
  TempDir d;
  std::string deep = "permit (principal, action, resource) when { " + std::string(5000, '(') +
                     "true" + std::string(5000, ')') + " };";
  std::string chain = "permit (principal, action, resource) when { context.p == \"0\"";
  for (int i = 1; i < 11000; ++i) chain += " || context.p == \"" + std::to_string(i) + "\"";
  d.write("chain.cedar", chain + " };");
  auto ok = PolicySet::loadDirs({d.path.string()});
  REQUIRE(std::holds_alternative<PolicySet>(ok));
  Entities none;
  Request r{{"User", "u"},
            {"Action", "chat"},
            {"Agent", "main"},
            Value::record({{"p", Value::string("10999")}})};
  CHECK(isAuthorized(std::get<PolicySet>(ok), none, r).allow);

  d.write("deep.cedar", deep);
  d.write("huge.cedar", std::string(3 << 20, '\n'));
  auto bad = PolicySet::loadDirs({d.path.string()});
  REQUIRE(std::holds_alternative<std::vector<ParseError>>(bad));
  auto& errors = std::get<std::vector<ParseError>>(bad);
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].str() == (d.path / "deep.cedar").string() +
                               ":1:145: the expression nests deeper than the limit of 100 levels "
                               "(parentheses, sets, records, if, operators and attribute accesses "
                               "each count one)");
  CHECK(errors[1].str() == (d.path / "huge.cedar").string() +
                               ": the file has more than 1048576 bytes, the limit for a policy "
                               "file (split it into several files)");
}

TEST_CASE("default.cedar: owners chat; strangers and unknown senders are denied") {
  PolicySet set = shipped();
  for (const auto& p : set.policies()) {
    CAPTURE(p->location());
    CHECK(p->annotations.count("id") == 1);  // every shipped policy is named
  }
  CHECK(run(set, OPERATOR, "chat", MAIN, {}) == Outcome::ALLOW);
  CHECK(run(set, STRANGER, "chat", MAIN, {}) == Outcome::DENY);
  CHECK(run(set, {"User", "owner"}, "chat", MAIN, {}) == Outcome::ALLOW);
  CHECK(run(set, OPERATOR, "approve", MAIN, {}) == Outcome::ALLOW);
  CHECK(run(set, STRANGER, "approve", MAIN, {}) == Outcome::DENY);
  CHECK(run(set, OPERATOR, "web_fetch", {"Host", "example.com"},
            {{"tainted", Value::boolean(false)}}) == Outcome::ALLOW);
  // Without a `tainted` flag the session counts as tainted, and the model's URL asks; the ask
  // names the forbid that holds it, and the permit that allows it once confirmed.
  Verdict held;
  CHECK(run(set, OPERATOR, "web_fetch", {"Host", "example.com"}, {}, &held) == Outcome::ASK);
  CHECK(held.heldBy == std::vector<std::string>{"tainted-web-asks"});
  CHECK(held.policies == std::vector<std::string>{"owners-web"});
  CHECK(run(set, STRANGER, "web_fetch", {"Host", "example.com"}, {}) == Outcome::DENY);
  CHECK(run(set, OPERATOR, "web_fetch", MAIN, {}) == Outcome::DENY);  // only on a Host
  // A recipient that is no paired sender of the owner's: the owner is asked.
  CHECK(run(set, OPERATOR, "message_send", {"Recipient", "telegram:5"},
            {{"tainted", Value::boolean(false)}}) == Outcome::ASK);
  CHECK(run(set, STRANGER, "message_send", {"Recipient", "telegram:5"},
            {{"tainted", Value::boolean(false)}}) == Outcome::DENY);
}

TEST_CASE("default.cedar: owner exec asks unless a plain read-only command") {
  PolicySet set = shipped();
  Verdict v;
  CHECK(run(set, OPERATOR, "exec", MAIN, execContext("ls -la", "ls", true), &v) == Outcome::ALLOW);
  CHECK(v.policies == std::vector<std::string>{"owners-exec-read-only"});
  CHECK(run(set, OPERATOR, "exec", MAIN, execContext("rm -rf x", "rm", true), &v) == Outcome::ASK);
  CHECK(v.policies == std::vector<std::string>{"owners-exec-confirmed"});
  CHECK(run(set, OPERATOR, "exec", MAIN, execContext("env sh -c 'x'", "env", false)) ==
        Outcome::ASK);
  CHECK(run(set, OPERATOR, "exec", MAIN, execContext("ls; rm x", "ls", false)) == Outcome::ASK);
  CHECK(run(set, OPERATOR, "exec", MAIN, execContext("cat $(rm x)", "cat", false)) == Outcome::ASK);
  CHECK(run(set, OPERATOR, "exec", MAIN, execContext("ls", "ls", true, true)) == Outcome::ASK);
  CHECK(run(set, STRANGER, "exec", MAIN, execContext("ls", "ls", true)) == Outcome::DENY);
}

TEST_CASE("default.cedar: owner file tools; tainted writes ask; fail closed without tainted") {
  PolicySet set = shipped();
  EntityUid notes{"File", "main/notes/todo.md"};
  Value::Record clean{{"tainted", Value::boolean(false)}};
  Value::Record dirty{{"tainted", Value::boolean(true)}};
  CHECK(run(set, OPERATOR, "read", notes, clean) == Outcome::ALLOW);
  CHECK(run(set, OPERATOR, "read", notes, dirty) == Outcome::ALLOW);
  CHECK(run(set, OPERATOR, "write", notes, clean) == Outcome::ALLOW);
  CHECK(run(set, OPERATOR, "write", notes, dirty) == Outcome::ASK);
  CHECK(run(set, OPERATOR, "edit", notes, dirty) == Outcome::ASK);
  CHECK(run(set, OPERATOR, "write", notes, {}) == Outcome::ASK);  // no tainted flag
  CHECK(run(set, STRANGER, "read", notes, clean) == Outcome::DENY);
  CHECK(run(set, STRANGER, "write", notes, dirty) == Outcome::DENY);
}

}  // namespace
}  // namespace chitin::policy
