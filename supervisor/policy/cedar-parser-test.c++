// SPDX-License-Identifier: Apache-2.0
// Tests for the Cedar lexer, parser and validator: what parses, and every error path with its
// file:line:column.
// Runs in: test

#include <doctest/doctest.h>

#include "policy.h"
#include "test-text.h"

namespace chitin::policy {
namespace {

std::vector<std::string> errorsOf(const std::string& text) {
  PolicySet set;
  std::vector<std::string> out;
  for (const ParseError& e : set.addFile(text, "dir/t.cedar")) out.push_back(e.str());
  return out;
}

// The single error for `text`, as "file:line:col: message".
std::string errorOf(const std::string& text) {
  auto errors = errorsOf(text);
  REQUIRE_MESSAGE(errors.size() == 1, text);
  return errors[0];
}

using chitin::testing::has;

TEST_CASE("parser: the full supported syntax parses") {
  PolicySet set;
  auto errors = set.addFile(R"(
// a comment
@id("p1") @note("kept")
permit (principal == Sender::"telegram:1", action == Action::"chat", resource == Agent::"main");
permit (principal in Group::"owners", action in [Action::"read", Action::"write"], resource is File in Agent::"main");
forbid (principal is Sender, action in Action::"exec", resource is Agent)
  when { context.tainted && !context.confirmed || -5 < 3 * -2 + 1 - 0 }
  unless { if context has "a b" then context["a b"] like "x\*y*" else principal.owner in [User::"u"] }
  when { [1, "two", {a: 1, "b c": [true]}].contains(1) && [1].containsAll([]) && [1].containsAny([1]) }
  when { [].isEmpty() && principal is Sender in Group::"g" && Ns::Sub::"x" == Ns::Sub::"x" }
  when { context has a.b.c && -9223372036854775808 < 9223372036854775807 && "\u{1F600}\n\t\"\\\0\x41" != "" };
)",
                            "dir/t.cedar");
  // Ns::Sub is not one of chitin's types: the only complaint is the validator's.
  REQUIRE(errors.size() == 2);
  CHECK(has(errors[0].str(), "dir/t.cedar:10:63:"));
  CHECK(has(errors[0].message, "unknown entity type \"Ns::Sub\""));
}

TEST_CASE("parser: ids are @id or <basename>:<line>, annotations are kept, text is recorded") {
  PolicySet set;
  auto errors = set.addFile(
      "@id(\"chat\") @why(\"because\")\npermit (principal, action, resource);\n\n"
      "forbid (principal, action, resource);\n",
      "/x/y/z.cedar");
  REQUIRE(errors.empty());
  REQUIRE(set.size() == 2);
  const Policy& a = *set.policies()[0];
  CHECK(a.id == "chat");
  CHECK(a.permit);
  CHECK(a.annotations.at("why") == "because");
  CHECK(a.location() == "/x/y/z.cedar:1");
  CHECK(a.text == "@id(\"chat\") @why(\"because\")\npermit (principal, action, resource);");
  CHECK(set.policies()[1]->id == "z.cedar:4");
  CHECK(!set.policies()[1]->permit);
  CHECK(set.find("chat") == &a);
}

TEST_CASE("parser: unterminated string") {
  CHECK(errorOf("permit (principal == User::\"abc, action, resource);") ==
        "dir/t.cedar:1:28: unterminated string literal (no closing \")");
}

TEST_CASE("parser: bad escapes point at the backslash") {
  CHECK(errorOf("permit (principal, action, resource) when { \"ab\\q\" == \"\" };") ==
        "dir/t.cedar:1:48: bad escape \\q (Cedar allows \\n \\r \\t \\\\ \\0 \\' \\\" \\xHH "
        "\\u{...}, and \\* in patterns)");
  CHECK(has(errorOf("permit (principal, action, resource) when { \"a\\*\" == \"\" };"),
            "dir/t.cedar:1:47: bad escape \\* (only allowed in like-patterns)"));
  CHECK(has(errorOf("permit (principal, action, resource)\n when { \"\\u{110000}\" == \"\" };"),
            "dir/t.cedar:2:10: bad escape: \\u{...}"));
  CHECK(has(errorOf("permit (principal, action, resource) when { \"x\" like \"\\x80\" };"),
            "dir/t.cedar:1:55: bad escape: \\x"));
}

TEST_CASE("parser: unknown tokens") {
  CHECK(errorOf("permit (principal, action, resource) when { 1 % 2 == 1 };") ==
        "dir/t.cedar:1:47: unexpected character '%'");
  CHECK(errorOf("permit (principal, action, resource) when {\n  1 = 1 };") ==
        "dir/t.cedar:2:5: unexpected '=' (comparison is '==')");
  CHECK(errorOf("permit (principal, action, resource) when { true & false };") ==
        "dir/t.cedar:1:50: unexpected '&' (did you mean '&&'?)");
  CHECK(has(errorOf("/* no */ permit (principal, action, resource);"),
            "dir/t.cedar:1:1: block comments"));
}

TEST_CASE("parser: missing ';' and other structure errors name what was expected") {
  CHECK(errorOf("permit (principal, action, resource)\npermit (principal, action, resource);") ==
        "dir/t.cedar:2:1: expected ';' at the end of the policy (or 'when'/'unless'), found "
        "'permit'");
  CHECK(errorOf("allow (principal, action, resource);") ==
        "dir/t.cedar:1:1: expected 'permit' or 'forbid', found 'allow'");
  CHECK(errorOf("permit (principal, resource, action);") ==
        "dir/t.cedar:1:20: expected 'action' in the policy scope, found 'resource'");
  CHECK(errorOf("permit (principal, action, resource) when { 1 < 2 < 3 };") ==
        "dir/t.cedar:1:51: comparisons do not chain: add parentheses before '<'");
  CHECK(errorOf("permit (principal, action, resource) when { 9223372036854775808 > 0 };") ==
        "dir/t.cedar:1:45: integer literal 9223372036854775808 is out of range for a Long");
  CHECK(errorOf("permit (principal, action, resource) when { {a: 1, a: 2} == {} };") ==
        "dir/t.cedar:1:52: duplicate record key \"a\"");
  CHECK(errorOf("permit (principal in [Group::\"a\"], action, resource);") ==
        "dir/t.cedar:1:22: 'principal in [...]' is not allowed (only the action scope takes a "
        "list)");
  CHECK(errorOf("permit (principal, action, resource) when { foo };") ==
        "dir/t.cedar:1:45: unknown identifier 'foo' (expected principal, action, resource, "
        "context, true, false, or Type::\"id\")");
  CHECK(errorOf("@id(\"a\") @id(\"b\") permit (principal, action, resource);") ==
        "dir/t.cedar:1:10: duplicate annotation @id");
}

TEST_CASE("parser: unsupported features are named") {
  CHECK(errorOf("permit (principal == ?principal, action, resource);") ==
        "dir/t.cedar:1:22: templates (?principal, ?resource) are not supported");
  CHECK(errorOf("permit (principal, action, resource) when { ip(\"1.2.3.4\").isIpv4() };") ==
        "dir/t.cedar:1:45: extension functions (ip(...); ip, decimal, datetime, duration) are "
        "not supported");
  CHECK(errorOf("permit (principal, action, resource) when { context.d.lessThan(context.e) };") ==
        "dir/t.cedar:1:55: extension methods (lessThan) are not supported");
  CHECK(errorOf("permit (principal, action, resource) when { principal.hasTag(\"x\") };") ==
        "dir/t.cedar:1:55: entity tags (hasTag) are not supported");
  CHECK(errorOf("namespace Foo { }") ==
        "dir/t.cedar:1:1: namespace declarations are not supported");
  CHECK(errorOf("permit (principal, action, resource) when { [1].frob() };") ==
        "dir/t.cedar:1:49: unknown method 'frob' (supported: contains, containsAll, containsAny, "
        "isEmpty)");
  CHECK(errorOf("permit (principal, action, resource) when { [1].contains(1, 2) };") ==
        "dir/t.cedar:1:49: contains() takes 1 argument");
}

TEST_CASE("parser: Cedar's reserved words are not names; quoted, they are") {
  for (const char* word :
       {"true", "false", "if", "then", "else", "in", "is", "like", "has", "__cedar"}) {
    std::string w = word;
    CAPTURE(w);
    for (const std::string& cond :
         {"context." + w + " == 1", "{" + w + ": 1} == {}", "context has " + w,
          "context has args." + w, "principal is " + w, "User::" + w + "::\"a\" == principal"}) {
      CAPTURE(cond);
      CHECK(errorsOf("permit (principal, action, resource) when { " + cond + " };").size() == 1);
    }
    CHECK(errorsOf("permit (principal, action, resource) when { context[\"" + w +
                   "\"] == 1 && context has \"" + w + "\" && {\"" + w + "\": 1} != {} };")
              .empty());
  }
  CHECK(errorOf("permit (principal, action, resource) when { context.then == 1 };") ==
        "dir/t.cedar:1:53: 'then' is reserved in Cedar and cannot be an attribute name (quote it: "
        "[\"...\"], has \"...\", {\"...\": ...})");
  CHECK(errorOf("permit (principal, action, resource) when { {if: 1} == {} };") ==
        "dir/t.cedar:1:46: 'if' is reserved in Cedar and cannot be a record key (quote it: "
        "[\"...\"], has \"...\", {\"...\": ...})");
  // Other keywords and method names are ordinary names, as in Cedar.
  CHECK(errorsOf("@in permit (principal, action, resource) when { context.principal == 1 || "
                 "{permit: 1, when: 2, contains: 3} == {} || context has unless || "
                 "context.__cedarx == 1 };")
            .empty());
}

TEST_CASE("parser: unary operators: a run of '!' or of '-', at most 4, never mixed") {
  CHECK(errorOf("permit (principal, action, resource) when { -!context.x };") ==
        "dir/t.cedar:1:46: '!' after '-': Cedar does not mix unary operators (add parentheses)");
  CHECK(errorOf("permit (principal, action, resource) when { !-1 == 1 };") ==
        "dir/t.cedar:1:46: '-' after '!': Cedar does not mix unary operators (add parentheses)");
  CHECK(has(errorOf("permit (principal, action, resource) when { !!!!!true };"),
            "more than 4 unary operators in a row"));
  CHECK(errorsOf("permit (principal, action, resource) when { !!!!true && ----1 == 1 && "
                 "-(!true) != 1 && !(-1 == 1) };")
            .empty());
}

TEST_CASE("parser: one trailing comma where Cedar takes it, nowhere else") {
  CHECK(errorsOf("permit (principal, action in [Action::\"chat\",], resource,) when { "
                 "[1, 2,] == [1, 2] && {a: 1,} == {a: 1} && [1].contains(1,) && "
                 "principal in [User::\"a\",] };")
            .empty());
  CHECK(errorOf("permit (principal, action, resource,,);") ==
        "dir/t.cedar:1:36: unexpected ',' after the resource constraint (the scope has three "
        "parts)");
  for (const char* bad : {"[,] == []", "{,} == {}", "[1,,2] == []", "{a: 1,,} == {}",
                          "[].isEmpty(,)", "[1].contains(,)", "true,"}) {
    CAPTURE(bad);
    CHECK(errorsOf(std::string("permit (principal, action, resource) when { ") + bad + " };")
              .size() == 1);
  }
  CHECK(errorsOf("@id(\"x\",) permit (principal, action, resource);").size() == 1);
  CHECK(errorsOf("permit (principal, action in [,], resource);").size() == 1);
}

TEST_CASE("validator: unknown actions and entity types, with the known lists") {
  CHECK(errorOf("permit (principal, action == Action::\"exce\", resource);") ==
        "dir/t.cedar:1:38: unknown action \"exce\" (known: chat, exec, read, write, edit, "
        "message_send, web_fetch, web_search, browse, approve, command, "
        "memory_search, memory_get, sessions_list, sessions_history, sessions_send)");
  CHECK(errorOf("permit (principal is Usr, action, resource);") ==
        "dir/t.cedar:1:22: unknown entity type \"Usr\" (known: Sender, User, Group, Agent, File, "
        "Host, Recipient, Session, Action)");
  CHECK(errorOf("permit (principal, action, resource) when {\n  principal in Grp::\"x\" };") ==
        "dir/t.cedar:2:16: unknown entity type \"Grp\" (known: Sender, User, Group, Agent, File, "
        "Host, Recipient, Session, Action)");
  CHECK(errorOf("permit (principal, action in [Action::\"chat\", Action::\"fly\"], resource);") ==
        "dir/t.cedar:1:55: unknown action \"fly\" (known: chat, exec, read, write, edit, "
        "message_send, web_fetch, web_search, browse, approve, command, "
        "memory_search, memory_get, sessions_list, sessions_history, sessions_send)");
}

TEST_CASE("parser: duplicate @id is reported at the second policy, also across files") {
  PolicySet set;
  CHECK(set.addFile("@id(\"a\")\npermit (principal, action, resource);", "one.cedar").empty());
  auto errors = set.addFile("\n\n  @id(\"a\") forbid (principal, action, resource);", "two.cedar");
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].str() == "two.cedar:3:3: duplicate policy id \"a\" (first at one.cedar:1)");
  CHECK(set.size() == 1);  // a file with errors adds nothing
  CHECK(errorOf("@id(\"x\") permit (principal, action, resource);\n"
                "@id(\"x\") permit (principal, action, resource);") ==
        "dir/t.cedar:2:1: duplicate policy id \"x\" (first at dir/t.cedar:1)");
}

