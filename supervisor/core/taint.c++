// SPDX-License-Identifier: Apache-2.0
// Untrusted content in the workspace (see taint.h).
// Runs in: supervisor

#include "taint.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "home.h"
#include "json-bounds.h"

namespace chitin {

namespace {

constexpr size_t MAX_RECORD_FILE_BYTES = 16 << 20;

bool beneath(const std::string& path, const std::string& dir) {
  if (dir.empty()) return true;  // the whole workspace
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 &&
                         path[dir.size()] == '/');
}

std::string topLevel(const std::string& path) { return path.substr(0, path.find('/')); }

}  // namespace

bool inUntrustedDir(const std::string& relPath, const std::vector<std::string>& untrustedDirs) {
  for (const auto& prefix : untrustedDirs) {
    std::string dir = prefix;
    while (!dir.empty() && dir.back() == '/') dir.pop_back();
    if (beneath(relPath, dir)) return true;
  }
  return false;
}

long openBeneath(int dirFd, const char* path, uint64_t flags) {
  struct open_how how {};
  how.flags = flags;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  return syscall(SYS_openat2, dirFd, path, &how, sizeof(how));
}

Resolved resolveBeneath(const std::string& workspaceDir, const std::string& relPath) {
  Resolved out;
  int root = open(workspaceDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) {
    out.error = errno;
    return out;
  }
  long fd = openBeneath(root, relPath.empty() ? "." : relPath.c_str(), O_PATH | O_CLOEXEC);
  int err = errno;
  close(root);
  if (fd < 0) {
    out.error = err;
    return out;
  }
  char link[4096];
  std::string proc = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = readlink(proc.c_str(), link, sizeof(link) - 1);
  if (n <= 0 || fstat(static_cast<int>(fd), &out.st) != 0) {
    out.error = n <= 0 ? ENAMETOOLONG : errno;
    close(static_cast<int>(fd));
    return out;
  }
  close(static_cast<int>(fd));
  std::string real(link, static_cast<size_t>(n));
  if (real == workspaceDir) {
    out.realPath = "";
  } else if (real.size() > workspaceDir.size() &&
             real.compare(0, workspaceDir.size(), workspaceDir) == 0 &&
             real[workspaceDir.size()] == '/') {
    out.realPath = real.substr(workspaceDir.size() + 1);
  } else {
    out.error = EXDEV;  // cannot happen beneath; never guess
  }
  return out;
}

UntrustedFiles::UntrustedFiles(std::string path) : path_(std::move(path)) {
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    if (errno != ENOENT) error_ = "cannot read " + path_ + ": " + strerror(errno);
  } else {
    std::ostringstream text;
    text << in.rdbuf();
    std::string body = text.str();
    std::string bounds = checkJsonBounds(body, {MAX_RECORD_FILE_BYTES, 8}, path_);
    auto doc = bounds.empty() ? nlohmann::json::parse(body, nullptr, false) : nlohmann::json();
    if (!bounds.empty() || doc.is_discarded() || !doc.is_object() || !doc.contains("files") ||
        !doc["files"].is_object()) {
      error_ = bounds.empty() ? path_ + ": not a record of untrusted files" : bounds;
    } else {
      for (auto& [file, source] : doc["files"].items()) {
        entries_[file] = source.is_string() ? source.get<std::string>() : "untrusted";
      }
    }
  }
  if (!error_.empty()) {
    spdlog::error(
        "{}: every workspace file counts as untrusted (writes and commands ask) until the file "
        "is removed, which starts an empty record",
        error_);
    entries_[""] = "the record of untrusted files could not be read (" + error_ + ")";
  }
}

UntrustedFiles::~UntrustedFiles() { flush(); }

