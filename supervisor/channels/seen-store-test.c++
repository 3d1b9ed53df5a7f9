// SPDX-License-Identifier: Apache-2.0
// Tests for the store of delivered channel message ids.
// Runs in: test

#include "seen-store.h"

#include <dirent.h>
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

namespace chitin::channels {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/chitin-seen-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { [[maybe_unused]] int rc = std::system(("rm -rf '" + path + "'").c_str()); }
  std::string read(const std::string& name) const {
    std::ifstream in(path + "/" + name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

size_t lines(const std::string& text) {
  size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

TEST_CASE("seen store: an id is known once recorded, and after a restart") {
  TempDir dir;
  std::string path = dir.path + "/telegram-default";
  {
    SeenStore store(path);
    CHECK_FALSE(store.contains("42", "1001"));
    store.record("42", "1001");
    store.record("-100", "1001");  // the same message id in another chat is another message
    CHECK(store.contains("42", "1001"));
    CHECK(store.contains("-100", "1001"));
    CHECK_FALSE(store.contains("42", "1002"));
  }
  SeenStore reopened(path);
  CHECK(reopened.contains("42", "1001"));
  CHECK(reopened.contains("-100", "1001"));
  CHECK(reopened.size() == 2);
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

size_t openFds() {
  size_t n = 0;
  DIR* dir = opendir("/proc/self/fd");
  while (readdir(dir) != nullptr) ++n;
  closedir(dir);
  return n;
}

TEST_CASE("seen store: synced off the loop thread, through a compaction, leaving no descriptor") {
  TempDir dir;
  std::string path = dir.path + "/telegram-default";
  uv_loop_t loop;
  REQUIRE(uv_loop_init(&loop) == 0);
  size_t fdsBefore = openFds();
  {
    SeenStore store(path, 2);
    std::vector<int> results;
    store.record("42", "1");
    store.syncAsync(&loop, [&](int error) { results.push_back(error); });
    // The fourth line compacts: the file is replaced while the first sync may still run.
    for (int i = 2; i <= 4; ++i) store.record("42", std::to_string(i));
    store.syncAsync(&loop, [&](int error) { results.push_back(error); });
    CHECK(results.empty());  // nothing waited for on this thread
    REQUIRE(uv_run(&loop, UV_RUN_DEFAULT) == 0);
    CHECK(results == std::vector<int>{0, 0});
    store.record("42", "5");  // the store's own descriptor is still the one to append to
    store.sync();
  }
  CHECK(openFds() == fdsBefore);
  SeenStore reopened(path, 2);
  CHECK(reopened.contains("42", "4"));
  CHECK(reopened.contains("42", "5"));
  CHECK_FALSE(reopened.contains("42", "1"));  // beyond the capacity: compacted away
  REQUIRE(uv_loop_close(&loop) == 0);
}

TEST_CASE("seen store: bounded: the newest ids are kept, the file is compacted") {
  TempDir dir;
  std::string path = dir.path + "/s";
  {
    SeenStore store(path, 10);
    for (int i = 0; i < 25; ++i) store.record("c", std::to_string(i));
    CHECK(store.size() == 10);
    CHECK_FALSE(store.contains("c", "14"));
    CHECK(store.contains("c", "15"));
    CHECK(store.contains("c", "24"));
    // Compacted at 20 lines to the newest 10, then 5 more appended.
    CHECK(lines(dir.read("s")) == 15);
  }
  SeenStore reopened(path, 10);
  CHECK(reopened.size() == 10);
  CHECK(reopened.contains("c", "24"));
  CHECK_FALSE(reopened.contains("c", "14"));
}

TEST_CASE("seen store: a torn last line (a crash mid-append) is cut off; the id comes again") {
  TempDir dir;
  std::string path = dir.path + "/s";
  std::ofstream(path) << "42 1\n42 2\n42 3";
  {
    SeenStore store(path);
    CHECK(store.contains("42", "1"));
    CHECK(store.contains("42", "2"));
    CHECK_FALSE(store.contains("42", "3"));  // never acknowledged to the worker
    store.record("42", "3");
  }
  CHECK(dir.read("s") == "42 1\n42 2\n42 3\n");
  SeenStore reopened(path);
  CHECK(reopened.contains("42", "3"));
}

TEST_CASE("seen store: malformed lines are skipped; malformed ids are refused") {
  TempDir dir;
  std::string path = dir.path + "/s";
  std::ofstream(path) << "noid\n42 1\n\n a b c\n";
  SeenStore store(path);
  CHECK(store.size() == 1);
  CHECK(store.contains("42", "1"));
  CHECK_THROWS_AS(store.record("4 2", "1"), std::runtime_error);
  CHECK_THROWS_AS(store.record("42", "1\n2"), std::runtime_error);
}

TEST_CASE("seen store: a symlink in its place is refused") {
  TempDir dir;
  std::ofstream(dir.path + "/target") << "";
  REQUIRE(symlink((dir.path + "/target").c_str(), (dir.path + "/s").c_str()) == 0);
  CHECK_THROWS_WITH_AS(SeenStore(dir.path + "/s"), doctest::Contains("cannot open"),
                       std::runtime_error);
}

}  // namespace
}  // namespace chitin::channels
