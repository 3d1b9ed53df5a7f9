// SPDX-License-Identifier: Apache-2.0
// The web chat's files, read once at start from an explicit allowlist.
// Runs in: supervisor

#include "web-files.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace chitin::gateway {

const std::map<std::string, std::pair<std::string, std::string>, std::less<>>&
WebFiles::allowlist() {
  // request path -> (file in web/, content type)
  static const std::map<std::string, std::pair<std::string, std::string>, std::less<>> list = {
      {"/", {"index.html", "text/html; charset=utf-8"}},
      {"/index.html", {"index.html", "text/html; charset=utf-8"}},
      {"/app.js", {"app.js", "text/javascript; charset=utf-8"}},
      {"/style.css", {"style.css", "text/css; charset=utf-8"}},
  };
  return list;
}

WebFiles::WebFiles(const std::string& root) {
  if (root.empty()) return;
  for (const auto& [path, entry] : allowlist()) {
    const auto& [name, contentType] = entry;
    std::string file = root + "/" + name;
    std::ifstream in(file, std::ios::binary);
    if (!in) {
      throw std::runtime_error("web chat file " + file +
                               " cannot be read: " + std::strerror(errno));
    }
    std::ostringstream body;
    body << in.rdbuf();
    files_[path] = WebFile{contentType, body.str()};
  }
}

const WebFile* WebFiles::find(std::string_view path) const {
  auto it = files_.find(path);
  return it == files_.end() ? nullptr : &it->second;
}

}  // namespace chitin::gateway
