// SPDX-License-Identifier: Apache-2.0
// Small file helpers shared by the audit tests.
// Runs in: test

#pragma once

#include <stdlib.h>

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

}  // namespace chitin::audit::test
