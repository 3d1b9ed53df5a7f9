// SPDX-License-Identifier: Apache-2.0
// Tests for `chitin memory` (memory-cli.h) with a fake worker call: arguments and their errors,
// the printed status and hits (display text for what the files hold), exit codes. The real
// worker in its sandbox is tested end to end (tests/e2e/test_memory_cli.py).
// Runs in: test

#include "memory-cli.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

namespace chitin::memory {
namespace {

std::string problemOf(std::vector<std::string> args) {
  MemoryCliRequest r;
  return parseMemoryArgs(args, r);
}

TEST_CASE("memory cli: arguments are parsed; bad ones are named with what was expected") {
  MemoryCliRequest r;
  CHECK(parseMemoryArgs({"search", "dentist appointment", "--max", "3", "--agent", "work"}, r) ==
        "");
  CHECK(r.command == MemoryCommand::SEARCH);
  CHECK(r.query == "dentist appointment");
  CHECK(r.maxResults == 3);
  CHECK(r.agent == "work");
  MemoryCliRequest s;
  CHECK(parseMemoryArgs({"status"}, s) == "");
  CHECK(s.command == MemoryCommand::STATUS);
  CHECK(s.agent.empty());

  CHECK(problemOf({}) == "expected a subcommand: status, index or search QUERY");
  CHECK(problemOf({"serch", "x"}) ==
        "unknown subcommand \"serch\": expected status, index or search QUERY");
  CHECK(problemOf({"search"}) == "memory search: expected a QUERY (words to search for)");
  CHECK(problemOf({"search", ""}) ==
        "memory search: the query is empty; expected words to search for");
  CHECK(problemOf({"search", "  \t"}) ==
        "memory search: the query is empty; expected words to search for");
  CHECK(problemOf({"search", "***"}) ==
        "memory search: the query \"***\" has no word to search for (letters or digits)");
  CHECK(problemOf({"search", std::string(5000, 'a')}) ==
        "memory search: the query is 5000 bytes; expected at most 4 KiB");
  CHECK(problemOf({"search", "tea", "--max", "0"}) ==
        "--max: expected a whole number from 1 to 50, got \"0\"");
  CHECK(problemOf({"search", "tea", "--max", "51"}) ==
        "--max: expected a whole number from 1 to 50, got \"51\"");
  CHECK(problemOf({"search", "tea", "--max", "-3"}) ==
        "--max: expected a whole number from 1 to 50, got \"-3\"");
  CHECK(problemOf({"search", "tea", "--max", "lots"}) ==
        "--max: expected a whole number from 1 to 50, got \"lots\"");
  CHECK(problemOf({"search", "tea", "--max"}) ==
        "--max: expected a number of matches (1 to 50) after it");
  CHECK(problemOf({"search", "tea", "coffee"}).find("unknown argument \"coffee\" (quote a query") !=
        std::string::npos);
  CHECK(problemOf({"status", "--max", "3"}) == "memory status: unknown argument \"--max\"");
  CHECK(problemOf({"index", "now"}) == "memory index: unknown argument \"now\"");
  CHECK(problemOf({"status", "--agent", "../x"}) ==
        "--agent: expected an agent name (no '/', not starting with '.'), got \"../x\"");
  CHECK(problemOf({"status", "--agent"}) == "--agent: expected an agent name after it");
  // A control character in bad input is shown escaped, never raw.
  CHECK(problemOf({"st\x1b[2Jatus"}) ==
        "unknown subcommand \"st\\x1b[2Jatus\": expected status, index or search QUERY");
}

const char STATUS_JSON[] =
    R"({"files":3,"chunks":7,"indexBytes":40960,"added":1,"changed":2,"removed":0,)"
    R"("unchanged":0,"stale":3,"skipped":1,"updatedAt":1764688800,"rebuiltBecause":""})";

TEST_CASE("memory cli: status prints files, chunks, size, last update and stale files") {
  std::string text = formatMemoryStatus(STATUS_JSON, MemoryCommand::STATUS, "main", 1764688830);
  CHECK(text ==
        "Memory index of agent \"main\"\n"
        "  files indexed  3\n"
        "  chunks         7\n"
        "  index size     40.0 KiB\n"
        "  last update    2025-12-02 15:20:00 UTC (30 s ago)\n"
        "  stale files    3 (1 new, 2 changed, 0 removed): `chitin memory index` or the next "
        "search updates them\n"
        "  skipped        1 (symlinks, not regular files, over 4 MiB, or a path over 1 KiB)\n");
  std::string indexed = formatMemoryStatus(
      R"({"files":1,"chunks":1,"indexBytes":900,"added":1,"changed":0,"removed":0,"unchanged":0,)"
      R"("stale":0,"skipped":0,"updatedAt":0,"rebuiltBecause":"the index did not exist"})",
      MemoryCommand::INDEX, "main", 0);
  CHECK(indexed.rfind("Indexed: 1 new, 0 changed, 0 removed, 0 unchanged file(s)\n", 0) == 0);
  CHECK(indexed.find("  index size     900 bytes\n") != std::string::npos);
  CHECK(indexed.find("  last update    never\n") != std::string::npos);
  CHECK(indexed.find("  rebuilt        the index did not exist\n") != std::string::npos);
  CHECK(indexed.find("stale files") == std::string::npos);
  // The embeddings the gateway's memory_search stored, per model; a count of another type is
  // left out.
  std::string withVectors = formatMemoryStatus(
      R"({"files":1,"chunks":2,"indexBytes":900,"added":0,"changed":0,"removed":0,)"
      R"("unchanged":1,"stale":0,"skipped":0,"updatedAt":0,"rebuiltBecause":"",)"
      R"("vectors":{"nomic-embed-text":2,"odd\u001b":"x"}})",
      MemoryCommand::STATUS, "main", 0);
  CHECK(withVectors.find("  embeddings     2 chunk text(s) by \"nomic-embed-text\"\n") !=
        std::string::npos);
  CHECK(withVectors.find("odd") == std::string::npos);
  CHECK_THROWS_WITH_AS(formatMemoryStatus("[1]", MemoryCommand::STATUS, "main", 0),
                       "the memory worker's answer is not a JSON object", std::runtime_error);
  CHECK_THROWS_WITH_AS(formatMemoryStatus(R"({"files":"3"})", MemoryCommand::STATUS, "main", 0),
                       "the memory worker's answer has no count \"added\"", std::runtime_error);
}

TEST_CASE("memory cli: hits print as path:lines, score and snippet; file bytes are escaped") {
  std::string text = formatMemorySearch(
      R"({"files":2,"hits":[{"path":"memory/2026-12-01.md","startLine":5,"endLine":5,)"
      R"("snippet":"The **giraffe** project","score":-1.234},)"
      R"({"path":"MEMORY.md","startLine":2,"endLine":4,"snippet":"a\nb\u001b]52;c;x\u0007",)"
      R"("score":-0.5}]})",
      "giraffe");
  CHECK(text ==
        "memory/2026-12-01.md:5  score 1.23\n"
        "    The **giraffe** project\n\n"
        "MEMORY.md:2-4  score 0.50\n"
        "    a\n    b\\x1b]52;c;x\\x07\n\n"
        "2 matches for \"giraffe\", best first (score: BM25 keyword ranking, higher is "
        "better)\n");
  // A hybrid ranking's score is shown as it is (0..1, higher is better).
  CHECK(formatMemorySearch(
            R"({"files":2,"ranking":"hybrid","hits":[{"path":"memory/garage.md","startLine":1,)"
            R"("endLine":1,"snippet":"Sedan needs new tyres.","score":0.512}]})",
            "automobile") ==
        "memory/garage.md:1  score 0.51\n"
        "    Sedan needs new tyres.\n\n"
        "1 match for \"automobile\", best first (score: meaning and keywords, 0 to 1, higher is "
        "better)\n");
  // A ranking of another type is no hybrid (the answer's shape is never trusted).
  CHECK(formatMemorySearch(R"({"files":1,"ranking":7,"hits":[]})", "x") ==
        "no matches for \"x\" (1 files indexed)\n");
  CHECK(formatMemorySearch(R"({"files":4,"hits":[]})", "okapi") ==
        "no matches for \"okapi\" (4 files indexed)\n");
  CHECK_THROWS_AS(formatMemorySearch(R"({"files":4})", "x"), std::runtime_error);
  CHECK_THROWS_AS(formatMemorySearch(R"({"files":4,"hits":[{"path":7}]})", "x"),
                  std::runtime_error);
}

struct Home {
  std::string root;
  Home() {
    char tmpl[] = "/tmp/memory-cli-test.XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    root = tmpl;
    std::filesystem::create_directories(root + "/workspace/main");
  }
  ~Home() { std::filesystem::remove_all(root); }
};

TEST_CASE("memory cli: exit codes: 0 answered, 1 the worker failed or no workspace, 2 usage") {
  Home home;
  std::vector<std::string> seen;
  ToolOutcome answer{ToolOutcome::Status::OK, R"({"files":0,"hits":[]})"};
  MemoryCliEnv env{home.root, "main",
                   [&](const MemoryCliRequest& r, const std::string& ws, const std::string& st) {
                     seen = {r.query, ws, st, std::to_string(r.maxResults)};
                     return answer;
                   }};
  std::ostringstream out, err;
  CHECK(memoryCommand({"search", "tea", "--max", "4"}, env, out, err) == 0);
  CHECK(seen == std::vector<std::string>{"tea", home.root + "/workspace/main",
                                         home.root + "/state/memory/main", "4"});
  CHECK(out.str() == "no matches for \"tea\" (0 files indexed)\n");

  std::ostringstream out2, err2;
  answer = ToolOutcome{ToolOutcome::Status::ERROR,
                       "error: the tool did not run because its sandbox could not be set up: "
                       "bwrap is missing"};
  CHECK(memoryCommand({"status"}, env, out2, err2) == 1);
  CHECK(out2.str().empty());
  CHECK(err2.str() ==
        "chitin memory status: the tool did not run because its sandbox could not be set up: "
        "bwrap is missing\n");

  std::ostringstream out3, err3;
  answer = ToolOutcome{ToolOutcome::Status::OK, "not json"};
  CHECK(memoryCommand({"index"}, env, out3, err3) == 1);
  CHECK(err3.str() == "chitin memory index: the memory worker's answer is not a JSON object\n");

  std::ostringstream out4, err4;
  seen.clear();
  CHECK(memoryCommand({"search", "--max", "x", "tea"}, env, out4, err4) == 2);
  CHECK(seen.empty());  // no worker for bad input
  CHECK(err4.str().rfind("chitin memory: --max: expected a whole number from 1 to 50, got \"x\"\n"
                         "usage: chitin memory status",
                         0) == 0);

  std::ostringstream out5, err5;
  CHECK(memoryCommand({"status", "--agent", "nobody"}, env, out5, err5) == 1);
  CHECK(seen.empty());
  CHECK(err5.str().rfind("chitin memory: agent \"nobody\" has no workspace at " + home.root +
                             "/workspace/nobody",
                         0) == 0);
}

TEST_CASE("memory cli: search asks the running gateway first, and searches here without one") {
  Home home;
  std::filesystem::create_directories(home.root + "/workspace/other");
  int localCalls = 0, gatewayCalls = 0;
  MemoryCliEnv env{
      home.root, "main", [&](const MemoryCliRequest&, const std::string&, const std::string&) {
        ++localCalls;
        return ToolOutcome{ToolOutcome::Status::OK, R"({"files":1,"ranking":"keyword","hits":[]})"};
      }};
  GatewayMemoryAnswer gateway;
  MemoryCliRequest asked;
  env.gatewaySearch = [&](const MemoryCliRequest& r) {
    ++gatewayCalls;
    asked = r;
    return gateway;
  };

  // The gateway answers: its ranking is printed, no worker starts here.
  gateway = {true, true,
             R"({"files":3,"ranking":"hybrid","hits":[{"path":"memory/garage.md","startLine":1,)"
             R"("endLine":1,"snippet":"Sedan needs new tyres.","score":0.5}]})"};
  std::ostringstream out, err;
  CHECK(memoryCommand({"search", "automobile", "--max", "3"}, env, out, err) == 0);
  CHECK(out.str().rfind("memory/garage.md:1  score 0.50\n", 0) == 0);
  CHECK(out.str().find("meaning and keywords") != std::string::npos);
  CHECK(err.str().empty());
  CHECK(asked.query == "automobile");
  CHECK(asked.maxResults == 3);
  CHECK(localCalls == 0);

  // None runs: the search runs here, silently.
  gateway = {false, false, ""};
  std::ostringstream out2, err2;
  CHECK(memoryCommand({"search", "tea"}, env, out2, err2) == 0);
  CHECK(localCalls == 1);
  CHECK(err2.str().empty());
  CHECK(out2.str() == "no matches for \"tea\" (1 files indexed)\n");

  // It fails, or answers what is not JSON: said, then the search runs here.
  for (auto failed : {GatewayMemoryAnswer{true, false, "UNAVAILABLE: the memory tool failed"},
                      GatewayMemoryAnswer{true, true, "not json"}}) {
    gateway = failed;
    std::ostringstream out3, err3;
    CHECK(memoryCommand({"search", "tea"}, env, out3, err3) == 0);
    CHECK(err3.str().rfind("chitin memory search: the gateway's search failed (", 0) == 0);
    CHECK(err3.str().find("); searching here, by keywords\n") != std::string::npos);
    CHECK(out3.str() == "no matches for \"tea\" (1 files indexed)\n");
  }
  CHECK(localCalls == 3);

  // Another agent than the gateway's, and the other commands, never ask it.
  int before = gatewayCalls;
  std::ostringstream out4, err4;
  CHECK(memoryCommand({"search", "tea", "--agent", "other"}, env, out4, err4) == 0);
  CHECK(memoryCommand({"status"}, env, out4, err4) == 1);  // the fake's answer is no status
  CHECK(gatewayCalls == before);
}

}  // namespace
}  // namespace chitin::memory
