// SPDX-License-Identifier: Apache-2.0
// Tests for workspace snapshots and rollback.
// Runs in: test

#include "snapshots.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "audit-test-util.h"

namespace chitin::audit {
namespace {

namespace fs = std::filesystem;
using test::readFile;
using test::TempDir;
using test::writeFile;

// Well-known git blob ids (`git hash-object`), independent of the code under test.
constexpr char EMPTY_BLOB[] = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391";
constexpr char HELLO_BLOB[] = "ce013625030ba8dba906f756967f9e9ca394464a";  // "hello\n"

using Fixture = test::SnapshotFixture;

mode_t modeOf(const std::string& path) {
  struct stat st;
  REQUIRE(lstat(path.c_str(), &st) == 0);
  return st.st_mode;
}

using test::exists;

const std::string BINARY("\x00\x01\xff\n\x00zz\r\n", 9);

TEST_CASE("snapshots: made on the first start, opened when first used, and a broken one says so") {
  Fixture f;
  writeFile(f.at("a.txt"), "hello\n");
  {
    Snapshots first(f.git, f.ws);  // the first start makes the repository at once
    CHECK(exists(f.git + "/HEAD"));
  }
  std::string id;
  {
    Snapshots again(f.git, f.ws);  // an existing one costs nothing until used
    id = again.take("first").id;
    CHECK(id.size() == 40);
  }
  {
    Snapshots warmed(f.git, f.ws);
    warmed.openInBackground();  // opened on its thread; a snapshot after it finds it open
    CHECK(warmed.take("second").id == id);  // nothing changed: the same commit
  }
  // A HEAD that is not a repository's: constructing still succeeds (it is not opened yet), and
  // each use then fails with the reason instead of acting on a store it cannot write.
  fs::remove_all(f.git + "/objects");
  fs::remove_all(f.git + "/refs");
  writeFile(f.git + "/HEAD", "not a ref\n");
  Snapshots broken(f.git, f.ws);
  broken.openInBackground();  // logged, not thrown
  try {
    broken.take("third");
    FAIL("a broken repository took a snapshot");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("open snapshot repository " + f.git) != std::string::npos);
  }
  CHECK_THROWS_AS(broken.compare(id), std::runtime_error);
}

TEST_CASE("snapshots: changesSince lists added, removed and modified files with their blob ids") {
  Fixture f;
  writeFile(f.at("keep.txt"), "same");
  writeFile(f.at("edit.txt"), "hello\n");
  fs::create_directories(f.at("dir/sub"));
  writeFile(f.at("dir/sub/gone.txt"), "");
  Snapshots snaps(f.git, f.ws);
  std::string id = snaps.take("before write").id;
  CHECK(id.size() == 40);
  CHECK(snaps.compare(id).files.empty());

  writeFile(f.at("edit.txt"), "changed");
  fs::remove(f.at("dir/sub/gone.txt"));
  writeFile(f.at("new.txt"), "hello\n");
  auto changes = snaps.compare(id).files;
  REQUIRE(changes.size() == 3);
  CHECK(changes[0].path == "dir/sub/gone.txt");
  CHECK(changes[0].before == EMPTY_BLOB);
  CHECK(changes[0].after == "");
  CHECK(changes[1].path == "edit.txt");
  CHECK(changes[1].before == HELLO_BLOB);
  CHECK(changes[1].after != HELLO_BLOB);
  CHECK(changes[1].after.size() == 40);
  CHECK(changes[2].path == "new.txt");
  CHECK(changes[2].before == "");
  CHECK(changes[2].after == HELLO_BLOB);

  Record rec;
  addFiles(rec, changes);
  REQUIRE(rec.files_size() == 3);
  CHECK(rec.files(2).after() == HELLO_BLOB);
}

TEST_CASE("snapshots: a name that is not UTF-8 is kept exactly and shown escaped in records") {
  Fixture f;
  const std::string odd = "caf\xe9-\xff.txt";  // Latin-1, as a tool can make with printf
  writeFile(f.at(odd), "v1");
  Snapshots snaps(f.git, f.ws);
  std::string id = snaps.take("x").id;
  writeFile(f.at(odd), "v2");
  auto changes = snaps.compare(id).files;
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].path == odd);
  Record rec;
  addFiles(rec, changes);
  CHECK(rec.files(0).path() == "caf\\xE9-\\xFF.txt");
  snaps.restore(id, "");
  CHECK(readFile(f.at(odd)) == "v1");
  CHECK(printablePath("plain/\xc3\xa9t\xc3\xa9") == "plain/\xc3\xa9t\xc3\xa9");
}

