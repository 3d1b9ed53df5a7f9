// SPDX-License-Identifier: Apache-2.0
// Rollback: making the workspace a snapshot's tree again, as far as it can (see snapshots.h).
// Runs in: supervisor (on the snapshot thread, or a caller holding the lock)
//
// The workspace is written only through directory fds opened with O_NOFOLLOW, starting from the
// workspace root: a sandboxed tool may have planted symlinks anywhere in it, and none of them may
// lead a privileged write (or delete) outside. One entry that cannot be written or removed is
// reported and the rest goes on: a hostile entry must not keep the owner from getting the rest
// of the workspace back.

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "snapshots-impl.h"

namespace chitin::audit {

namespace {

using BlobPtr = GitPtr<git_blob, git_blob_free>;

// Opens the directory `dirs[0..count)` under `root` without following any symlink. With
// `create`, a missing component is made, and a non-directory in the way (a file, or a symlink
// planted by a tool) is removed first. Returns -1 (errno set) if it cannot be opened. At most two
// descriptors are open at a time.
int openDirs(int root, const std::vector<std::string>& dirs, size_t count, bool create) {
  int fd = ::fcntl(root, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return -1;
  for (size_t i = 0; i < count; ++i) {
    const char* name = dirs[i].c_str();
    int next = ::openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && create && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)) {
      if (errno != ENOENT && ::unlinkat(fd, name, 0) < 0) {
        int err = errno;
        ::close(fd);
        errno = err;
        return -1;
      }
      if (::mkdirat(fd, name, 0755) == 0 || errno == EEXIST)
        next = ::openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    int err = errno;
    ::close(fd);
    if (next < 0) {
      errno = err;
      return -1;
    }
    fd = next;
  }
  return fd;
}

std::string errnoText(const std::string& what) { return what + ": " + strerror(errno); }

}  // namespace

// Writes one entry of a snapshot at `path`: into a temporary name in the same directory, then
// renamed over whatever is there (a file, or a symlink, which is replaced, not followed).
void Snapshots::Impl::writeEntryLocked(int root, const std::string& path, const TreeEntry& entry) {
  auto parts = splitPath(path);
  Fd dir(openDirs(root, parts, parts.size() - 1, true));
  if (dir.fd < 0) throw std::runtime_error(errnoText("cannot create its directory"));
  const std::string& name = parts.back();
  git_blob* raw = nullptr;
  check(git_blob_lookup(&raw, repo, &entry.oid), "read blob of " + path);
  BlobPtr blob(raw);
  // Whole in memory: bounded by SnapshotLimits::maxFileBytes when the blob was taken.
  const char* data = static_cast<const char*>(git_blob_rawcontent(blob.get()));
  size_t size = static_cast<size_t>(git_blob_rawsize(blob.get()));
  std::string tmp;
  for (int attempt = 0;; ++attempt) {
    tmp = ".chitin-restore-" + std::to_string(::getpid()) + "-" + std::to_string(attempt);
    if (entry.mode == GIT_FILEMODE_LINK) {
      if (::symlinkat(std::string(data, size).c_str(), dir.fd, tmp.c_str()) == 0) break;
    } else {
      Fd out(::openat(dir.fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      0600));
      if (out.fd >= 0) {
        size_t done = 0;
        while (done < size) {
          ssize_t n = ::write(out.fd, data + done, size - done);
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) {
            std::string why = errnoText("cannot write");
            ::unlinkat(dir.fd, tmp.c_str(), 0);
            throw std::runtime_error(why);
          }
          done += static_cast<size_t>(n);
        }
        mode_t mode = entry.mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644;
        if (::fchmod(out.fd, mode) < 0) throw std::runtime_error(errnoText("cannot chmod"));
        break;
      }
    }
    if (errno != EEXIST || attempt > 100) throw std::runtime_error(errnoText("cannot create"));
  }
  if (::renameat(dir.fd, tmp.c_str(), dir.fd, name.c_str()) < 0) {
    if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR) {
      // A directory stands where the snapshot has a file: it goes.
      try {
        const SnapshotLimits& l = scanner.limits();
        removeTreeAt(dir.fd, name, path, l.maxDepth, l.maxEntries);
      } catch (...) {
        ::unlinkat(dir.fd, tmp.c_str(), 0);
        throw;
      }
      if (::renameat(dir.fd, tmp.c_str(), dir.fd, name.c_str()) == 0) return;
    }
    std::string why = errnoText("cannot replace");
    ::unlinkat(dir.fd, tmp.c_str(), 0);
    throw std::runtime_error(why);
  }
}

