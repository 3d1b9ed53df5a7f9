// SPDX-License-Identifier: Apache-2.0
// Tests for the memory index against a temporary workspace and state directory: building,
// updating (edited, touched, removed files), rebuilding a deleted or corrupt index, BM25
// ranking, snippets with line numbers, and memory_get's path refusal.
// Runs in: test

#include "memory-index.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <vector>

namespace chitin {
namespace {

namespace fs = std::filesystem;

struct Dirs {
  fs::path workspace, state;
  int rootFd = -1;
  Dirs() {
    char tmpl[] = "/tmp/memory-index-test.XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    fs::path base = tmpl;
    workspace = base / "workspace";
    state = base / "state";
    fs::create_directories(workspace / "memory");
    fs::create_directories(state);
    rootFd = open(workspace.c_str(), O_RDONLY | O_DIRECTORY);
    REQUIRE(rootFd >= 0);
  }
  ~Dirs() {
    close(rootFd);
    fs::remove_all(workspace.parent_path());
  }
  void write(const std::string& rel, const std::string& content) {
    fs::create_directories((workspace / rel).parent_path());
    std::ofstream(workspace / rel, std::ios::trunc) << content;
  }
  std::string index() const { return (state / "index.sqlite").string(); }
};

bool anyHitIn(const std::vector<MemoryHit>& hits, const std::string& path) {
  for (const auto& h : hits)
    if (h.path == path) return true;
  return false;
}

TEST_CASE("memory index: built from MEMORY.md and memory/*.md, hits name lines and snippets") {
  Dirs d;
  d.write("MEMORY.md", "# About the user\n\nPrefers tea over coffee.\nLives in Lisbon.\n");
  d.write("memory/2026-12-01.md",
          "# 2026-12-01\n\nline three\n\nline five\n\nThe giraffe project kicked off today.\n");
  d.write("memory/sub/old.md", "An old note about a giraffe named Gerald.\n");
  d.write("memory/ignored.txt", "giraffe in a text file: not indexed\n");
  d.write("notes.md", "giraffe outside memory: not indexed\n");

  MemoryIndex index(d.index());
  CHECK(index.rebuiltBecause() == "the index did not exist");
  MemoryStats stats = index.update(d.rootFd);
  CHECK(stats.added == 3);
  CHECK(stats.files == 3);
  CHECK(stats.stale == 0);

  auto hits = index.search("giraffe", 10);
  REQUIRE(hits.size() == 2);
  CHECK(!anyHitIn(hits, "notes.md"));
  CHECK(!anyHitIn(hits, "memory/ignored.txt"));
  for (const auto& h : hits) {
    if (h.path == "memory/2026-12-01.md") {
      CHECK(h.startLine == 7);
      CHECK(h.endLine == 7);
      CHECK(h.snippet.find("**giraffe**") != std::string::npos);
    } else {
      CHECK(h.path == "memory/sub/old.md");
      CHECK(h.startLine == 1);
    }
  }
  auto tea = index.search("tea", 5);
  REQUIRE(tea.size() == 1);
  CHECK(tea[0].path == "MEMORY.md");
  CHECK(tea[0].startLine == 3);  // the heading is a chunk of its own; the paragraph is 3-4
  CHECK(tea[0].endLine == 4);
}

TEST_CASE("memory index: BM25 puts the chunk about the words first; all words before any") {
  Dirs d;
  d.write("memory/a.md", "Dentist appointment on Monday.\n");
  d.write("memory/b.md", "Dentist dentist dentist: the dentist moved to a new address.\n");
  d.write("memory/c.md", "Monday is laundry day.\n");
  MemoryIndex index(d.index());
  index.update(d.rootFd);
  auto hits = index.search("dentist", 10);
  REQUIRE(hits.size() == 2);
  CHECK(hits[0].path == "memory/b.md");
  CHECK(hits[0].score <= hits[1].score);
  // Both words: only a.md has them both.
  auto both = index.search("dentist monday", 10);
  REQUIRE(both.size() == 1);
  CHECK(both[0].path == "memory/a.md");
  // No chunk has all three: any of them, best first.
  auto any = index.search("dentist monday zebra", 10);
  CHECK(any.size() == 3);
  CHECK(index.search("dentist", 1).size() == 1);  // maxResults
}

TEST_CASE("memory index: FTS5 syntax in a query is words, not operators") {
  CHECK(ftsQuery("tea NEAR(\"x\" y)* -z", " ") == "\"tea\" \"NEAR\" \"x\" \"y\" \"z\"");
  CHECK(ftsQuery("  ** \"\" ", " ").empty());
  Dirs d;
  d.write("MEMORY.md", "tea\n");
  MemoryIndex index(d.index());
  index.update(d.rootFd);
  CHECK(index.search("tea\" OR \"x*", 5).size() == 1);
  CHECK_THROWS_AS(index.search("*** ---", 5), std::invalid_argument);
}

TEST_CASE("memory index: an edited file is found by its new words, a removed one is gone") {
  Dirs d;
  d.write("memory/2026-12-02.md", "Bought oranges.\n");
  d.write("memory/2026-12-03.md", "Called the plumber.\n");
  MemoryIndex index(d.index());
  index.update(d.rootFd);
  CHECK(index.search("oranges", 5).size() == 1);

  d.write("memory/2026-12-02.md", "Bought pomegranates instead.\n");
  fs::remove(d.workspace / "memory/2026-12-03.md");
  MemoryStats before = index.status(d.rootFd);
  CHECK(before.changed == 1);
  CHECK(before.removed == 1);
  CHECK(before.stale == 2);
  MemoryStats stats = index.update(d.rootFd);
  CHECK(stats.changed == 1);
  CHECK(stats.removed == 1);
  CHECK(index.search("oranges", 5).empty());
  CHECK(index.search("plumber", 5).empty());
  auto hits = index.search("pomegranates", 5);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].path == "memory/2026-12-02.md");
  CHECK(index.status(d.rootFd).stale == 0);

