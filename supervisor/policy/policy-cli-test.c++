// SPDX-License-Identifier: Apache-2.0
// Tests for `chitin policy check|explain|test`: exit codes and output, and every shipped
// expected-decision file (policies/tests/*.json) run through the test command.
// Runs in: test

#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "policy-cli.h"
#include "test-text.h"

namespace chitin::policy {
namespace {

namespace fs = std::filesystem;

struct Run {
  int code;
  std::string out, err;
};

Run cli(std::vector<std::string> args, PolicyCliEnv env = {{CHITIN_POLICIES_DIR}, ""}) {
  std::ostringstream out, err;
  int code = policyCommand(args, env, out, err);
  return Run{code, out.str(), err.str()};
}

using chitin::testing::has;

struct CliDir {
  fs::path path;
  CliDir() {
    char tmpl[] = "/tmp/chitin-policy-cli-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~CliDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(path / name) << text;
    return (path / name).string();
  }
};

TEST_CASE("policy check: ok line, or every error and exit 2") {
  Run r = cli({"check"});
  CHECK(r.code == 0);
  CHECK(r.out == "ok: 19 policies in 1 files\n");
  CliDir d;
  d.write("a.cedar", "permit (principal, action == Action::\"exce\", resource);\n");
  d.write("b.cedar", "permit (principal, action, resource)\n");
  r = cli({"check", "--dir", d.path.string()});
  CHECK(r.code == 2);
  CHECK(has(r.err, (d.path / "a.cedar").string() + ":1:38: unknown action \"exce\""));
  CHECK(has(r.err, (d.path / "b.cedar").string() + ":2:1: expected ';'"));
  CHECK(cli({"check", "--dir", "/nonexistent/x"}).code == 2);
  CHECK(cli({"check", "--frob"}).code == 2);
  CHECK(cli({}).code == 2);
  CHECK(has(cli({"frob"}).err, "unknown command 'frob'"));
}

TEST_CASE("policy explain: verdict, determining policies and a per-policy trace") {
  Run r =
      cli({"explain", "--principal", "Sender::\"local:operator\"", "--action", "exec", "--resource",
           "Agent::\"main\"", "--context",
           R"({"tainted": false, "program": "rm", "simple": true, "args": {"command": "rm x"}})"});
  CHECK(r.code == 0);
  CAPTURE(r.out);
  CHECK(has(r.out, "decision: ask\n"));
  CHECK(has(r.out, "determining: owners-exec-confirmed\n"));
  CHECK(has(r.out, "permit owners-exec-read-only (" CHITIN_POLICIES_DIR
                   "/default.cedar:68): scope matches, condition false\n"));
  CHECK(has(r.out, "permit owners-chat (" CHITIN_POLICIES_DIR
                   "/default.cedar:16): scope does not match\n"));
  CHECK(has(r.out, "with context.confirmed = true: allow\n"));

  r = cli({"explain", "--principal", "Sender::\"telegram:9\"", "--action", "Action::\"chat\"",
           "--resource", "Agent::\"main\""});
  CHECK(r.code == 0);
  CHECK(has(r.out, "decision: deny\n"));
  CHECK(has(r.out, "determining: (none)\n"));

  // A File resource gets its entity as the supervisor would build it.
  r = cli({"explain", "--principal", "Sender::\"local:operator\"", "--action", "read", "--resource",
           "File::\"main/a.md\""});
  CHECK(has(r.out, "decision: allow\n"));
  // The error of a policy is shown with its message.
  r = cli({"explain", "--principal", "Sender::\"local:operator\"", "--action", "exec", "--resource",
           "Agent::\"main\""});
  CHECK(has(r.out, "condition error: record does not have the attribute \"simple\""));
}

TEST_CASE("policy explain: bad arguments name the argument and exit 2") {
  Run r = cli({"explain", "--principal", "telegram:1", "--action", "chat", "--resource",
               "Agent::\"main\""});
  CHECK(r.code == 2);
  CHECK(has(r.err, "--principal: expected an entity Type::\"id\""));
  r = cli({"explain", "--principal", "Sender::\"x\"", "--action", "exce", "--resource",
           "Agent::\"main\""});
  CHECK(r.code == 2);
  CHECK(has(r.err, "--action: unknown action \"exce\" (known: chat, exec"));
  r = cli({"explain", "--principal", "Sender::\"x\"", "--action", "chat"});
  CHECK(r.code == 2);
  CHECK(has(r.err, "--resource is required"));
  r = cli({"explain", "--principal", "Sender::\"x\"", "--action", "chat", "--resource",
           "Agent::\"main\"", "--context", "{\"a\": 1.5}"});
  CHECK(r.code == 2);
  CHECK(has(r.err, "--context: expected a JSON object of Cedar values: context.a: not an integer"));
  r = cli({"explain", "--principal", "Sender::\"x\"", "--action", "chat", "--resource",
           "Agent::\"main\"", "--entities", "/nonexistent/e.json"});
  CHECK(r.code == 2);
  CHECK(has(r.err, "--entities: /nonexistent/e.json: cannot read"));
  CHECK(cli({"explain", "--principal"}).code == 2);
}

TEST_CASE("policy test: ok and MISMATCH lines, summary, exit codes") {
  CliDir d;
  std::string ok = d.write("ok.json", R"({"requests": [
    {"name": "operator chats", "principal": "Sender::\"local:operator\"", "action": "chat",
     "resource": "Agent::\"main\"", "expect": "allow"},
    {"name": "stranger chats", "principal": "Sender::\"x\"", "action": "chat",
     "resource": "Agent::\"main\"", "expect": "deny"}]})");
  Run r = cli({"test", ok});
  CHECK(r.code == 0);
  CHECK(has(r.out, "ok       operator chats: allow by owners-chat\n"));
  CHECK(has(r.out, "2 passed, 0 failed\n"));

