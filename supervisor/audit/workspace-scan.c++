// SPDX-License-Identifier: Apache-2.0
// The bounded workspace walk (see workspace-scan.h).
// Runs in: supervisor (on the snapshot thread)

#include "workspace-scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>

#include "snapshots-impl.h"  // Fd

namespace chitin::audit {

namespace {

constexpr size_t CHUNK = 256 * 1024;
constexpr size_t MAX_LINK_BYTES = 4096;      // PATH_MAX: no symlink target is longer

struct Stream {
  git_odb_stream* s = nullptr;
  ~Stream() {
    if (s) git_odb_stream_free(s);
  }
};

std::string errorText(int err) {
  if (err == ENOENT) return "vanished while scanned";
  if (err == ELOOP || err == EXDEV || err == ENOTDIR)
    return "replaced (by a symlink or file) while scanned";
  return strerror(err);
}

const char* specialKind(mode_t mode) {
  if (S_ISFIFO(mode)) return "a fifo";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "an entry of unknown type";
}

std::string join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

}  // namespace

int openDirBeneath(int dirFd, const std::string& rel) {
  struct open_how how {};
  how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, dirFd, rel.c_str(), &how, sizeof(how)));
}

int listDir(int fd, uint64_t max, std::vector<std::string>& names) {
  int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return -1;
  DIR* d = ::fdopendir(dup);
  if (!d) {
    int err = errno;
    ::close(dup);
    errno = err;
    return -1;
  }
  int result = 0;
  for (;;) {
    errno = 0;
    struct dirent* ent = ::readdir(d);
    if (!ent) {
      if (errno != 0) result = -1;
      break;
    }
    if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0) continue;
    if (names.size() >= max) {
      result = 1;
      break;
    }
    names.emplace_back(ent->d_name);
  }
  int err = errno;
  ::closedir(d);
  errno = err;
  return result;
}

