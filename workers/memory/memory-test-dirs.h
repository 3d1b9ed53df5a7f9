// SPDX-License-Identifier: Apache-2.0
// The memory tests' temporary workspace (with `memory/`) and state directory, removed after.
// Runs in: test

#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace chitin::testing {

struct MemoryDirs {
  std::filesystem::path workspace, state;
  int rootFd = -1;
  MemoryDirs() {
    char tmpl[] = "/tmp/chitin-memory-test.XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    std::filesystem::path base = tmpl;
    workspace = base / "workspace";
    state = base / "state";
    std::filesystem::create_directories(workspace / "memory");
    std::filesystem::create_directories(state);
    rootFd = open(workspace.c_str(), O_RDONLY | O_DIRECTORY);
    REQUIRE(rootFd >= 0);
  }
  ~MemoryDirs() {
    close(rootFd);
    std::filesystem::remove_all(workspace.parent_path());
  }
  MemoryDirs(const MemoryDirs&) = delete;
  MemoryDirs& operator=(const MemoryDirs&) = delete;
  void write(const std::string& rel, const std::string& content) {
    std::filesystem::create_directories((workspace / rel).parent_path());
    std::ofstream(workspace / rel, std::ios::trunc) << content;
  }
  std::string index() const { return (state / "index.sqlite").string(); }
};

}  // namespace chitin::testing
