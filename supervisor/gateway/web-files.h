// SPDX-License-Identifier: Apache-2.0
// The web chat's files, read once at start from an explicit allowlist, with their content types.
// Runs in: supervisor
//
// The gateway serves nothing else from disk: no directory listing, no path resolution, so no
// traversal. A request path either equals an allowlisted path or it is a 404.

#pragma once

#include <map>
#include <string>
#include <string_view>

namespace chitin::gateway {

struct WebFile {
  std::string contentType;
  std::string body;
};

class WebFiles {
 public:
  // The files of web/ that are served, by request path ("/" is index.html).
  static const std::map<std::string, std::pair<std::string, std::string>, std::less<>>& allowlist();

  // Reads every allowlisted file below `root`. An empty root serves nothing (the web chat is
  // off). Throws std::runtime_error naming the file if one cannot be read.
  explicit WebFiles(const std::string& root);

  // nullptr unless `path` is exactly an allowlisted request path.
  const WebFile* find(std::string_view path) const;

 private:
  std::map<std::string, WebFile, std::less<>> files_;
};

}  // namespace chitin::gateway