void removeTreeAt(int dirFd, const std::string& name, const std::string& shownPath,
                  uint32_t maxDepth, uint64_t maxEntries) {
  auto fail = [&](const std::string& what) {
    throw std::runtime_error("snapshots: cannot remove " + shownPath + ": " + what);
  };
  if (::unlinkat(dirFd, name.c_str(), 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR && errno != EPERM) fail(strerror(errno));
  // Depth first without recursion: the deepest pending directory is emptied of non-directories,
  // its first subdirectory is pushed, and a directory found empty is removed and popped.
  std::vector<std::string> stack{name};
  uint64_t seen = 0;
  while (!stack.empty()) {
    if (stack.size() > static_cast<size_t>(maxDepth) + 1)
      fail("deeper than " + std::to_string(maxDepth) + " levels");
    const std::string rel = stack.back();
    Fd dir(openDirBeneath(dirFd, rel));
    if (dir.fd < 0) {
      if (errno == ENOENT) {
        stack.pop_back();
        continue;
      }
      fail(rel + ": " + strerror(errno));
    }
    std::vector<std::string> names;
    if (listDir(dir.fd, maxEntries, names) != 0) fail(rel + ": cannot list or too many entries");
    std::string subdir;
    for (const auto& n : names) {
      if (++seen > maxEntries) fail("more than " + std::to_string(maxEntries) + " entries");
      if (::unlinkat(dir.fd, n.c_str(), 0) == 0 || errno == ENOENT) continue;
      if (errno != EISDIR && errno != EPERM) fail(rel + "/" + n + ": " + strerror(errno));
      subdir = n;
      break;
    }
    if (!subdir.empty()) {
      stack.push_back(rel + "/" + subdir);
      continue;
    }
    if (::unlinkat(dirFd, rel.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT)
      fail(rel + ": " + strerror(errno));
    stack.pop_back();
  }
}

void WorkspaceScanner::skip(ScanResult& out, std::string path, std::string reason) {
  if (out.skipped.size() >= limits_.maxSkipped) {
    if (!out.incomplete) {
      out.incomplete = true;
      out.incompleteReason =
          "more than " + std::to_string(limits_.maxSkipped) + " entries skipped; the rest unlisted";
    }
    return;
  }
  out.skipped.push_back({std::move(path), std::move(reason)});
}

ScanResult WorkspaceScanner::scan(int rootFd, git_odb* odb) {
  using Clock = std::chrono::steady_clock;
  ScanResult out;
  auto deadline = Clock::now() + std::chrono::milliseconds(limits_.timeLimitMs);
  scanStartNanos_ = realtimeNanos();
  next_.clear();
  inodes_.clear();
  std::string timeUp = "not scanned: the snapshot's time limit (" +
                       std::to_string(limits_.timeLimitMs) + " ms) ran out";

  struct Pending {
    std::string rel;
    uint32_t depth;
  };
  std::vector<Pending> stack{{"", 0}};
  while (!stack.empty()) {
    Pending dir = std::move(stack.back());
    stack.pop_back();
    std::string shown = dir.rel.empty() ? "." : dir.rel;
    if (Clock::now() > deadline) {
      out.incomplete = true;
      out.incompleteReason = timeUp;
      skip(out, shown, timeUp);
      continue;
    }
    Fd fd(dir.rel.empty() ? ::fcntl(rootFd, F_DUPFD_CLOEXEC, 0) : openDirBeneath(rootFd, dir.rel));
    if (fd.fd < 0) {
      skip(out, shown, "cannot open: " + errorText(errno));
      continue;
    }
    std::vector<std::string> names;
    uint64_t room = limits_.maxEntries - out.entries;
    int listed = listDir(fd.fd, room, names);
    if (listed < 0) {
      skip(out, shown, "cannot list: " + errorText(errno));
      continue;
    }
    if (listed > 0) {
      skip(out, shown,
           "not scanned: the workspace has more than " + std::to_string(limits_.maxEntries) +
               " entries");
      continue;
    }
    out.entries += names.size();
    for (size_t i = 0; i < names.size(); ++i) {
      const std::string& name = names[i];
      std::string path = join(dir.rel, name);
      if (Clock::now() > deadline) {
        // The rest of this directory is unknown: every remaining entry is listed as skipped.
        out.incomplete = true;
        out.incompleteReason = timeUp;
        for (; i < names.size(); ++i) skip(out, join(dir.rel, names[i]), timeUp);
        break;
      }
      struct stat st;
      if (::fstatat(fd.fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        skip(out, path, "cannot stat: " + errorText(errno));
      } else if (S_ISDIR(st.st_mode)) {
        if (dir.depth + 1 > limits_.maxDepth) {
          skip(
              out, path,
              "not scanned: deeper than " + std::to_string(limits_.maxDepth) + " directory levels");
        } else {
          stack.push_back({path, dir.depth + 1});
        }
      } else if (S_ISREG(st.st_mode)) {
        addFile(fd.fd, name, path, st, odb, out);
      } else if (S_ISLNK(st.st_mode)) {
        addLink(fd.fd, name, path, st, odb, out);
      } else {
        skip(out, path, std::string(specialKind(st.st_mode)) + ": special files are not kept");
      }
    }
  }
  cache_.swap(next_);
  next_.clear();
  inodes_.clear();
  return out;
}

void WorkspaceScanner::addFile(int dirFd, const std::string& name, const std::string& path,
                               const struct stat& st, git_odb* odb, ScanResult& out) {
  git_filemode_t mode = (st.st_mode & S_IXUSR) ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB;
  FileStamp key = FileStamp::of(st);
  auto hit = cache_.find(path);
  if (hit != cache_.end() && hit->second.key == key) {
    next_.insert(*hit);
    out.files[path] = {mode, hit->second.oid};
    return;
  }
  auto linked = inodes_.find({st.st_dev, st.st_ino});
  if (linked != inodes_.end() && linked->second.key == key) {
    out.files[path] = {mode, linked->second.oid};
    return;
  }
  auto size = static_cast<uint64_t>(st.st_size);
  if (size > limits_.maxFileBytes) {
    skip(out, path,
         "too large: " + std::to_string(size) + " bytes, over the per-file limit of " +
             std::to_string(limits_.maxFileBytes));
    return;
  }
  if (out.bytesRead + size > limits_.maxSnapshotBytes) {
    skip(out, path,
         "not read: the snapshot's byte budget (" + std::to_string(limits_.maxSnapshotBytes) +
             " bytes) is used up");
    return;
  }
  git_oid oid;
  if (!streamFile(dirFd, name, path, st, odb, out, oid)) return;
  out.files[path] = {mode, oid};
}

// Streams one file into the object database; false (and a skip recorded) if it cannot.
bool WorkspaceScanner::streamFile(int dirFd, const std::string& name, const std::string& path,
                                  const struct stat& st, git_odb* odb, ScanResult& out,
                                  git_oid& oid) {
  std::vector<char> buf(CHUNK);
  for (int attempt = 0; attempt < 2; ++attempt) {
    // O_NONBLOCK: if the file was swapped for a fifo since fstatat(), open must not hang.
    Fd fd(::openat(dirFd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (fd.fd < 0) {
      skip(out, path, "cannot open: " + errorText(errno));
      return false;
    }
    struct stat opened;
    if (::fstat(fd.fd, &opened) < 0 || !S_ISREG(opened.st_mode) || opened.st_ino != st.st_ino) {
      skip(out, path, "replaced while scanned");
      return false;
    }
    auto size = static_cast<uint64_t>(opened.st_size);
    if (size > limits_.maxFileBytes || out.bytesRead + size > limits_.maxSnapshotBytes) {
      skip(out, path, "grew past the byte limits while scanned");
      return false;
    }
    Stream stream;
    if (git_odb_open_wstream(&stream.s, odb, size, GIT_OBJECT_BLOB) < 0) {
      const git_error* e = git_error_last();
      throw std::runtime_error(std::string("snapshots: cannot store a blob: ") +
                               (e && e->message ? e->message : "libgit2 error"));
    }
    uint64_t done = 0;
    bool shortRead = false;
    while (done < size) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(CHUNK, size - done));
      ssize_t n = ::read(fd.fd, buf.data(), want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        skip(out, path, std::string("cannot read: ") + strerror(errno));
        return false;
      }
      if (n == 0) {
        shortRead = true;
        break;
      }
      if (git_odb_stream_write(stream.s, buf.data(), static_cast<size_t>(n)) < 0)
        throw std::runtime_error("snapshots: cannot store a blob of " + path);
      done += static_cast<uint64_t>(n);
    }
    out.bytesRead += done;
    struct stat after;
    if (shortRead || ::fstat(fd.fd, &after) < 0 || !(FileStamp::of(after) == FileStamp::of(opened)))
      continue;
    if (git_odb_stream_finalize_write(&oid, stream.s) < 0)
      throw std::runtime_error("snapshots: cannot store a blob of " + path);
    Cached entry{FileStamp::of(opened), oid};
    inodes_[{opened.st_dev, opened.st_ino}] = entry;
    if (settledBefore(opened, scanStartNanos_) && FileStamp::of(opened) == FileStamp::of(st))
      next_[path] = entry;
    return true;
  }
  skip(out, path, "kept changing while it was read");
  return false;
}

void WorkspaceScanner::addLink(int dirFd, const std::string& name, const std::string& path,
                               const struct stat& st, git_odb* odb, ScanResult& out) {
  std::string target(std::min<size_t>(static_cast<size_t>(st.st_size) + 1, MAX_LINK_BYTES), '\0');
  ssize_t n;
  for (;;) {
    n = ::readlinkat(dirFd, name.c_str(), target.data(), target.size());
    if (n < 0 || static_cast<size_t>(n) < target.size() || target.size() >= MAX_LINK_BYTES) break;
    target.resize(std::min(target.size() * 2, MAX_LINK_BYTES));  // the link changed
  }
  if (n < 0) {
    skip(out, path, "cannot read the link: " + errorText(errno));
    return;
  }
  if (static_cast<size_t>(n) >= MAX_LINK_BYTES) {
    skip(out, path, "a symlink whose target is longer than PATH_MAX");
    return;
  }
  git_oid oid;
  if (git_odb_write(&oid, odb, target.data(), static_cast<size_t>(n), GIT_OBJECT_BLOB) < 0)
    throw std::runtime_error("snapshots: cannot store the link " + path);
  out.files[path] = {GIT_FILEMODE_LINK, oid};
}

void WorkspaceScanner::forgetMissing(git_odb* odb) {
  for (auto it = cache_.begin(); it != cache_.end();) {
    if (git_odb_exists(odb, &it->second.oid)) {
      ++it;
    } else {
      it = cache_.erase(it);
    }
  }
}

}  // namespace chitin::audit
