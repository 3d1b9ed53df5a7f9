// SPDX-License-Identifier: Apache-2.0
// The memory files: the walk, opening what the walk saw, memory_get's lines (memory-files.h).
// Runs in: the memory worker (sandboxed)

#include "memory-files.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "memory-path.h"
#include "utf8.h"

namespace chitin {

namespace {

// The file beneath `rootFd` opened for reading without following any symlink on the way, or -1.
int openNoFollow(int rootFd, const std::string& rel, int flags) {
  int fd = rootFd;
  bool own = false;
  size_t start = 0;
  while (true) {
    size_t slash = rel.find('/', start);
    bool last = slash == std::string::npos;
    std::string part = rel.substr(start, last ? std::string::npos : slash - start);
    int next =
        openat(fd, part.c_str(), (last ? flags : O_RDONLY | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC);
    int saved = errno;
    if (own) close(fd);
    errno = saved;
    if (next < 0) return -1;
    if (last) return next;
    fd = next;
    own = true;
    start = slash + 1;
  }
}

// Visits the entries of `dirFd` (which it closes) and, depth first, of its subdirectories. One
// open descriptor per level: the sandbox allows 64.
void walk(int dirFd, const std::string& prefix, uint64_t& visited,
          const std::function<void(const FoundFile&)>& visit) {
  DIR* dir = fdopendir(dirFd);
  if (dir == nullptr) {
    close(dirFd);
    return;
  }
  while (struct dirent* e = readdir(dir)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    std::string rel = prefix + "/" + e->d_name;
    bool indexed = isIndexedMemoryFile(rel);
    // d_type says which entries are directories without a stat; a file system that does not
    // fill it in (DT_UNKNOWN) gets the stat below for every entry.
    if (!indexed && e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) continue;
    struct stat st;
    if (fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      int sub = openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) walk(sub, rel, visited, visit);
    } else if (indexed && visited < MAX_MEMORY_FILES) {
      ++visited;
      visit(FoundFile{dirfd(dir), e->d_name, rel, st});  // symlinks too: callers count them
    }
  }
  closedir(dir);
}

}  // namespace

void forEachMemoryFile(int rootFd, const std::function<void(const FoundFile&)>& visit) {
  uint64_t visited = 0;
  struct stat st;
  if (fstatat(rootFd, MEMORY_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    const std::string path = MEMORY_FILE;
    ++visited;
    visit(FoundFile{rootFd, MEMORY_FILE, path, st});
  }
  int dir = openat(rootFd, MEMORY_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir >= 0) walk(dir, MEMORY_DIR, visited, visit);
}

int openFoundFile(const FoundFile& file) {
  int fd = openat(file.dirFd, file.name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat now;
  if (fstat(fd, &now) != 0 || !S_ISREG(now.st_mode) || now.st_dev != file.st.st_dev ||
      now.st_ino != file.st.st_ino) {
    close(fd);
    return -1;
  }
  return fd;
}

bool readAll(int fd, uint64_t limit, std::string& out) {
  out.clear();
  char buf[65536];
  while (true) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) return true;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) return false;
  }
}

std::string readMemoryLines(int rootFd, const std::string& path, uint32_t from, uint32_t lines,
                            std::string& error) {
  std::string problem = memoryPathProblem(path);
  if (!problem.empty()) {
    error = problem;
    return "";
  }
  int fd = openNoFollow(rootFd, path, O_RDONLY | O_NONBLOCK);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int saved = fd < 0 ? errno : 0;
    if (fd >= 0) close(fd);
    error = saved == ENOENT  ? "\"" + path + "\" does not exist"
            : saved == ELOOP ? "\"" + path +
                                   "\" is a symlink; memory files are read only as "
                                   "regular files"
                             : "\"" + path + "\" is not a readable regular file" +
                                   (saved ? std::string(" (") + strerror(saved) + ")" : "");
    return "";
  }
  std::string content;
  bool ok = readAll(fd, MAX_MEMORY_FILE_BYTES, content);
  close(fd);
  if (!ok) {
    error = "\"" + path + "\" cannot be read or is larger than 4 MiB";
    return "";
  }
  if (from < 1) from = 1;
  std::string out;
  uint32_t line = 0;
  size_t pos = 0;
  while (pos < content.size() && line < from - 1 + lines) {
    size_t nl = content.find('\n', pos);
    std::string text = content.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? content.size() : nl + 1;
    ++line;
    if (line >= from) out += std::to_string(line) + "\t" + text + "\n";
  }
  if (line < from) {
    error = "\"" + path + "\" has " + std::to_string(line) + " lines; line " +
            std::to_string(from) + " is past its end";
    return "";
  }
  return out;
}

std::string cutAtCharacter(const std::string& text, size_t max) {
  return text.substr(
      0, utf8BoundaryAtOrBefore(kj::ArrayPtr<const char>(text.data(), text.size()), max));
}

std::string boundedLines(const std::string& lines, size_t max) {
  if (lines.size() <= max) return lines;
  size_t room = max > 200 ? max - 200 : max / 2;  // for the note
  size_t end = lines.rfind('\n', room - 1);
  std::string kept =
      end == std::string::npos ? cutAtCharacter(lines, room) + "\n" : lines.substr(0, end + 1);
  return kept + "[cut at " + std::to_string(kept.size()) + " of " + std::to_string(lines.size()) +
         " bytes: read on from the next line]\n";
}

}  // namespace chitin