  std::string bad = d.write("bad.json", R"({"requests": [
    {"name": "wrong", "principal": "Sender::\"x\"", "action": "chat",
     "resource": "Agent::\"main\"", "expect": "allow"}]})");
  r = cli({"test", bad});
  CHECK(r.code == 1);
  CAPTURE(r.out);
  CHECK(has(r.out, "MISMATCH wrong: expected allow, got deny (no policy applied)\n"));
  CHECK(has(r.out, "0 passed, 1 failed\n"));

  // Policies and entities relative to the file; per-request entities on top.
  d.write("p.cedar", "@id(\"alice\") permit (principal in Group::\"g\", action, resource);");
  d.write("e.json", R"([{"uid": {"type": "Group", "id": "g"}, "attrs": {}, "parents": []}])");
  std::string rel = d.write("rel.json", R"({"policies": ["p.cedar"], "entities": "e.json",
    "requests": [{"principal": "User::\"a\"", "action": "exec", "resource": "Agent::\"main\"",
      "entities": [{"uid": {"type": "User", "id": "a"}, "parents": [{"type": "Group", "id": "g"}]}],
      "expect": "allow"}]})");
  r = cli({"test", rel});
  CAPTURE(r.err);
  CHECK(r.code == 0);

  for (
      const auto& form : std::vector<std::pair<std::string, std::string>>{
          {"not json", "not valid JSON"},
          {"{}", "expected {\"requests\": [...]}"},
          {R"({"requests": [{"principal": "x", "action": "chat", "resource": "Agent::\"m\"", "expect": "allow"}]})",
           "principal: expected an entity Type::\"id\""},
          {R"({"requests": [{"principal": "User::\"x\"", "action": "chat", "resource": "Agent::\"m\"", "expect": "maybe"}]})",
           "expect: expected allow, ask or deny"},
          {R"({"entities": "missing.json", "requests": []})", "missing.json: cannot read"},
          {R"({"policies": ["broken.cedar"], "requests": []})",
           "broken.cedar:1:1: expected 'permit'"}}) {
    // Named copies, not a structured binding: CAPTURE's lambda takes `text`.
    const std::string& text = form.first;
    const std::string& message = form.second;
    d.write("broken.cedar", "oops");
    std::string f = d.write("x.json", text);
    r = cli({"test", f});
    CAPTURE(text);
    CHECK(r.code == 2);
    CHECK(has(r.err, message));
  }
  CHECK(cli({"test"}).code == 2);
  CHECK(has(cli({"test", "/nonexistent/t.json"}).err, "cannot read"));
}

using chitin::testing::repeat;

TEST_CASE("policy check: 5,000 nested parentheses or ifs, or 2 MiB, are a clear error") {
  CliDir d;
  d.write("deep.cedar", "permit (principal, action, resource)\n  when { " + repeat("(", 5000) +
                            "true" + repeat(")", 5000) + " };\n");
  Run r = cli({"check", "--dir", d.path.string()});
  CHECK(r.code == 2);
  CHECK(r.err == (d.path / "deep.cedar").string() +
                     ":2:110: the expression nests deeper than the limit of 100 levels "
                     "(parentheses, sets, records, if, operators and attribute accesses each count "
                     "one)\n");
  CliDir e;
  e.write("ifs.cedar", "permit (principal, action, resource) when { " +
                           repeat("if true then ", 5000) + "true" + repeat(" else false", 5000) +
                           " };");
  r = cli({"check", "--dir", e.path.string()});
  CHECK(r.code == 2);
  CHECK(has(r.err, "ifs.cedar:1:1335: the expression nests deeper than the limit of 100 levels"));
  CliDir f;
  f.write("huge.cedar", std::string(2 << 20, ' '));
  r = cli({"check", "--dir", f.path.string()});
  CHECK(r.code == 2);
  CHECK(
      has(r.err, "huge.cedar: the file has more than 1048576 bytes, the limit for a policy file"));
}

