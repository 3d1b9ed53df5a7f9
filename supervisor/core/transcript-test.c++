// SPDX-License-Identifier: Apache-2.0
// Tests for JSON-lines transcripts.
// Runs in: test

#include "transcript.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

namespace chitin {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/chitin-transcript-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { [[maybe_unused]] int rc = std::system(("rm -rf '" + path + "'").c_str()); }
};

TEST_CASE("transcript: file names round-trip and never contain a slash") {
  for (std::string key : {"agent:main:cli:direct:alice", "agent:main:x:group:a/b", "..", ".hidden",
                          "100%", "sp ace"}) {
    auto name = TranscriptStore::fileNameFor(key);
    CHECK(name.find('/') == std::string::npos);
    CHECK(name[0] != '.');
    CHECK(TranscriptStore::keyForFileName(name) == key);
  }
  CHECK(TranscriptStore::keyForFileName("notes.txt") == "");
  CHECK(TranscriptStore::keyForFileName("bad%zz.jsonl") == "");
}

TEST_CASE("transcript: entries append and load in order with all fields") {
  TempDir dir;
  TranscriptStore store(dir.path);
  TranscriptEntry a;
  a.role = "user";
  a.content = "hi";
  a.runId = "r1";
  TranscriptEntry b;
  b.role = "assistant";
  b.toolCalls = {{"c1", "exec", R"({"command":"ls"})"}};
  TranscriptEntry c;
  c.role = "tool";
  c.content = "a\nb";
  c.toolCallId = "c1";
  c.toolName = "exec";
  c.isError = true;
  for (auto* e : {&a, &b, &c}) store.append("agent:main:cli:direct:alice", *e);
  auto loaded = store.load("agent:main:cli:direct:alice");
  REQUIRE(loaded.size() == 3);
  CHECK(loaded[0].content == "hi");
  CHECK(loaded[0].runId == "r1");
  REQUIRE(loaded[1].toolCalls.size() == 1);
  CHECK(loaded[1].toolCalls[0].arguments == R"({"command":"ls"})");
  CHECK(loaded[2].isError);
  CHECK(loaded[2].content == "a\nb");
  auto list = store.list();
  REQUIRE(list.size() == 1);
  CHECK(list[0].key == "agent:main:cli:direct:alice");
  CHECK(list[0].entries == 3);
}

TEST_CASE("transcript: a torn last line (crash mid-write) is skipped, earlier entries survive") {
  TempDir dir;
  TranscriptStore store(dir.path);
  TranscriptEntry a;
  a.role = "user";
  a.content = "kept";
  store.append("k", a);
  {
    std::ofstream out(dir.path + "/" + TranscriptStore::fileNameFor("k"), std::ios::app);
    out << R"({"role":"assistant","content":"tor)";
  }
  size_t skipped = 0;
  auto loaded = store.load("k", &skipped);
  REQUIRE(loaded.size() == 1);
  CHECK(loaded[0].content == "kept");
  CHECK(skipped == 1);

  // The next append cuts the torn tail off instead of gluing the new record to it.
  TranscriptEntry b;
  b.role = "user";
  b.content = "after the crash";
  store.append("k", b);
  loaded = store.load("k", &skipped);
  REQUIRE(loaded.size() == 2);
  CHECK(loaded[1].content == "after the crash");
  CHECK(skipped == 0);
}

TEST_CASE("transcript: a file that is one torn line is emptied before the next append") {
  TempDir dir;
  TranscriptStore store(dir.path);
  std::ofstream(dir.path + "/" + TranscriptStore::fileNameFor("k")) << R"({"role":"us)";
  TranscriptEntry a;
  a.role = "user";
  a.content = "first whole record";
  store.append("k", a);
  size_t skipped = 0;
  auto loaded = store.load("k", &skipped);
  REQUIRE(loaded.size() == 1);
  CHECK(loaded[0].content == "first whole record");
  CHECK(skipped == 0);
}

TranscriptEntry said(const std::string& content) {
  TranscriptEntry e;
  e.role = "user";
  e.content = content;
  return e;
}

