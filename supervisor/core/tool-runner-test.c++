// SPDX-License-Identifier: Apache-2.0
// Tests for tool-call argument checking (what reaches a tool worker).
// Runs in: test

#include "tool-runner.h"
#include "web-fetch-tool.h"

#include <capnp/message.h>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

namespace chitin {
namespace {

struct Built {
  capnp::MallocMessageBuilder message;
  rpc::ToolInvocation::Builder inv = message.initRoot<rpc::ToolInvocation>();
  std::string error;
};

std::unique_ptr<Built> build(const std::string& tool, const std::string& args) {
  auto b = std::make_unique<Built>();
  b->error = buildInvocation(tool, args, 120, 600, b->inv);
  return b;
}

TEST_CASE("tool args: exec with defaults and a clamped timeout") {
  auto b = build("exec", R"({"command":"ls -la"})");
  REQUIRE(b->error == "");
  REQUIRE(b->inv.isExec());
  CHECK(std::string(b->inv.getExec().getCommand().cStr()) == "ls -la");
  CHECK(b->inv.getExec().getTimeoutSeconds() == 120);
  b = build("exec", R"({"command":"sleep 1","timeoutSeconds":99999,"workdir":"sub"})");
  REQUIRE(b->error == "");
  CHECK(b->inv.getExec().getTimeoutSeconds() == 600);
  CHECK(std::string(b->inv.getExec().getWorkdir().cStr()) == "sub");
}

TEST_CASE("tool args: every malformed argument is named") {
  CHECK(build("exec", "{")->error.find("not valid JSON") != std::string::npos);
  CHECK(build("exec", "[1]")->error.find("JSON object") != std::string::npos);
  CHECK(build("exec", "{}")->error.find("\"command\"") != std::string::npos);
  CHECK(build("exec", R"({"command":5})")->error.find("must be a string") != std::string::npos);
  CHECK(build("exec", R"({"command":""})")->error.find("empty") != std::string::npos);
  CHECK(build("exec", R"({"command":"x","timeoutSeconds":"9"})")->error.find("timeoutSeconds") !=
        std::string::npos);
  CHECK(build("exec", R"({"command":"a\u0000b"})")->error.find("NUL") != std::string::npos);
  CHECK(build("write", R"({"path":"a"})")->error.find("\"content\"") != std::string::npos);
  CHECK(build("edit", R"({"path":"a","oldText":"","newText":"x"})")->error.find("oldText") !=
        std::string::npos);
  CHECK(build("browse", "{}")
            ->error.find("unknown tool \"browse\"; available tools: exec, read, write, edit") !=
        std::string::npos);
  CHECK(build("browser", "{}")->error.find("argument \"action\"") != std::string::npos);
}

TEST_CASE("tool args: read/write/edit build their typed invocation") {
  auto b = build("read", R"({"path":"notes/a.md"})");
  REQUIRE(b->inv.isRead());
  CHECK(std::string(b->inv.getRead().getPath().cStr()) == "notes/a.md");
  b = build("write", R"({"path":"a","content":"x\ny"})");
  REQUIRE(b->inv.isWrite());
  CHECK(std::string(b->inv.getWrite().getContent().cStr()) == "x\ny");
  b = build("edit", R"({"path":"a","oldText":"x","newText":"y"})");
  REQUIRE(b->inv.isEdit());
  CHECK(std::string(b->inv.getEdit().getNewText().cStr()) == "y");
  CHECK(build("read", "")->error == "missing required argument \"path\" (a string)");
}

TEST_CASE("web_fetch arguments: an http(s) URL with a host, a known mode, a positive maxChars") {
  auto error = [](const char* json) {
    WebFetchArgs args;
    return parseWebFetchArguments(nlohmann::json::parse(json), args);
  };
  CHECK(error(R"({"url":"https://example.com/a?b"})") == "");
  CHECK(error(R"({"url":"https://example.com/","extractMode":"text","maxChars":10})") == "");
  CHECK(error("{}") == "argument \"url\" must be a string (a URL)");
  CHECK(error(R"({"url":"file:///etc/passwd"})") ==
        "argument \"url\": expected an http:// or https:// URL, got \"file:///etc/passwd\"");
  CHECK(error(R"({"url":"https://a b/"})").find("spaces or control characters") !=
        std::string::npos);
  CHECK(error(R"({"url":"https://user@example.com/"})") != "");
  CHECK(error(R"({"url":"https://example.com/","extractMode":"html"})") ==
        "argument \"extractMode\" must be \"markdown\" or \"text\"");
  CHECK(error(R"({"url":"https://example.com/","maxChars":0})") ==
        "argument \"maxChars\" must be a positive whole number");
  WebFetchArgs big;
  CHECK(parseWebFetchArguments(
            nlohmann::json::parse(R"({"url":"http://x.test/","maxChars":99999999})"), big) == "");
  CHECK(big.maxChars == WEB_FETCH_MAX_CHARS);
  CHECK(big.markdown);
}

TEST_CASE("tool specs: OpenClaw's names, each with a JSON-schema object") {
  std::vector<std::string> names;
  for (auto& s : toolSpecs()) {
    names.push_back(s.name);
    CHECK(nlohmann::json::parse(s.parametersJson)["type"] == "object");
  }
  CHECK(names == std::vector<std::string>{"exec", "read", "write", "edit", "message", "web_fetch",
                                          "web_search", "memory_search", "memory_get",
                                          "sessions_list", "sessions_history", "sessions_send",
                                          "browser"});
}

}  // namespace
}  // namespace chitin

namespace chitin {
namespace {

TEST_CASE("tool outcome: a worker's NUL bytes become U+FFFD; the text is not cut at them") {
  capnp::MallocMessageBuilder message;
  auto result = message.initRoot<rpc::ToolResult>();
  std::string text = std::string("a\0b", 3) + "\nexit code 1";
  result.setFailed(capnp::Text::Reader(text.data(), text.size()));
  auto outcome = toolOutcomeFrom(result.asReader(), 1000);
  CHECK(outcome.content ==
        "a\xef\xbf\xbd"
        "b\nexit code 1");
}

}  // namespace
}  // namespace chitin