TEST_CASE("policy test: an 11,000-term generated allowlist loads and evaluates") {
  CliDir d;
  std::string terms, sum;
  for (int i = 0; i < 11000; ++i) {
    terms += (i ? " || " : "") + std::string("context.program == \"p") + std::to_string(i) + "\"";
    sum += i ? " + 1" : "1";
  }
  d.write("allow.cedar",
          "@id(\"allowlist\") permit (principal, action == Action::\"exec\", resource)\n  when { " +
              terms + " };\n@id(\"sum\") forbid (principal, action, resource)\n  when { " + sum +
              " != 11000 };\n");
  std::string file = d.write("t.json", R"({"policies": ["allow.cedar"], "requests": [
    {"name": "last", "principal": "User::\"u\"", "action": "exec", "resource": "Agent::\"main\"",
     "context": {"program": "p10999"}, "expect": "allow"},
    {"name": "first", "principal": "User::\"u\"", "action": "exec", "resource": "Agent::\"main\"",
     "context": {"program": "p0"}, "expect": "allow"},
    {"name": "unlisted", "principal": "User::\"u\"", "action": "exec",
     "resource": "Agent::\"main\"", "context": {"program": "rm"}, "expect": "deny"}]})");
  Run r = cli({"test", file});
  CAPTURE(r.err);
  CHECK(r.code == 0);
  CHECK(has(r.out, "ok       last: allow by allowlist\n"));
  CHECK(has(r.out, "3 passed, 0 failed\n"));
}

TEST_CASE("policy test and explain: JSON 14,000 levels deep, or a cyclic store, is refused") {
  CliDir d;
  std::string deep = repeat("[", 14000) + repeat("]", 14000);
  std::string entities = d.write(
      "deep.json", R"([{"uid": {"type": "User", "id": "u"}, "attrs": {"x": )" + deep + "}}]");
  Run r = cli({"explain", "--principal", "User::\"u\"", "--action", "chat", "--resource",
               "Agent::\"main\"", "--entities", entities});
  CHECK(r.code == 2);
  CHECK(r.err == "--entities: " + entities +
                     ": entity 0: attrs.x[0][0][0][0] ... [0][0][0][0]: sets and records nest "
                     "deeper than the limit of 100 levels\n");
  r = cli({"explain", "--principal", "User::\"u\"", "--action", "chat", "--resource",
           "Agent::\"main\"", "--context", R"({"x": )" + deep + "}"});
  CHECK(r.code == 2);
  CHECK(has(r.err,
            "--context: expected a JSON object of Cedar values: context.x[0][0][0] ... "
            "[0][0][0][0]: sets and records nest deeper than the limit of 100 levels"));
  std::string test = d.write("t.json", R"({"requests": [{"name": "deep", "principal": "User::\"u\"",
    "action": "chat", "resource": "Agent::\"main\"", "expect": "deny", "context": {"x": )" +
                                           deep + "}}]}");
  r = cli({"test", test});
  CHECK(r.code == 2);
  CHECK(has(r.err,
            "t.json: request \"deep\": context.x[0][0][0] ... [0][0][0][0]: sets and "
            "records nest deeper than the limit of 100 levels"));
  test = d.write("e.json", R"({"entities": [{"uid": {"type": "User", "id": "u"}, "attrs": {"x": )" +
                               deep + R"(}}], "requests": []})");
  r = cli({"test", test});
  CHECK(r.code == 2);
  CHECK(r.err == test +
                     ": entities: entity 0: attrs.x[0][0][0][0] ... [0][0][0][0]: sets and records "
                     "nest deeper than the limit of 100 levels\n");
  std::string cyclic = d.write("cyclic.json", R"([
    {"uid": {"type": "Group", "id": "a"}, "parents": [{"type": "Group", "id": "b"}]},
    {"uid": {"type": "Group", "id": "b"}, "parents": [{"type": "Group", "id": "a"}]}])");
  r = cli({"explain", "--principal", "Group::\"a\"", "--action", "chat", "--resource",
           "Agent::\"main\"", "--entities", cyclic});
  CHECK(r.code == 2);
  CHECK(has(r.err,
            "cyclic.json: the parents form a cycle (Group::\"a\" -> Group::\"b\" -> "
            "Group::\"a\")"));
}

TEST_CASE("shipped expected-decision files (policies/tests/*.json) all pass") {
  int files = 0;
  for (const auto& entry : fs::directory_iterator(CHITIN_POLICIES_DIR "/tests")) {
    if (entry.path().extension() != ".json") continue;
    ++files;
    Run r = cli({"test", entry.path().string()}, PolicyCliEnv{{CHITIN_POLICIES_DIR}, ""});
    CAPTURE(entry.path().string());
    CAPTURE(r.out);
    CAPTURE(r.err);
    CHECK(r.code == 0);
    CHECK(has(r.out, " passed, 0 failed\n"));
  }
  CHECK(files >= 4);
}

}  // namespace
}  // namespace chitin::policy