std::vector<std::string> contents(const std::vector<TranscriptEntry>& entries) {
  std::vector<std::string> out;
  for (const auto& e : entries) out.push_back(e.content);
  return out;
}

TEST_CASE("transcript: appendAsync writes at once and says on the loop when each is on disk") {
  TempDir dir;
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  std::vector<int> synced;  // the order the syncs reported, by record number
  std::vector<int> errors;
  {
    TranscriptStore store(dir.path);
    store.append("k", said("before"));
    for (int i = 0; i < 3; ++i) {
      store.appendAsync(&loop, "k", said("async " + std::to_string(i)), [&, i](int error) {
        synced.push_back(i);
        errors.push_back(error);
      });
    }
    // Written already: a load before any sync has finished sees all, in order.
    CHECK(contents(store.load("k")) ==
          std::vector<std::string>{"before", "async 0", "async 1", "async 2"});
    CHECK(synced.empty());  // reported only from the loop
    // A record that cannot be written throws here and reports nothing later.
    TranscriptStore broken(dir.path + "/missing");
    CHECK_THROWS_WITH_AS(
        broken.appendAsync(&loop, "k", said("lost"), [&](int) { synced.push_back(-1); }),
        doctest::Contains("cannot open transcript"), std::runtime_error);
  }  // the store may go before its syncs finish
  REQUIRE(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  std::sort(synced.begin(), synced.end());
  CHECK(synced == std::vector<int>{0, 1, 2});
  CHECK(errors == std::vector<int>{0, 0, 0});
  CHECK(uv_loop_close(&loop) == 0);  // no descriptor or request left behind
  TranscriptStore again(dir.path);
  CHECK(again.load("k").size() == 4);
}

TEST_CASE("transcript: loads after appends see every entry, whatever was cached before") {
  TempDir dir;
  TranscriptStore store(dir.path);
  std::string path = dir.path + "/" + TranscriptStore::fileNameFor("k");
  store.append("k", said("one"));
  CHECK(contents(store.load("k")) == std::vector<std::string>{"one"});
  store.append("k", said("two"));
  store.append("k", said("three"));
  CHECK(contents(store.load("k")) == std::vector<std::string>{"one", "two", "three"});

  // Archived (/new): the next file under the name is another file, read from its start.
  store.archive("k");
  CHECK(store.load("k").empty());
  store.append("k", said("fresh"));
  CHECK(contents(store.load("k")) == std::vector<std::string>{"fresh"});

  // Replaced by another file that is longer than what was read: read anew, not appended to.
  {
    std::ofstream out(path + ".new");
    out << said("replaced a").toJson().dump() << "\n" << said("replaced b").toJson().dump() << "\n";
  }
  REQUIRE(rename((path + ".new").c_str(), path.c_str()) == 0);
  CHECK(contents(store.load("k")) == std::vector<std::string>{"replaced a", "replaced b"});

  // Cut shorter in place: read anew.
  REQUIRE(truncate(path.c_str(), 0) == 0);
  CHECK(store.load("k").empty());
  store.append("k", said("after the cut"));
  CHECK(contents(store.load("k")) == std::vector<std::string>{"after the cut"});
}

TEST_CASE("transcript: the load cache is bounded; sessions past it are read whole each time") {
  TempDir dir;
  TranscriptStore store(dir.path, 300);  // bytes: about two short entries
  for (int i = 0; i < 5; ++i) store.append("big", said("entry " + std::to_string(i)));
  std::vector<std::string> small;
  for (int round = 0; round < 3; ++round) {
    small.push_back("s" + std::to_string(round));
    store.append("small", said(small.back()));
    CHECK(store.load("big").size() == 5 + static_cast<size_t>(round));
    CHECK(contents(store.load("small")) == small);
    store.append("big", said("entry " + std::to_string(5 + round)));
    CHECK(store.load("big").size() == 6 + static_cast<size_t>(round));
  }
}

TEST_CASE("transcript: unknown roles are rejected") {
  CHECK_THROWS(TranscriptEntry::fromJson(nlohmann::json{{"role", "system"}}));
}

}  // namespace
}  // namespace chitin