TEST_CASE("parser: one run reports every broken policy") {
  auto errors = errorsOf(
      "permit (principal, action == Action::\"nope\", resource);\n"
      "permit (principal, action, resource) when { 1 + };\n"
      "permit (principal, action, resource);\n"
      "forbid (principal action, resource);\n");
  REQUIRE(errors.size() == 3);
  CHECK(has(errors[0], "dir/t.cedar:1:38: unknown action \"nope\""));
  CHECK(has(errors[1], "dir/t.cedar:2:49: expected an expression, found '}'"));
  CHECK(has(errors[2], "dir/t.cedar:4:19: expected ',' after the principal constraint"));
}

TEST_CASE("parseEntityUid: accepts one literal, explains anything else") {
  std::string error;
  auto uid = parseEntityUid("Sender::\"telegram:1\\\"x\"", &error);
  REQUIRE(uid);
  CHECK(uid->type == "Sender");
  CHECK(uid->id == "telegram:1\"x");
  CHECK(uid->str() == "Sender::\"telegram:1\\\"x\"");
  auto ns = parseEntityUid("A::B::\"c\"", &error);
  REQUIRE(ns);
  CHECK(ns->type == "A::B");
  CHECK(!parseEntityUid("Sender:\"x\"", &error));
  CHECK(has(error, "expected an entity Type::\"id\""));
  CHECK(!parseEntityUid("Sender::\"x\" extra", &error));
  CHECK(has(error, "unexpected 'extra' after the entity"));
}

}  // namespace
}  // namespace chitin::policy