  // Touched but not changed: the content hash keeps its chunks.
  d.write("memory/2026-12-02.md", "Bought pomegranates instead.\n");
  CHECK(index.status(d.rootFd).changed == 1);
  stats = index.update(d.rootFd);
  CHECK(stats.changed == 0);
  CHECK(stats.unchanged == 1);
  CHECK(index.search("pomegranates", 5).size() == 1);
}

TEST_CASE("memory index: a deleted index is rebuilt, a later open reuses it") {
  Dirs d;
  d.write("MEMORY.md", "The wifi password is on the fridge.\n");
  {
    MemoryIndex index(d.index());
    index.update(d.rootFd);
  }
  {
    MemoryIndex index(d.index());
    CHECK(index.rebuiltBecause().empty());
    CHECK(index.update(d.rootFd).unchanged == 1);
  }
  fs::remove(d.index());
  MemoryIndex index(d.index());
  CHECK(index.rebuiltBecause() == "the index did not exist");
  CHECK(index.status(d.rootFd).stale == 1);
  index.update(d.rootFd);
  CHECK(index.search("fridge", 5).size() == 1);
}

TEST_CASE("memory index: a corrupt or foreign index file is replaced, never trusted") {
  Dirs d;
  d.write("MEMORY.md", "Anniversary: 14 February.\n");
  SUBCASE("garbage") { std::ofstream(d.index()) << std::string(8192, 'x'); }
  SUBCASE("a valid SQLite file of another schema version, with planted rows") {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(d.index().c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db,
                         "CREATE TABLE files(path TEXT PRIMARY KEY, ctime INTEGER, size INTEGER, "
                         "ino INTEGER, hash TEXT);"
                         "CREATE VIRTUAL TABLE chunks USING fts5(text, path UNINDEXED, "
                         "start_line UNINDEXED, end_line UNINDEXED);"
                         "INSERT INTO chunks VALUES('planted anniversary', '../../etc/passwd', "
                         "1, 1);"
                         "PRAGMA user_version=7;",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
  }
  SUBCASE("a truncated index") {
    {
      MemoryIndex index(d.index());
      index.update(d.rootFd);
    }
    fs::resize_file(d.index(), 1024 + 100);
  }
  MemoryIndex index(d.index());
  CHECK(index.rebuiltBecause().find("the index was not valid") == 0);
  index.update(d.rootFd);
  auto hits = index.search("anniversary", 5);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].path == "MEMORY.md");
}

