// SPDX-License-Identifier: Apache-2.0
// Small file helpers shared by the audit tests.
// Runs in: test

#pragma once

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace chitin::audit::test {

struct TempDir {
  std::string path;
  // `base`: e.g. "/dev/shm" for a test that makes thousands of directories (rmdir on a shared
  // ext4 costs milliseconds each).
  explicit TempDir(const std::string& base = "/tmp") {
    std::string tmpl = base + "/chitin-audit-XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed in " + base);
    path = tmpl;
  }
  ~TempDir() {
    int rc = std::system(("chmod -R u+rwx '" + path + "'; rm -rf '" + path + "'").c_str());
    (void)rc;
  }
};

inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void writeFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  if (!out) throw std::runtime_error("cannot write " + path);
}

inline std::vector<std::string> lines(const std::string& content) {
  std::vector<std::string> out;
  std::stringstream ss(content);
  std::string line;
  while (std::getline(ss, line)) out.push_back(line);
  return out;
}

// A workspace and its snapshot repository's path in a fresh directory (under `base`).
struct SnapshotFixture {
  TempDir tmp;
  SnapshotFixture() : SnapshotFixture("/tmp") {}
  explicit SnapshotFixture(const std::string& base) : tmp(base) {
    std::filesystem::create_directories(ws);
  }
  std::string ws = tmp.path + "/workspace";
  std::string git = tmp.path + "/state/snapshots/main.git";
  std::string at(const std::string& rel) const { return ws + "/" + rel; }
};

// Whether anything (a dangling symlink included) is at `path`.
inline bool exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

}  // namespace chitin::audit::test
