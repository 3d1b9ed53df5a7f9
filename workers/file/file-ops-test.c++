// SPDX-License-Identifier: Apache-2.0
// Tests for read, write and edit against a temporary workspace: every outcome, symlink and
// `..` escapes, and that a failed change leaves the file as it was.
// Runs in: test

#include "file-ops.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "beneath.h"
#include "worker-test-harness.h"
#include "test-text.h"

namespace chitin {
namespace {

using chitin::testing::has;
using test::listDir;
using test::readHostFile;
using test::TempDir;
using test::writeHostFile;

struct Workspace {
  TempDir dir;
  TempDir outside;  // a sibling directory a symlink may try to reach
  kj::AutoCloseFd root = openWorkspaceRoot(dir.path().c_str());
  Workspace() { writeHostFile(outside / "secret", "outside secret\n"); }
};

mode_t modeOf(const std::string& path) {
  struct stat st;
  KJ_ASSERT(lstat(path.c_str(), &st) == 0, path);
  return st.st_mode & 07777;
}

ino_t inodeOf(const std::string& path) {
  struct stat st;
  KJ_ASSERT(lstat(path.c_str(), &st) == 0, path);
  return st.st_ino;
}

// ---- read ----

TEST_CASE("read: returns a file's text, by any accepted path form") {
  Workspace ws;
  mkdir((ws.dir / "notes").c_str(), 0755);
  writeHostFile(ws.dir / "notes/todo.md", "buy milk\n");
  for (auto path : {"notes/todo.md", "./notes/todo.md", "/workspace/notes/todo.md"}) {
    auto r = readWorkspaceFile(ws.root, path);
    CHECK_FALSE(r.failed);
    CHECK(std::string(r.text.cStr()) == "buy milk\n");
    CHECK_FALSE(r.truncated);
  }
  writeHostFile(ws.dir / "empty", "");
  auto empty = readWorkspaceFile(ws.root, "empty");
  CHECK_FALSE(empty.failed);
  CHECK(empty.text.size() == 0);
}

TEST_CASE("read: a missing file fails with \"file not found: PATH\"") {
  Workspace ws;
  auto r = readWorkspaceFile(ws.root, "nope.txt");
  CHECK(r.failed);
  CHECK(std::string(r.text.cStr()) == "file not found: \"nope.txt\"");
}

TEST_CASE("read: directories, FIFOs and binary files fail clearly") {
  Workspace ws;
  mkdir((ws.dir / "sub").c_str(), 0755);
  CHECK(has(readWorkspaceFile(ws.root, "sub").text.cStr(), "is a directory: \"sub\""));
  // A FIFO must neither hang open() nor be read.
  REQUIRE(mkfifo((ws.dir / "fifo").c_str(), 0644) == 0);
  CHECK(has(readWorkspaceFile(ws.root, "fifo").text.cStr(), "not a regular file"));
  writeHostFile(ws.dir / "image.bin", std::string("PNG\0\x01\x02", 6));
  auto r = readWorkspaceFile(ws.root, "image.bin");
  CHECK(r.failed);
  CHECK(has(r.text.cStr(), "binary file, 6 bytes: \"image.bin\""));
  writeHostFile(ws.dir / "latin1.txt", "caf\xe9\n");
  CHECK(has(readWorkspaceFile(ws.root, "latin1.txt").text.cStr(), "binary file, 5 bytes"));
}

TEST_CASE("read: overlong forms, surrogates, stray bytes are binary; real characters are text") {
  Workspace ws;
  for (auto bad :
       {"\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "ab\xe2\x82"}) {
    writeHostFile(ws.dir / "bad", bad);
    CHECK(has(readWorkspaceFile(ws.root, "bad").text.cStr(), "binary file"));
  }
  std::string good = "\x7f \xc2\x80 \xe2\x82\xac \xef\xbf\xbf \xf0\x9f\x90\x9a \xf4\x8f\xbf\xbf";
  writeHostFile(ws.dir / "good", good);
  auto r = readWorkspaceFile(ws.root, "good");
  CHECK_FALSE(r.failed);
  CHECK(std::string(r.text.cStr()) == good);
}

TEST_CASE("read: a long file is cut at the cap on a character boundary, with a note") {
  Workspace ws;
  // "aaaaaaaaé..." : the cap of 10 falls inside the two-byte é at offset 9.
  writeHostFile(ws.dir / "long.txt", "aaaaaaaaa\xc3\xa9zzzz");
  auto r = readWorkspaceFile(ws.root, "long.txt", 10);
  CHECK_FALSE(r.failed);
  CHECK(r.truncated);
  CHECK(std::string(r.text.cStr()) == "aaaaaaaaa\n\n[truncated: showing the first 9 of 15 bytes]");
}

TEST_CASE("read: paths outside the workspace are refused before any open") {
  Workspace ws;
  CHECK(has(readWorkspaceFile(ws.root, "../x").text.cStr(), "path escapes the workspace"));
  CHECK(has(readWorkspaceFile(ws.root, "a/../../x").text.cStr(), "escapes the workspace"));
  CHECK(has(readWorkspaceFile(ws.root, "/etc/passwd").text.cStr(),
            "absolute path outside the workspace"));
  CHECK(has(readWorkspaceFile(ws.root, "").text.cStr(), "path is empty"));
}

TEST_CASE("read: a symlink inside the workspace pointing outside is an escape") {
  Workspace ws;
  REQUIRE(symlink((ws.outside / "secret").c_str(), (ws.dir / "abs-link").c_str()) == 0);
  std::string relTarget = "../" + ws.outside.path().substr(5) + "/secret";  // from /tmp/x
  REQUIRE(symlink(relTarget.c_str(), (ws.dir / "rel-link").c_str()) == 0);
  REQUIRE(symlink(ws.outside.path().c_str(), (ws.dir / "dir-link").c_str()) == 0);
  for (auto path : {"abs-link", "rel-link", "dir-link/secret"}) {
    auto r = readWorkspaceFile(ws.root, path);
    CHECK(r.failed);
    CHECK(has(r.text.cStr(), "path escapes the workspace"));
    CHECK_FALSE(has(r.text.cStr(), "outside secret"));
  }
}

TEST_CASE("read: a symlink that stays inside the workspace is followed") {
  Workspace ws;
  writeHostFile(ws.dir / "real.txt", "real\n");
  REQUIRE(symlink("real.txt", (ws.dir / "alias.txt").c_str()) == 0);
  auto r = readWorkspaceFile(ws.root, "alias.txt");
  CHECK_FALSE(r.failed);
  CHECK(std::string(r.text.cStr()) == "real\n");
}

// ---- write ----

TEST_CASE("write: creates the file and its parent directories, reports bytes written") {
  Workspace ws;
  auto r = writeWorkspaceFile(ws.root, "a/b/c.txt", kj::StringPtr("hello\n").asArray());
  CHECK_FALSE(r.failed);
  CHECK(std::string(r.text.cStr()) == "wrote 6 bytes to \"a/b/c.txt\"");
  CHECK(readHostFile(ws.dir / "a/b/c.txt") == "hello\n");
  CHECK(modeOf(ws.dir / "a/b/c.txt") == NEW_FILE_MODE);
  CHECK(listDir(ws.dir / "a/b") == std::vector<std::string>{"c.txt"});  // no temp file left
}

TEST_CASE("write: replaces an existing file atomically and keeps its permission bits") {
  Workspace ws;
  writeHostFile(ws.dir / "run.sh", "old\n", 0750);
  ino_t before = inodeOf(ws.dir / "run.sh");
  auto r = writeWorkspaceFile(ws.root, "/workspace/run.sh", kj::StringPtr("new\n").asArray());
  CHECK_FALSE(r.failed);
  CHECK(readHostFile(ws.dir / "run.sh") == "new\n");
  CHECK(modeOf(ws.dir / "run.sh") == 0750);
  CHECK(inodeOf(ws.dir / "run.sh") != before);  // a new file renamed into place
}

TEST_CASE("write: a symlinked parent directory is refused, inside or pointing outside") {
  Workspace ws;
  mkdir((ws.dir / "real").c_str(), 0755);
  REQUIRE(symlink("real", (ws.dir / "linked").c_str()) == 0);
  auto inside = writeWorkspaceFile(ws.root, "linked/x.txt", kj::StringPtr("x").asArray());
  CHECK(inside.failed);
  CHECK(has(inside.text.cStr(), "path goes through a symlink: \"linked/x.txt\""));
  CHECK(listDir(ws.dir / "real").empty());

  REQUIRE(symlink(ws.outside.path().c_str(), (ws.dir / "out").c_str()) == 0);
  auto out = writeWorkspaceFile(ws.root, "out/new/x.txt", kj::StringPtr("x").asArray());
  CHECK(out.failed);
  CHECK(has(out.text.cStr(), "path escapes the workspace"));
  CHECK(listDir(ws.outside.path()) == std::vector<std::string>{"secret"});
}

TEST_CASE("write: a symlink as the file itself is neither followed nor replaced") {
  Workspace ws;
  REQUIRE(symlink((ws.outside / "secret").c_str(), (ws.dir / "link").c_str()) == 0);
  auto r = writeWorkspaceFile(ws.root, "link", kj::StringPtr("overwritten").asArray());
  CHECK(r.failed);
  CHECK(has(r.text.cStr(), "path escapes the workspace"));
  CHECK(readHostFile(ws.outside / "secret") == "outside secret\n");
  struct stat st;
  CHECK((lstat((ws.dir / "link").c_str(), &st) == 0 && S_ISLNK(st.st_mode)));
}

TEST_CASE("write: `..` tricks, the root, files as parents and directories as targets fail") {
  Workspace ws;
  auto content = kj::StringPtr("x").asArray();
  CHECK(has(writeWorkspaceFile(ws.root, "../evil", content).text.cStr(), "escapes"));
  CHECK(has(writeWorkspaceFile(ws.root, "a/../../evil", content).text.cStr(), "escapes"));
  CHECK(has(writeWorkspaceFile(ws.root, "/workspace/../evil", content).text.cStr(), "escapes"));
  CHECK(has(writeWorkspaceFile(ws.root, ".", content).text.cStr(), "is a directory"));
  writeHostFile(ws.dir / "file", "f");
  CHECK(has(writeWorkspaceFile(ws.root, "file/x", content).text.cStr(),
            "not a directory: a parent of \"file/x\" is a file"));
  mkdir((ws.dir / "dir").c_str(), 0755);
  CHECK(has(writeWorkspaceFile(ws.root, "dir", content).text.cStr(), "is a directory"));
  CHECK(listDir(ws.outside.path()) == std::vector<std::string>{"secret"});
}

TEST_CASE("write: a write that fails midway leaves the old file and no temporary file") {
  Workspace ws;
  writeHostFile(ws.dir / "keep.txt", "original\n");
  // RLIMIT_FSIZE makes the write fail with EFBIG (SIGXFSZ ignored, as the worker does).
  struct rlimit saved;
  getrlimit(RLIMIT_FSIZE, &saved);
  auto oldHandler = signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = {100, saved.rlim_max};
  setrlimit(RLIMIT_FSIZE, &small);
  std::string big(500, 'x');
  auto r =
      writeWorkspaceFile(ws.root, "keep.txt", kj::ArrayPtr<const char>(big.data(), big.size()));
  setrlimit(RLIMIT_FSIZE, &saved);
  signal(SIGXFSZ, oldHandler);
  CHECK(r.failed);
  CHECK(has(r.text.cStr(), "file too large"));
  CHECK(readHostFile(ws.dir / "keep.txt") == "original\n");
  CHECK(listDir(ws.dir.path()) == std::vector<std::string>{"keep.txt"});
}

// ---- edit ----

TEST_CASE("edit: replaces the one occurrence and keeps the permission bits") {
  Workspace ws;
  writeHostFile(ws.dir / "conf.ini", "name = old\nport = 1\n", 0640);
  auto r = editWorkspaceFile(ws.root, "conf.ini", "name = old", "name = new");
  CHECK_FALSE(r.failed);
  CHECK(has(r.text.cStr(), "replaced 1 occurrence of oldText in \"conf.ini\""));
  CHECK(readHostFile(ws.dir / "conf.ini") == "name = new\nport = 1\n");
  CHECK(modeOf(ws.dir / "conf.ini") == 0640);
  CHECK(listDir(ws.dir.path()) == std::vector<std::string>{"conf.ini"});
}

TEST_CASE("edit: zero or several occurrences fail and leave the file untouched") {
  Workspace ws;
  writeHostFile(ws.dir / "f.txt", "a b a\naaa\n");
  ino_t before = inodeOf(ws.dir / "f.txt");

  auto none = editWorkspaceFile(ws.root, "f.txt", "zzz", "y");
  CHECK(none.failed);
  CHECK(std::string(none.text.cStr()) == "oldText not found in \"f.txt\"");

  auto twice = editWorkspaceFile(ws.root, "f.txt", "a\n", "y");
  CHECK(twice.failed);
  CHECK(std::string(twice.text.cStr()) ==
        "oldText occurs 2 times in \"f.txt\"; include more context");
  // Overlapping matches count: "aa" in "aaa" is ambiguous.
  auto overlapping = editWorkspaceFile(ws.root, "f.txt", "aa", "y");
  CHECK(has(overlapping.text.cStr(), "occurs 2 times"));

  CHECK(readHostFile(ws.dir / "f.txt") == "a b a\naaa\n");
  CHECK(inodeOf(ws.dir / "f.txt") == before);
  CHECK(listDir(ws.dir.path()) == std::vector<std::string>{"f.txt"});
}

TEST_CASE("edit: missing files, empty oldText, binary files and symlinks fail") {
  Workspace ws;
  CHECK(std::string(editWorkspaceFile(ws.root, "nope", "a", "b").text.cStr()) ==
        "file not found: \"nope\"");
  CHECK(std::string(editWorkspaceFile(ws.root, "dir/nope", "a", "b").text.cStr()) ==
        "file not found: \"dir/nope\"");
  writeHostFile(ws.dir / "t.txt", "text\n");
  CHECK(has(editWorkspaceFile(ws.root, "t.txt", "", "b").text.cStr(), "oldText is empty"));
  writeHostFile(ws.dir / "b.bin", std::string("a\0b", 3));
  CHECK(has(editWorkspaceFile(ws.root, "b.bin", "a", "b").text.cStr(), "binary file, 3 bytes"));
  REQUIRE(symlink("t.txt", (ws.dir / "alias").c_str()) == 0);
  CHECK(has(editWorkspaceFile(ws.root, "alias", "text", "b").text.cStr(),
            "path goes through a symlink"));
  REQUIRE(symlink((ws.outside / "secret").c_str(), (ws.dir / "out").c_str()) == 0);
  CHECK(has(editWorkspaceFile(ws.root, "out", "outside", "pwned").text.cStr(),
            "path escapes the workspace"));
  CHECK(has(editWorkspaceFile(ws.root, "../x", "a", "b").text.cStr(), "escapes"));
  CHECK(readHostFile(ws.outside / "secret") == "outside secret\n");
  CHECK(readHostFile(ws.dir / "t.txt") == "text\n");
}

}  // namespace
}  // namespace chitin