Restored Snapshots::Impl::restoreLocked(const std::string& id, const std::string& beforeMessage) {
  readyLocked();
  Restored out;
  SnapshotTree target;
  try {
    target = treeOfLocked(id);
  } catch (const std::runtime_error& e) {
    if (auto problem = prunedProblem(id)) {
      out.pruned = true;
      out.problem = *problem;
      return out;
    }
    throw;
  }
  ScanResult current;
  if (beforeMessage.empty()) {
    current = scanLocked();
  } else {
    out.before = takeLocked(beforeMessage, &current).id;
  }

  // What this rollback cannot touch, said up front: what the snapshot does not know, and what
  // the workspace does not let us see now.
  for (auto& s : target.skipped)
    out.notRestored.push_back({s.path, "not in the snapshot, left as it is: " + s.reason});
  if (target.incomplete)
    out.notRestored.push_back({".", "the snapshot is incomplete (" + target.incompleteReason +
                                        "): files it does not list were not deleted"});
  for (auto& s : current.skipped)
    out.notRestored.push_back({s.path, "left as it is now: " + s.reason});

  std::vector<FileChange> changes;
  for (auto& c : diffTrees(current.files, target.files)) {
    if (c.after.empty() && (target.incomplete || target.covers(c.path))) continue;
    changes.push_back(std::move(c));
  }
  Fd root = openWorkspace();
  auto failed = [&](const FileChange& c, const std::string& why) {
    out.notRestored.push_back({c.path, "could not be restored: " + why});
  };

  // 1. Delete what the snapshot does not have (a file, or a symlink standing where the snapshot
  // has a directory: the link itself goes, never what it points to).
  std::set<std::string> emptiedDirs;  // a child sorts after its parent: walk in reverse
  for (auto& c : changes) {
    if (!c.after.empty()) continue;
    auto parts = splitPath(c.path);
    Fd dir(openDirs(root.fd, parts, parts.size() - 1, false));
    if (dir.fd < 0 && errno != ENOENT) {
      failed(c, errnoText("cannot open its directory"));
      continue;
    }
    if (dir.fd >= 0 && ::unlinkat(dir.fd, parts.back().c_str(), 0) < 0 && errno != ENOENT) {
      failed(c, errnoText("cannot remove"));
      continue;
    }
    out.files.push_back(c);
    for (size_t slash = c.path.find('/'); slash != std::string::npos;
         slash = c.path.find('/', slash + 1))
      emptiedDirs.insert(c.path.substr(0, slash));
  }
  // 2. Remove directories this emptied, deepest first, unless the snapshot has files in them.
  for (auto it = emptiedDirs.rbegin(); it != emptiedDirs.rend(); ++it) {
    const std::string& dirPath = *it;
    auto under = target.files.lower_bound(dirPath + "/");
    if (under != target.files.end() &&
        under->first.compare(0, dirPath.size() + 1, dirPath + "/") == 0)
      continue;
    auto parts = splitPath(dirPath);
    Fd parent(openDirs(root.fd, parts, parts.size() - 1, false));
    if (parent.fd >= 0) ::unlinkat(parent.fd, parts.back().c_str(), AT_REMOVEDIR);  // if empty
  }
  // 3. Write what differs. Only entries of the snapshot are written, so no name (`.git`
  // included) appears that the workspace did not hold when the snapshot was taken.
  for (auto& c : changes) {
    if (c.after.empty()) continue;
    try {
      writeEntryLocked(root.fd, c.path, target.files.at(c.path));
      out.files.push_back(c);
    } catch (const std::exception& e) {
      failed(c, e.what());
    }
  }
  std::sort(out.files.begin(), out.files.end(),
            [](const FileChange& a, const FileChange& b) { return a.path < b.path; });
  return out;
}

std::vector<Skipped> Snapshots::Impl::restorePathsLocked(const std::string& id,
                                                         const std::vector<std::string>& paths) {
  readyLocked();
  std::vector<Skipped> failed;
  SnapshotTree target = treeOfLocked(id);
  Fd root = openWorkspace();
  for (const auto& path : paths) {
    try {
      auto it = target.files.find(path);
      if (it != target.files.end()) {
        writeEntryLocked(root.fd, path, it->second);
        continue;
      }
      if (target.incomplete || target.covers(path)) {
        failed.push_back({path, "the snapshot does not know what it held"});
        continue;
      }
      auto parts = splitPath(path);
      Fd dir(openDirs(root.fd, parts, parts.size() - 1, false));
      if (dir.fd < 0) {
        if (errno != ENOENT) failed.push_back({path, errnoText("cannot open its directory")});
        continue;
      }
      const SnapshotLimits& l = scanner.limits();
      removeTreeAt(dir.fd, parts.back(), path, l.maxDepth, l.maxEntries);
    } catch (const std::exception& e) {
      failed.push_back({path, e.what()});
    }
  }
  return failed;
}

}  // namespace chitin::audit
