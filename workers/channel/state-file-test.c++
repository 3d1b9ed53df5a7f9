// SPDX-License-Identifier: Apache-2.0
// Tests for state-file: whole replacement in both sync modes, nothing left beside the file,
// and errors that name the file.
// Runs in: tests

#include "state-file.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>

#include "platform.h"
#include "test-process.h"

using namespace chitin::channel;

namespace {

struct StateDir {
  std::string path = testing::makeTempDir();
  ~StateDir() { std::filesystem::remove_all(path); }
};

}  // namespace

TEST_CASE("state file: durable and lazy writes each replace the whole file") {
  StateDir dir;
  CHECK(!readStateFile(dir.path, "offset").has_value());
  for (StateSync sync : {StateSync::DURABLE, StateSync::LAZY}) {
    CAPTURE(static_cast<int>(sync));
    writeStateFile(dir.path, "offset", "700000123\n", sync);
    CHECK(readStateFile(dir.path, "offset") == "700000123\n");
    writeStateFile(dir.path, "offset", "9\n", sync);  // shorter: nothing of the old one stays
    CHECK(readStateFile(dir.path, "offset") == "9\n");
    struct stat st {};
    REQUIRE(::stat((dir.path + "/offset").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    // The temporary file was renamed over the old one, not left behind.
    std::vector<std::string> names;
    for (auto& entry : std::filesystem::directory_iterator(dir.path))
      names.push_back(entry.path().filename());
    CHECK(names == std::vector<std::string>{"offset"});
  }
}

TEST_CASE("state file: a write that cannot be made names the file; the old value stays") {
  StateDir dir;
  writeStateFile(dir.path, "offset", "5\n", StateSync::LAZY);
  // A directory where the temporary file would go: creating it fails.
  std::filesystem::create_directory(dir.path + "/offset.tmp");
  for (StateSync sync : {StateSync::DURABLE, StateSync::LAZY}) {
    try {
      writeStateFile(dir.path, "offset", "6\n", sync);
      FAIL("the write did not fail");
    } catch (const ChannelError& e) {
      CHECK(std::string(e.what()).find(dir.path + "/offset.tmp") != std::string::npos);
    }
    CHECK(readStateFile(dir.path, "offset") == "5\n");
  }
}
