// SPDX-License-Identifier: Apache-2.0
// Tests for the memory files' change generation (memory-watch.h): every kind of change to a
// memory file advances it, reads and other workspace files do not, and directories made later
// (memory/ itself included) are watched too.
// Runs in: test

#include "memory-watch.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace chitin {
namespace {

namespace fs = std::filesystem;

struct Workspace {
  fs::path root;
  Workspace() {
    char tmpl[] = "/tmp/memory-watch-test.XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    root = tmpl;
  }
  ~Workspace() { fs::remove_all(root); }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((root / rel).parent_path());
    std::ofstream(root / rel, std::ios::trunc) << text;
  }
  std::string read(const std::string& rel) {
    std::ifstream in(root / rel);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
};

uint64_t generation(MemoryWatch& watch) {
  auto sync = watch.current();
  REQUIRE(sync.has_value());
  CHECK(sync->epoch != 0);
  return sync->generation;
}

// Whether `change` advances the generation.
template <typename F>
bool advances(MemoryWatch& watch, F change) {
  uint64_t before = generation(watch);
  change();
  return generation(watch) > before;
}

}  // namespace

TEST_CASE("memory watch: each change to a memory file advances the generation; reads do not") {
  Workspace ws;
  ws.write("memory/a.md", "one\n");
  ws.write("MEMORY.md", "curated\n");
  ws.write("notes.txt", "not memory\n");
  MemoryWatch watch(ws.root.string());
  uint64_t g = generation(watch);
  CHECK(generation(watch) == g);  // asking twice with nothing between: the same

  CHECK(advances(watch, [&] { ws.write("memory/a.md", "two\n"); }));  // a write
  CHECK(advances(watch, [&] { ws.write("memory/b.md", "new\n"); }));  // a new file
  CHECK(advances(watch, [&] { fs::rename(ws.root / "memory/b.md", ws.root / "memory/c.md"); }));
  CHECK(advances(watch, [&] { fs::remove(ws.root / "memory/c.md"); }));  // a removal
  CHECK(advances(watch, [&] {
    fs::permissions(ws.root / "memory/a.md", fs::perms::owner_read);  // attributes
  }));
  CHECK(advances(watch, [&] { ws.write("MEMORY.md", "curated, edited\n"); }));  // MEMORY.md
  // Control: reading memory files (as the memory worker does) and changing other workspace
  // files leave it alone.
  CHECK_FALSE(advances(watch, [&] {
    CHECK(ws.read("memory/a.md") == "two\n");
    CHECK(ws.read("MEMORY.md") == "curated, edited\n");
  }));
  CHECK_FALSE(advances(watch, [&] { ws.write("notes.txt", "still not memory\n"); }));

  // Two watches of one workspace (two supervisors) never share an epoch.
  MemoryWatch other(ws.root.string());
  CHECK(other.current()->epoch != watch.current()->epoch);
}

TEST_CASE("memory watch: directories made later are watched, memory/ itself included") {
  Workspace ws;
  fs::create_directories(ws.root);
  MemoryWatch watch(ws.root.string());  // no memory/ yet
  CHECK(advances(watch, [&] { fs::create_directory(ws.root / "memory"); }));
  CHECK(advances(watch, [&] { ws.write("memory/a.md", "one\n"); }));
  CHECK(advances(watch, [&] { fs::create_directories(ws.root / "memory/2026/12"); }));
  // Made before the watch read the event for its parent: watched all the same.
  CHECK(advances(watch, [&] { ws.write("memory/2026/12/03.md", "deep\n"); }));
  CHECK(advances(watch, [&] { ws.write("memory/2026/12/03.md", "deeper\n"); }));
  // A directory moved in from elsewhere in the workspace is watched from then on.
  ws.write("drafts/x.md", "draft\n");
  CHECK(advances(watch, [&] { fs::rename(ws.root / "drafts", ws.root / "memory/drafts"); }));
  CHECK(advances(watch, [&] { ws.write("memory/drafts/x.md", "kept\n"); }));
  // memory/ replaced as a whole.
  CHECK(advances(watch, [&] { fs::remove_all(ws.root / "memory"); }));
  CHECK(advances(watch, [&] { ws.write("memory/fresh.md", "again\n"); }));
  CHECK(advances(watch, [&] { ws.write("memory/fresh.md", "and again\n"); }));
}

TEST_CASE("memory watch: a workspace that cannot be watched gives no hints") {
  MemoryWatch watch("/nonexistent/chitin-memory-watch-test");
  CHECK_FALSE(watch.current().has_value());
}

}  // namespace chitin
