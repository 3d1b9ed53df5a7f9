// SPDX-License-Identifier: Apache-2.0
// libgit2 is loaded when a snapshot first needs it, not linked (libgit2-loader.h). A binary of
// its own: the library loads once per process, and these cases need a process where nothing
// has loaded it yet. They run in the order written.
// Runs in: test

#include <doctest/doctest.h>
#include <git2.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "audit-test-util.h"
#include "libgit2-loader.h"
#include "snapshots.h"

namespace chitin::audit {
namespace {

bool mapped(const std::string& soname) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find("/" + soname) != std::string::npos) return true;
  return false;
}

TEST_CASE("libgit2 loader: nothing of libgit2 is mapped until it is loaded") {
  CHECK_FALSE(libgit2Loaded());
  CHECK_FALSE(mapped(libgit2Soname()));
  CHECK(std::string(libgit2Soname()).rfind("libgit2.so.", 0) == 0);
}

TEST_CASE("libgit2 loader: before it is loaded, a call says so and frees do nothing") {
  git_repository* repo = nullptr;
  CHECK_THROWS_WITH_AS(git_repository_open_bare(&repo, "/nonexistent"),
                       doctest::Contains("git_repository_open_bare was called but libgit2"),
                       std::logic_error);
  CHECK_THROWS_AS(git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_SYSTEM, ""),
                  std::logic_error);
  CHECK(repo == nullptr);
  git_repository_free(nullptr);  // no library, no crash
  CHECK(git_error_last() == nullptr);
}

TEST_CASE("libgit2 loader: a library that is missing, or is not libgit2, is named and not used") {
  std::string missing = loadLibgit2From("libchitin-no-such-library.so.0");
  CHECK(missing.find("cannot load libchitin-no-such-library.so.0") != std::string::npos);
  // A real library without libgit2's functions: the first one looked up is named.
  std::string wrong = loadLibgit2From("libz.so.1");
  CHECK(wrong.find("libz.so.1 has no git_libgit2_init") != std::string::npos);
  CHECK_FALSE(libgit2Loaded());
  git_repository* repo = nullptr;
  CHECK_THROWS_AS(git_repository_open_bare(&repo, "/nonexistent"), std::logic_error);
}

TEST_CASE("libgit2 loader: the first snapshot loads it, and snapshots work through it") {
  test::TempDir dir;
  std::filesystem::create_directory(dir.path + "/work");
  { std::ofstream(dir.path + "/work/a.txt") << "one\n"; }
  Snapshots snapshots(dir.path + "/state/main.git", dir.path + "/work");  // made, so loaded
  CHECK(libgit2Loaded());
  CHECK(mapped(libgit2Soname()));
  Snapshot before = snapshots.take("before");
  { std::ofstream(dir.path + "/work/a.txt") << "two\n"; }
  Comparison c = snapshots.compare(before.id);
  REQUIRE(c.files.size() == 1);
  CHECK(c.files[0].path == "a.txt");
  // Options chitin does not forward are refused, not passed on with arguments they lack.
  CHECK_THROWS_WITH_AS(git_libgit2_opts(GIT_OPT_GET_MWINDOW_SIZE, nullptr),
                       doctest::Contains("is not forwarded"), std::logic_error);
  CHECK(loadLibgit2() == "");  // once loaded, loading again changes nothing
}

}  // namespace
}  // namespace chitin::audit