TEST_CASE("memory_get: lines of a memory file, numbered; other paths and symlinks refused") {
  Dirs d;
  d.write("MEMORY.md", "one\ntwo\nthree\nfour\n");
  d.write("secret.md", "not memory\n");
  fs::create_symlink("../secret.md", d.workspace / "memory/link.md");
  std::string error;
  CHECK(readMemoryLines(d.rootFd, "MEMORY.md", 2, 2, error) == "2\ttwo\n3\tthree\n");
  CHECK(error.empty());
  CHECK(readMemoryLines(d.rootFd, "MEMORY.md", 3, 100, error) == "3\tthree\n4\tfour\n");
  CHECK(readMemoryLines(d.rootFd, "MEMORY.md", 9, 1, error).empty());
  CHECK(error == "\"MEMORY.md\" has 4 lines; line 9 is past its end");
  error.clear();
  CHECK(readMemoryLines(d.rootFd, "secret.md", 1, 10, error).empty());
  CHECK(error.find("memory_get reads only MEMORY.md or a file beneath memory/") == 0);
  error.clear();
  CHECK(readMemoryLines(d.rootFd, "memory/link.md", 1, 10, error).empty());
  CHECK(error.find("is a symlink") != std::string::npos);
  error.clear();
  CHECK(readMemoryLines(d.rootFd, "memory/none.md", 1, 10, error).empty());
  CHECK(error == "\"memory/none.md\" does not exist");
  // The symlink is not indexed either: its target's words are not memory.
  MemoryIndex index(d.index());
  MemoryStats stats = index.update(d.rootFd);
  CHECK(stats.skipped == 1);
  CHECK(index.search("memory", 5).empty());
}

// `children` processes, released at once, each creating (the index is missing), updating and
// searching the one index; how many of them failed.
int raceOnMissingIndex(Dirs& d, int children) {
  int gate[2];
  REQUIRE(pipe(gate) == 0);
  std::vector<pid_t> pids;
  for (int i = 0; i < children; ++i) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      close(gate[1]);
      char c;
      (void)!read(gate[0], &c, 1);  // EOF when the parent closes its end: all start together
      try {
        MemoryIndex index(d.index());
        index.update(d.rootFd);
        _exit(index.search("kettle", 5).size() == 1 ? 0 : 3);
      } catch (const std::exception& e) {
        fprintf(stderr, "child %d: %s\n", i, e.what());
        _exit(2);
      }
    }
    pids.push_back(pid);
  }
  close(gate[0]);
  close(gate[1]);
  int failed = 0;
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  return failed;
}

TEST_CASE("memory index: processes that create, update and search one index at once all succeed") {
  Dirs d;
  d.write("MEMORY.md", "The kettle is descaled monthly.\n");
  for (int i = 0; i < 50; ++i)
    d.write("memory/n" + std::to_string(i) + ".md", "note " + std::to_string(i) + "\n");
  for (int round = 0; round < 3; ++round) {
    fs::remove(d.index());
    CHECK(raceOnMissingIndex(d, 6) == 0);
  }
  MemoryIndex index(d.index());
  CHECK(index.status(d.rootFd).files == 51);
  CHECK(index.status(d.rootFd).stale == 0);
}

TEST_CASE("memory index: a second index on the same file waits for the first, then says busy") {
  Dirs d;
  d.write("MEMORY.md", "tea\n");
  auto first = std::make_unique<MemoryIndex>(d.index());
  try {
    MemoryIndex second(d.index(), 100);
    FAIL("the second index opened while the first held the lock");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("the memory index is busy: another memory call") == 0);
    CHECK(std::string(e.what()).find(d.index() + ".lock") != std::string::npos);
  }
  first.reset();
  // Control: once the first is gone, the same open succeeds at once.
  MemoryIndex third(d.index(), 100);
  CHECK(third.update(d.rootFd).unchanged == 0);
}

TEST_CASE("memory answers: texts are cut at a character, memory_get's lines at a line") {
  // "é" is two bytes: a cut at 3 of "aéb" would split it.
  CHECK(cutAtCharacter("a\xc3\xa9"
                       "b",
                       2) == "a");
  CHECK(cutAtCharacter("a\xc3\xa9"
                       "b",
                       3) == "a\xc3\xa9");
  CHECK(cutAtCharacter("abc", 10) == "abc");
  CHECK(boundedLines("1\tone\n2\ttwo\n", 1000) == "1\tone\n2\ttwo\n");
  std::string many;
  for (int i = 1; i <= 100; ++i) many += std::to_string(i) + "\tline " + std::to_string(i) + "\n";
  std::string cut = boundedLines(many, 500);
  CHECK(cut.size() <= 500);
  CHECK(cut.rfind("1\tline 1\n", 0) == 0);
  CHECK(cut.find("bytes: read on from the next line]\n") != std::string::npos);
  size_t note = cut.find("[cut at ");
  REQUIRE(note != std::string::npos);
  CHECK(cut[note - 1] == '\n');  // whole lines before the note
  std::string oneLong = "1\t" + std::string(600, 'x') + "\xc3\xa9\n";
  std::string longCut = boundedLines(oneLong, 400);
  CHECK(longCut.size() <= 400);
  CHECK(longCut.rfind("1\txxx", 0) == 0);
}

}  // namespace
}  // namespace chitin
