// SPDX-License-Identifier: Apache-2.0
// Helpers for the skills tests: a temporary directory and files written into it.
// Runs in: tests

#pragma once

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace chitin::skills::testing {

struct TempDir {
  std::string root;
  TempDir() {
    char tmpl[] = "/tmp/chitin-skills-XXXXXX";
    root = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// Writes `content` to `path`, creating its folders.
inline void put(const std::string& path, const std::string& content, mode_t mode = 0644) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
  chmod(path.c_str(), mode);
}

inline std::string skillMd(const std::string& name, const std::string& description,
                           const std::string& extra = "") {
  return "---\nname: " + name + "\ndescription: " + description + "\n" + extra + "---\n# " + name +
         "\n\nInstructions.\n";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace chitin::skills::testing
