// SPDX-License-Identifier: Apache-2.0
// Tests for the memory index against a temporary workspace and state directory: building,
// updating (edited, touched, removed files), rebuilding a deleted or corrupt index (found at open
// or on use), the verified stamp that spares a warm open the full check, the counts kept in meta,
// BM25 ranking, snippets with line numbers, symlinks never followed, and memory_get's path
// refusal.
// Runs in: test

#include "memory-index.h"
#include "memory-test-dirs.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <vector>

namespace chitin {
namespace {

namespace fs = std::filesystem;
using Dirs = testing::MemoryDirs;

bool anyHitIn(const std::vector<MemoryHit>& hits, const std::string& path) {
  for (const auto& h : hits)
    if (h.path == path) return true;
  return false;
}

// The first column of the first row of `sql` over the index file, read by SQLite directly.
std::string sqlOne(const std::string& path, const char* sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) == SQLITE_OK);
  std::string out;
  if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr)
    out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return out;
}

// Writes `bytes` at `offset` of `path` without changing its size, then puts its mtime back, as
// a disk error would leave it: only the contents differ.
void damageInPlace(const std::string& path, off_t offset, const std::string& bytes) {
  struct stat before;
  REQUIRE(stat(path.c_str(), &before) == 0);
  int fd = open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(pwrite(fd, bytes.data(), bytes.size(), offset) == static_cast<ssize_t>(bytes.size()));
  close(fd);
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  REQUIRE(utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
  struct stat after;
  REQUIRE(stat(path.c_str(), &after) == 0);
  REQUIRE(after.st_size == before.st_size);
  REQUIRE(after.st_mtim.tv_nsec == before.st_mtim.tv_nsec);
}

// Notes enough that the index spans many pages; one of them mentions `word`.
void manyNotes(Dirs& d, const std::string& word) {
  for (int i = 0; i < 200; ++i)
    d.write("memory/n" + std::to_string(i) + ".md",
            "# Note " + std::to_string(i) + "\n\nMet person " + std::to_string(i) + ".\n" +
                (i == 117 ? "The " + word + " came up.\n" : "Nothing else.\n"));
}

void buildIndex(Dirs& d) {
  MemoryIndex index(d.index());
  index.update(d.rootFd);
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

TEST_CASE("memory index: a search with the pair the last walk recorded skips the walk") {
  // The contract the supervisor's watch relies on (supervisor/core/memory-watch.h): the same
  // epoch and generation mean nothing changed, so the files are not walked; a new generation,
  // another epoch or none walk as always.
  Dirs d;
  d.write("memory/a.md", "Bought oranges.\n");
  const WalkSync first{0x5eed, 7};
  {
    MemoryIndex index(d.index());
    MemoryStats stats = index.update(d.rootFd, first);  // nothing recorded yet: walks
    CHECK(stats.walked);
    CHECK(stats.added == 1);
  }
  {
    MemoryIndex index(d.index());  // each call is a new worker, and a new MemoryIndex
    MemoryStats same = index.update(d.rootFd, first);
    CHECK_FALSE(same.walked);
    CHECK(same.files == 1);
    CHECK(same.unchanged == 1);
    CHECK(index.search("oranges", 5).size() == 1);
  }
  // A change the watch did not report (only a test can make one) is not seen with the same
  // pair: proof that the walk was skipped...
  d.write("memory/a.md", "Bought pomegranates instead.\n");
  {
    MemoryIndex index(d.index());
    CHECK_FALSE(index.update(d.rootFd, first).walked);
    CHECK(index.search("pomegranates", 5).empty());
  }
  // ...and the next generation walks and finds it.
  {
    MemoryIndex index(d.index());
    MemoryStats next = index.update(d.rootFd, WalkSync{0x5eed, 8});
    CHECK(next.walked);
    CHECK(next.changed == 1);
    CHECK(index.search("pomegranates", 5).size() == 1);
    CHECK_FALSE(index.update(d.rootFd, WalkSync{0x5eed, 8}).walked);
  }
  // Another epoch (a restarted supervisor) walks; so does a call without a pair, which also
  // clears the record, so that the old pair does not match again afterwards.
  d.write("memory/b.md", "Called the plumber.\n");
  {
    MemoryIndex index(d.index());
    MemoryStats other = index.update(d.rootFd, WalkSync{0xbeef, 8});
    CHECK(other.walked);
    CHECK(other.added == 1);
    d.write("memory/c.md", "Fixed the bike.\n");
    CHECK(index.update(d.rootFd).walked);
    MemoryStats again = index.update(d.rootFd, WalkSync{0xbeef, 8});
    CHECK(again.walked);
    CHECK(again.files == 3);
  }
  // A record older than WALK_EVERY_SECONDS walks whatever the pair (what the watch cannot see:
  // a change through a shared mapping).
  REQUIRE(sqlOne(d.index(), "SELECT value FROM meta WHERE key = 'walked_at'") != "");
  {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(d.index().c_str(), &db) == SQLITE_OK);
    std::string sql = "UPDATE meta SET value = value - " +
                      std::to_string(MemoryIndex::WALK_EVERY_SECONDS) + " WHERE key = 'walked_at'";
    REQUIRE(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
    sqlite3_close(db);
    MemoryIndex index(d.index());
    CHECK(index.update(d.rootFd, WalkSync{0xbeef, 8}).walked);
    CHECK_FALSE(index.update(d.rootFd, WalkSync{0xbeef, 8}).walked);
  }
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
  SUBCASE("an index whose scan record is not this code's") {
    buildIndex(d);
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(d.index().c_str(), &db) == SQLITE_OK);
    REQUIRE(sqlite3_exec(db, "UPDATE scan SET records = x'0102'", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
    sqlite3_close(db);
  }
  SUBCASE("an index truncated after its first page: its schema reads well, the rest is gone") {
    manyNotes(d, "other");
    buildIndex(d);
    for (int i = 0; i < 200; ++i)
      fs::remove(d.workspace / ("memory/n" + std::to_string(i) + ".md"));
    fs::resize_file(d.index(), 4096 + 100);
  }
  MemoryIndex index(d.index());
  CHECK(index.rebuiltBecause().find("the index was not valid") == 0);
  index.update(d.rootFd);
  auto hits = index.search("anniversary", 5);
  REQUIRE(hits.size() == 1);
  CHECK(hits[0].path == "MEMORY.md");
}

TEST_CASE("memory index: the stamp spares a warm open the full check; without it, one full check") {
  Dirs d;
  manyNotes(d, "giraffe");
  buildIndex(d);
  {
    MemoryIndex index(d.index());
    CHECK(!index.fullCheckDone());  // written and stamped by this code
    CHECK(index.rebuiltBecause().empty());
  }
  fs::remove(d.index() + ".verified");
  {
    MemoryIndex index(d.index());
    CHECK(index.fullCheckDone());
    CHECK(index.rebuiltBecause().empty());  // checked, sound, kept
  }
  {
    MemoryIndex index(d.index());
    CHECK(!index.fullCheckDone());  // the full check stamped it
    // A commit stamps the file it leaves: the next open does not check it again.
    d.write("memory/new.md", "A new note.\n");
    CHECK(index.update(d.rootFd).added == 1);
  }
  {
    MemoryIndex index(d.index());
    CHECK(!index.fullCheckDone());
  }
  // A file that is not the stamped one (here only its mtime differs) is checked in full.
  struct timespec times[2] = {{0, UTIME_OMIT}, {1000000000, 0}};
  REQUIRE(utimensat(AT_FDCWD, d.index().c_str(), times, 0) == 0);
  MemoryIndex index(d.index());
  CHECK(index.fullCheckDone());
  CHECK(index.rebuiltBecause().empty());
  CHECK(index.search("giraffe", 5).size() == 1);
}

TEST_CASE("memory index: damage the stamp cannot see is found on use, and the call still answers") {
  Dirs d;
  manyNotes(d, "giraffe");
  buildIndex(d);
  int pageSize = std::stoi(sqlOne(d.index(), "PRAGMA page_size"));
  // The b-tree page type (offset 0 of a page) set to a value no page has: SQLITE_CORRUPT when
  // the page is read, not before.
  std::string table;
  SUBCASE("in the scan record: update() finds it") { table = "scan"; }
  SUBCASE("in the chunks' text: search() finds it, after update() did not") {
    table = "chunks_content";
  }
  std::string sql = "SELECT rootpage FROM sqlite_master WHERE name = '" + table + "'";
  int page = std::stoi(sqlOne(d.index(), sql.c_str()));
  REQUIRE(page > 1);
  damageInPlace(d.index(), static_cast<off_t>(page - 1) * pageSize, std::string(1, '\x42'));

  {
    MemoryIndex index(d.index());
    CHECK(!index.fullCheckDone());  // the stamp matched: not read at open
    CHECK(index.rebuiltBecause().empty());
    MemoryStats stats = index.update(d.rootFd);
    auto hits = index.search("giraffe", 5);
    REQUIRE(hits.size() == 1);
    CHECK(hits[0].path == "memory/n117.md");
    CHECK(index.counts().files == 200);
    if (table == "scan") {
      CHECK(stats.rebuiltBecause.find("the index was not valid (damaged: ") == 0);
      CHECK(stats.added == 200);
    } else {
      CHECK(stats.unchanged == 200);
      CHECK(index.rebuiltBecause().find("the index was not valid (damaged: ") == 0);
    }
  }
  // The rebuilt index is sound and stamped.
  fs::remove(d.index() + ".verified");
  MemoryIndex again(d.index());
  CHECK(again.fullCheckDone());
  CHECK(again.rebuiltBecause().empty());
}

TEST_CASE("memory index: a planted trigger or view is refused on every open, stamp or not") {
  Dirs d;
  d.write("MEMORY.md", "Anniversary: 14 February.\n");
  buildIndex(d);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(d.index().c_str(), &db) == SQLITE_OK);
  SUBCASE("trigger") {
    REQUIRE(sqlite3_exec(db,
                         "CREATE TRIGGER t AFTER INSERT ON files BEGIN "
                         "DELETE FROM meta; END;",
                         nullptr, nullptr, nullptr) == SQLITE_OK);
  }
  SUBCASE("view") {
    REQUIRE(sqlite3_exec(db, "CREATE VIEW v AS SELECT * FROM files", nullptr, nullptr, nullptr) ==
            SQLITE_OK);
  }
  sqlite3_close(db);
  MemoryIndex index(d.index());
  CHECK(index.rebuiltBecause().find("the schema is not this version's (unexpected: ") !=
        std::string::npos);
  index.update(d.rootFd);
  CHECK(index.search("anniversary", 5).size() == 1);
}

TEST_CASE("memory index: files and chunks counted in meta stay right through add, change, remove") {
  Dirs d;
  d.write("MEMORY.md", "one\n\ntwo\n\nthree\n");       // 3 chunks
  d.write("memory/a.md", "alpha\n");                   // 1
  d.write("memory/sub/b.md", "# B\nbeta\n\ngamma\n");  // 2
  auto truth = [&](MemoryIndex& index) {
    MemoryStats kept = index.counts();
    CHECK(std::to_string(kept.files) == sqlOne(d.index(), "SELECT count(*) FROM files"));
    CHECK(std::to_string(kept.chunks) == sqlOne(d.index(), "SELECT count(*) FROM chunks"));
    return std::make_pair(kept.files, kept.chunks);
  };
  MemoryIndex index(d.index());
  CHECK(index.update(d.rootFd).chunks == 6);
  CHECK(truth(index) == std::make_pair<uint64_t, uint64_t>(3, 6));
  d.write("memory/c.md", "delta\n\nepsilon\n");  // added: +1 file, +2 chunks
  index.update(d.rootFd);
  CHECK(truth(index) == std::make_pair<uint64_t, uint64_t>(4, 8));
  d.write("MEMORY.md", "one and two\n");  // changed: 3 chunks -> 1
  index.update(d.rootFd);
  CHECK(truth(index) == std::make_pair<uint64_t, uint64_t>(4, 6));
  fs::remove(d.workspace / "memory/sub/b.md");  // removed: -1 file, -2 chunks
  d.write("memory/a.md", "alpha\n");            // touched only: the same
  MemoryStats stats = index.update(d.rootFd);
  CHECK(stats.removed == 1);
  CHECK(truth(index) == std::make_pair<uint64_t, uint64_t>(3, 4));
  CHECK(stats.files == 3);
  CHECK(stats.chunks == 4);
  CHECK(index.status(d.rootFd).chunks == 4);
}

TEST_CASE("memory index: symlinked files and directories beneath memory/ are not followed") {
  Dirs d;
  d.write("MEMORY.md", "tea\n");
  d.write("outside/secret.md", "the zebra password\n");
  fs::create_symlink("../outside/secret.md", d.workspace / "memory/link.md");
  fs::create_symlink("../outside", d.workspace / "memory/linkdir");
  MemoryIndex index(d.index());
  MemoryStats stats = index.update(d.rootFd);
  CHECK(stats.files == 1);
  CHECK(stats.skipped == 1);  // the file symlink; the directory one is not entered
  CHECK(index.search("zebra", 5).empty());
  CHECK(index.status(d.rootFd).skipped == 1);
  // Control: the same note as a regular file is indexed.
  d.write("memory/real.md", "the zebra password\n");
  index.update(d.rootFd);
  CHECK(index.search("zebra", 5).size() == 1);
}

TEST_CASE("memory files: a file replaced between the walk and the read is not read") {
  Dirs d;
  d.write("memory/note.md", "original\n");
  d.write("outside.md", "not memory\n");
  std::vector<std::string> outcomes;
  auto replaceThenOpen = [&](const std::function<void()>& replace) {
    forEachMemoryFile(d.rootFd, [&](const FoundFile& found) {
      if (found.path != "memory/note.md") return;
      replace();  // after the walk's stat, before the open
      int fd = openFoundFile(found);
      outcomes.push_back(fd >= 0 ? "opened" : "refused");
      if (fd >= 0) close(fd);
    });
  };
  replaceThenOpen([] {});  // control: the file the walk saw
  replaceThenOpen([&] {
    fs::create_symlink("../outside.md", d.workspace / "memory/tmp-link");
    fs::rename(d.workspace / "memory/tmp-link", d.workspace / "memory/note.md");
  });
  fs::remove(d.workspace / "memory/note.md");
  d.write("memory/note.md", "original\n");
  replaceThenOpen([&] {
    d.write("memory/tmp.md", "another file\n");
    fs::rename(d.workspace / "memory/tmp.md", d.workspace / "memory/note.md");
  });
  CHECK(outcomes == std::vector<std::string>{"opened", "refused", "refused"});
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