TEST_CASE("snapshots: the repository lives outside the workspace, which gets no .git") {
  Fixture f;
  Snapshots snaps(f.git, f.ws);
  writeFile(f.at("a"), "1");
  std::string first = snaps.take("one").id;
  CHECK_FALSE(exists(f.at(".git")));
  CHECK(exists(f.git + "/HEAD"));
  CHECK((modeOf(f.git) & 0777) == 0700);
  CHECK(snaps.take("unchanged").id == first);  // nothing new: the same commit
  writeFile(f.at("a"), "2");
  std::string second = snaps.take("two").id;
  CHECK(second != first);
  // Reopening the repository finds the history.
  Snapshots again(f.git, f.ws);
  CHECK(again.compare(first).files.size() == 1);
  CHECK(again.compare("HEAD").files.empty());
  CHECK_THROWS_AS(again.compare("0123456789012345678901234567890123456789").files,
                  std::runtime_error);
  CHECK_THROWS_AS(again.restore("no-such-ref", ""), std::runtime_error);
}

TEST_CASE("snapshots: restore brings back exact bytes, modes, deleted and added files") {
  Fixture f;
  writeFile(f.at("bin.dat"), BINARY);
  writeFile(f.at("run.sh"), "#!/bin/sh\necho hi\n");
  chmod(f.at("run.sh").c_str(), 0755);
  writeFile(f.at("plain.txt"), "plain");
  fs::create_directories(f.at("deep/er"));
  writeFile(f.at("deep/er/x.md"), "x");
  fs::create_symlink("plain.txt", f.at("link"));
  Snapshots snaps(f.git, f.ws);
  std::string id = snaps.take("before").id;

  writeFile(f.at("bin.dat"), "clobbered");
  chmod(f.at("run.sh").c_str(), 0644);
  chmod(f.at("plain.txt").c_str(), 0755);
  fs::remove_all(f.at("deep"));
  fs::remove(f.at("link"));
  fs::create_symlink("/etc/passwd", f.at("link"));
  fs::create_directories(f.at("added/dir"));
  writeFile(f.at("added/dir/new.txt"), "new");
  writeFile(f.at("added.txt"), "new");
  fs::create_directories(f.at("empty-made-by-tool"));

  auto mode = snaps.compare(id).files;
  auto restored = snaps.restore(id, "").files;
  CHECK(restored.size() == mode.size());
  CHECK(restored.size() == 7);
  CHECK(snaps.compare(id).files.empty());
  CHECK(readFile(f.at("bin.dat")) == BINARY);
  CHECK((modeOf(f.at("run.sh")) & 0777) == 0755);
  CHECK((modeOf(f.at("plain.txt")) & 0777) == 0644);
  CHECK(readFile(f.at("deep/er/x.md")) == "x");
  CHECK(fs::read_symlink(f.at("link")) == "plain.txt");
  CHECK_FALSE(exists(f.at("added.txt")));
  CHECK_FALSE(exists(f.at("added")));           // emptied by restore: removed
  CHECK(exists(f.at("empty-made-by-tool")));    // empty dirs are not tracked: left alone
  for (auto& e : fs::directory_iterator(f.ws))  // no temporary files left behind
    CHECK(e.path().filename().string().find(".chitin-restore") == std::string::npos);
}

TEST_CASE("snapshots: a mode-only change is listed with equal blob ids") {
  Fixture f;
  writeFile(f.at("s"), "hello\n");
  Snapshots snaps(f.git, f.ws);
  std::string id = snaps.take("x").id;
  chmod(f.at("s").c_str(), 0700);
  auto changes = snaps.compare(id).files;
  REQUIRE(changes.size() == 1);
  CHECK(changes[0].before == HELLO_BLOB);
  CHECK(changes[0].after == HELLO_BLOB);
}