void UntrustedFiles::mark(const std::string& relPath, const std::string& source) {
  if (!sourceOf(relPath).empty() && entries_.count(relPath) == 0) return;  // covered already
  entries_[relPath] = source;
  // A marked directory covers what lies beneath it: "dir/..." sort together, right after "dir/".
  if (relPath.empty()) {
    entries_ = {{"", source}};
  } else {
    std::string prefix = relPath + "/";
    auto first = entries_.lower_bound(prefix);
    auto last = first;
    while (last != entries_.end() && last->first.compare(0, prefix.size(), prefix) == 0) ++last;
    entries_.erase(first, last);
  }
  collapse();
  dirty_ = true;
}

void UntrustedFiles::clear(const std::string& relPath) {
  if (entries_.erase(relPath) > 0) dirty_ = true;
}

std::string UntrustedFiles::sourceOf(const std::string& relPath) const {
  if (auto whole = entries_.find(""); whole != entries_.end()) return whole->second;
  // The path itself or one of its directories: one lookup per path component.
  for (size_t slash = relPath.find('/');; slash = relPath.find('/', slash + 1)) {
    auto it = entries_.find(relPath.substr(0, slash));
    if (it != entries_.end()) return it->second;
    if (slash == std::string::npos) return "";
  }
}

void UntrustedFiles::flush() {
  if (!dirty_) return;
  save();
  dirty_ = false;
}

std::optional<std::pair<std::string, std::string>> UntrustedFiles::anyPresent(
    const std::string& workspaceDir) {
  int root = open(workspaceDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0) return std::nullopt;
  std::optional<std::pair<std::string, std::string>> found;
  bool forgot = false;
  for (auto it = entries_.begin(); it != entries_.end();) {
    struct stat st;
    if (it->first.empty() || fstatat(root, it->first.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 ||
        errno != ENOENT) {
      found = *it;
      break;
    }
    it = entries_.erase(it);
    forgot = true;
  }
  close(root);
  if (forgot) dirty_ = true;
  flush();
  return found;
}

void UntrustedFiles::collapse() {
  if (entries_.size() <= MAX_ENTRIES) return;
  std::map<std::string, std::string> tops;
  for (auto& [path, source] : entries_) tops.emplace(topLevel(path), source);
  if (tops.size() > MAX_ENTRIES)
    tops = {{"", "more untrusted files than chitin keeps a record of"}};
  entries_ = std::move(tops);
}

void UntrustedFiles::save() {
  nlohmann::json files = nlohmann::json::object();
  for (auto& [path, source] : entries_) files[path] = source;
  nlohmann::json doc = {{"version", 1}, {"files", files}};
  try {
    writeFileAtomically(path_, doc.dump(1, ' ', false, nlohmann::json::error_handler_t::replace),
                        0600);
    error_.clear();
  } catch (const std::exception& e) {
    // Kept in memory all the same: the record only over-approximates until the next write.
    spdlog::error("cannot save the record of untrusted files: {}", e.what());
  }
}

std::string untrustedSourceOfFile(const std::string& workspaceDir, const std::string& relPath,
                                  const std::vector<std::string>& untrustedDirs,
                                  const UntrustedFiles& files) {
  Resolved r = resolveBeneath(workspaceDir, relPath);
  if (r.error != 0) return "";
  std::string shown = r.realPath == relPath ? relPath : relPath + " (which is " + r.realPath + ")";
  if (inUntrustedDir(r.realPath, untrustedDirs)) return "the file " + shown + " came from outside";
  if (S_ISREG(r.st.st_mode) && r.st.st_nlink > 1) {
    return "the file " + shown + " has " + std::to_string(r.st.st_nlink) +
           " hard links, which could be anywhere";
  }
  std::string recorded = files.sourceOf(r.realPath);
  if (recorded.empty()) recorded = files.sourceOf(relPath);
  if (!recorded.empty()) return "the file " + shown + " was written by " + recorded;
  return "";
}

std::string untrustedSourceOfPromptFile(const std::string& name, const struct stat& st,
                                        const UntrustedFiles& files) {
  if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
    return name + " has " + std::to_string(st.st_nlink) + " hard links, which could be anywhere";
  }
  std::string recorded = files.sourceOf(name);
  return recorded.empty() ? "" : name + " was written by " + recorded;
}

}  // namespace chitin
