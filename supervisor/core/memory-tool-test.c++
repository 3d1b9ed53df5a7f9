// SPDX-License-Identifier: Apache-2.0
// Tests for what the model reads of memory_search: hits with lines and snippets, untrusted hits
// marked and the outcome's untrustedSource set, a worker's bogus paths dropped.
// Runs in: test

#include "memory-tool.h"

#include <doctest/doctest.h>

namespace chitin {
namespace {

const char* ANSWER = R"({"hits":[
  {"path":"memory/2026-12-01.md","startLine":7,"endLine":9,"snippet":"the **giraffe** project","score":-2.1},
  {"path":"MEMORY.md","startLine":3,"endLine":3,"snippet":"a **giraffe** named Gerald","score":-1.0},
  {"path":"../etc/passwd","startLine":1,"endLine":1,"snippet":"root","score":-9},
  {"path":"notes.md","startLine":1,"endLine":1,"snippet":"not memory","score":-9}
], "files": 2})";

TEST_CASE("memory_search outcome: hits with file, lines and snippet; nothing untrusted") {
  auto none = [](const std::string&) { return std::string(); };
  ToolOutcome out = memorySearchOutcome(ANSWER, "giraffe", none, 65536);
  CHECK(out.status == ToolOutcome::Status::OK);
  CHECK(out.untrustedSource.empty());
  CHECK(out.content.find("1. memory/2026-12-01.md:7-9\n   the **giraffe** project") !=
        std::string::npos);
  CHECK(out.content.find("2. MEMORY.md:3\n   a **giraffe** named Gerald") != std::string::npos);
  CHECK(out.content.find("passwd") == std::string::npos);
  CHECK(out.content.find("notes.md") == std::string::npos);
  CHECK(out.content.find("untrusted") == std::string::npos);
}

TEST_CASE("memory_search outcome: a hit from an untrusted note is marked and taints") {
  auto judge = [](const std::string& path) {
    return path == "memory/2026-12-01.md" ? std::string("write in web:x while web_fetch of y")
                                          : std::string();
  };
  ToolOutcome out = memorySearchOutcome(ANSWER, "giraffe", judge, 65536);
  CHECK(out.untrustedSource ==
        "memory file memory/2026-12-01.md: write in web:x while web_fetch of y");
  CHECK(out.content.find("memory/2026-12-01.md:7-9  [untrusted: write in web:x") !=
        std::string::npos);
  CHECK(out.content.find("MEMORY.md:3\n") != std::string::npos);  // the other one is not marked
  CHECK(out.content.find("1 of these matches come from notes written while untrusted") !=
        std::string::npos);
}

TEST_CASE("memory_search outcome: no matches, an invalid answer, the output cap") {
  auto none = [](const std::string&) { return std::string(); };
  CHECK(memorySearchOutcome(R"({"hits":[]})", "x", none, 65536).content.find("(no matches)") !=
        std::string::npos);
  ToolOutcome bad = memorySearchOutcome("{\"hits\":", "x", none, 65536);
  CHECK(bad.status == ToolOutcome::Status::ERROR);
  CHECK(bad.content == "error: memory_search failed: the memory worker's answer is not valid");
  ToolOutcome capped = memorySearchOutcome(ANSWER, "giraffe", none, 100);
  CHECK(capped.content.size() < 200);
  CHECK(capped.content.find("left out at the output cap") != std::string::npos);
}

TEST_CASE("memory_search outcome: hits not of the contract's shape are read safely") {
  auto none = [](const std::string&) { return std::string(); };
  // A missing snippet, line numbers of another type, a NUL in a path, a path past the bound:
  // none throws or aborts; what has a memory path is shown, the rest dropped.
  std::string answer = R"({"hits":[
    {"path":"MEMORY.md"},
    {"path":"memory/a.md","startLine":"7","endLine":-3,"snippet":42},
    {"path":"memory/b\u0000.md","snippet":"nul"},
    {"path":"memory/)" +
                       std::string(2000, 'x') + R"(.md","snippet":"long"},
    7, null, {"path":["MEMORY.md"]}
  ]})";
  ToolOutcome out = memorySearchOutcome(answer, "q", none, 65536);
  CHECK(out.status == ToolOutcome::Status::OK);
  CHECK(out.content.find("1. MEMORY.md:0\n   \n") != std::string::npos);
  CHECK(out.content.find("2. memory/a.md:0\n   \n") != std::string::npos);
  CHECK(out.content.find("nul") == std::string::npos);
  CHECK(out.content.find("long") == std::string::npos);
  CHECK(out.content.find("3.") == std::string::npos);
}

TEST_CASE("memory tools: arguments checked before any worker starts") {
  capnp::MallocMessageBuilder m;
  auto inv = m.initRoot<rpc::ToolInvocation>();
  CHECK(buildInvocation("memory_search", R"({"query":"tea","maxResults":99})", 1, 1, inv) == "");
  CHECK(inv.getMemorySearch().getMaxResults() == 50);
  CHECK(buildInvocation("memory_search", R"({"query":"  "})", 1, 1, inv) ==
        "argument \"query\" is empty");
  CHECK(buildInvocation("memory_search", R"({"query":"x","maxResults":0})", 1, 1, inv) ==
        "argument \"maxResults\" must be a positive whole number");
  CHECK(buildInvocation("memory_get", R"({"path":"/workspace/memory/a.md","from":3})", 1, 1, inv) ==
        "");
  CHECK(std::string(inv.getMemoryGet().getPath().cStr()) == "memory/a.md");
  CHECK(inv.getMemoryGet().getFrom() == 3);
  CHECK(inv.getMemoryGet().getLines() == 200);
  CHECK(buildInvocation("memory_get", R"({"path":"notes.md"})", 1, 1, inv) ==
        "memory_get reads only MEMORY.md or a file beneath memory/, not \"notes.md\" (use read "
        "for other workspace files)");
  CHECK(buildInvocation("memory_get", R"({"path":"memory/../secret.md"})", 1, 1, inv)
            .find("memory_get reads only") == 0);
  CHECK(buildInvocation("memory_get", R"({"path":"../x"})", 1, 1, inv).find("x") !=
        std::string::npos);
}

}  // namespace
}  // namespace chitin