TEST_CASE("snapshots: restore type swaps (file <-> directory)") {
  Fixture f;
  writeFile(f.at("a"), "file a");
  fs::create_directories(f.at("b"));
  writeFile(f.at("b/inner"), "inner");
  Snapshots snaps(f.git, f.ws);
  std::string id = snaps.take("x").id;
  fs::remove(f.at("a"));
  fs::create_directories(f.at("a/nested"));  // an empty subdir: not tracked, still in the way
  mkfifo(f.at("a/fifo").c_str(), 0600);      // a special file: not tracked, still in the way
  fs::remove_all(f.at("b"));
  writeFile(f.at("b"), "now a file");
  snaps.restore(id, "");
  CHECK(readFile(f.at("a")) == "file a");
  CHECK(readFile(f.at("b/inner")) == "inner");
}

TEST_CASE("snapshots: restore never follows a symlink planted in the workspace") {
  Fixture f;
  std::string outside = f.tmp.path + "/outside";
  fs::create_directories(outside);
  writeFile(outside + "/secret", "outside content");
  fs::create_directories(f.at("dir"));
  writeFile(f.at("dir/a.txt"), "inside");
  writeFile(f.at("file.txt"), "inside file");
  Snapshots snaps(f.git, f.ws);
  std::string id = snaps.take("x").id;

  // A tool replaces a directory by a link to a directory outside, and a file by a link to a
  // file outside.
  fs::remove_all(f.at("dir"));
  fs::create_directory_symlink(outside, f.at("dir"));
  fs::remove(f.at("file.txt"));
  fs::create_symlink(outside + "/secret", f.at("file.txt"));
  snaps.restore(id, "");

  CHECK_FALSE(exists(outside + "/a.txt"));
  CHECK(readFile(outside + "/secret") == "outside content");
  CHECK(S_ISDIR(modeOf(f.at("dir"))));
  CHECK(readFile(f.at("dir/a.txt")) == "inside");
  CHECK(S_ISREG(modeOf(f.at("file.txt"))));
  CHECK(readFile(f.at("file.txt")) == "inside file");
}

TEST_CASE("snapshots: a symlink is recorded as a link, never read through") {
  Fixture f;
  std::string outside = f.tmp.path + "/outside";
  fs::create_directories(outside + "/d");
  writeFile(outside + "/secret", "v1");
  writeFile(outside + "/d/f", "v1");
  fs::create_symlink(outside + "/secret", f.at("to-file"));
  fs::create_directory_symlink(outside + "/d", f.at("to-dir"));
  Snapshots snaps(f.git, f.ws);
  std::string id = snaps.take("x").id;
  writeFile(outside + "/secret", "v2");
  writeFile(outside + "/d/g", "new");
  CHECK(snaps.compare(id).files.empty());  // only the links' targets count, and they are the same
  fs::remove(f.at("to-file"));
  fs::create_symlink("elsewhere", f.at("to-file"));
  CHECK(snaps.compare(id).files.size() == 1);
}

TEST_CASE("snapshots: timing for a 200-file workspace") {
  Fixture f;
  for (int d = 0; d < 10; ++d) {
    fs::create_directories(f.at("dir" + std::to_string(d)));
    for (int i = 0; i < 20; ++i)
      writeFile(f.at("dir" + std::to_string(d) + "/file" + std::to_string(i) + ".md"),
                std::string(2000, static_cast<char>('a' + (d + i) % 26)) + std::to_string(i * d));
  }
  Snapshots snaps(f.git, f.ws);
  // Files written within the last 100 ms are re-read at every snapshot (see "racy git" in
  // snapshots.c++); a real workspace's files are mostly older than that.
  usleep(150'000);
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  auto t0 = Clock::now();
  std::string first = snaps.take("first").id;
  auto t1 = Clock::now();
  std::string same = snaps.take("unchanged").id;
  auto t2 = Clock::now();
  writeFile(f.at("dir3/file7.md"), "edited");
  auto t2b = Clock::now();
  std::string edited = snaps.take("one file edited").id;
  auto t3 = Clock::now();
  auto changes = snaps.compare(first).files;
  auto t4 = Clock::now();
  snaps.restore(first, "");
  auto t5 = Clock::now();
  CHECK(same == first);
  CHECK(edited != first);
  CHECK(changes.size() == 1);
  MESSAGE("200 files x 2 KB: first snapshot ", ms(t1 - t0), " ms; unchanged ", ms(t2 - t1),
          " ms; one file edited ", ms(t3 - t2b), " ms; changesSince ", ms(t4 - t3),
          " ms; restore one file ", ms(t5 - t4), " ms");
  CHECK(ms(t3 - t2b) < 500);  // generous: the machine is shared; the MESSAGE has the real figure
}

}  // namespace
}  // namespace chitin::audit
