// SPDX-License-Identifier: Apache-2.0
// The bounded, iterative walk of a workspace that snapshots are made of (see snapshots.h for
// what it covers and why), and the descriptor-safe file helpers restore shares with it.
// Runs in: supervisor (on the snapshot thread)
//
// Never recursive, never more than three descriptors (root, one directory, one file), never a
// symlink followed: directories are reopened from the root with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS), so a directory swapped for a link while we look is skipped, not
// entered. Everything it cannot or may not take is returned in `skipped`, never thrown.

#pragma once

#include <git2.h>
#include <sys/stat.h>

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "file-stamp.h"
#include "snapshots.h"

namespace chitin::audit {

struct TreeEntry {
  git_filemode_t mode;
  git_oid oid;
  bool operator==(const TreeEntry& o) const {
    return mode == o.mode && git_oid_equal(&oid, &o.oid);
  }
};
// Workspace path ('/'-separated, decoded) -> blob. Directories are implied.
using FlatTree = std::map<std::string, TreeEntry>;

struct ScanResult {
  FlatTree files;
  std::vector<Skipped> skipped;
  bool incomplete = false;
  std::string incompleteReason;
  uint64_t bytesRead = 0;  // file bytes read and hashed (stat-cache misses)
  uint64_t entries = 0;    // directory entries listed
};

class WorkspaceScanner {
 public:
  explicit WorkspaceScanner(SnapshotLimits limits) : limits_(limits) {}

  // The workspace under `rootFd` as it is now; every blob is written to `odb`.
  ScanResult scan(int rootFd, git_odb* odb);

  // Drops cached blob ids that `odb` no longer has (after pruning deleted unreferenced blobs).
  void forgetMissing(git_odb* odb);

  const SnapshotLimits& limits() const { return limits_; }

 private:
  struct Cached {
    FileStamp key;
    git_oid oid;
  };
  struct InodeHash {
    size_t operator()(const std::pair<dev_t, ino_t>& k) const { return k.first * 31 + k.second; }
  };

  void addFile(int dirFd, const std::string& name, const std::string& path, const struct stat& st,
               git_odb* odb, ScanResult& out);
  bool streamFile(int dirFd, const std::string& name, const std::string& path,
                  const struct stat& st, git_odb* odb, ScanResult& out, git_oid& oid);
  void addLink(int dirFd, const std::string& name, const std::string& path, const struct stat& st,
               git_odb* odb, ScanResult& out);
  void skip(ScanResult& out, std::string path, std::string reason);

  SnapshotLimits limits_;
  // By path: what a regular file looked like when it was last hashed ("racy git" rule: an entry
  // whose ctime is too close to the scan that made it is not kept).
  std::unordered_map<std::string, Cached> cache_, next_;
  // By inode, this scan only: a hard-linked file is read once.
  std::unordered_map<std::pair<dev_t, ino_t>, Cached, InodeHash> inodes_;
  int64_t scanStartNanos_ = 0;
};

// Opens directory `rel` (relative, no leading '/') beneath `dirFd` without following any
// symlink on the way; -1 with errno on failure.
int openDirBeneath(int dirFd, const std::string& rel);

// Lists `fd`'s entries (not "." or ".."), at most `max` of them: 0 = all listed, 1 = more than
// `max` (names holds `max`), -1 = error (errno).
int listDir(int fd, uint64_t max, std::vector<std::string>& names);

// Deletes `name` in `dirFd` and, if it is a directory, everything under it, iteratively and
// without following symlinks; throws std::runtime_error (naming `shownPath`) if it cannot, or
// if the tree is deeper than `maxDepth` or holds more than `maxEntries` entries.
void removeTreeAt(int dirFd, const std::string& name, const std::string& shownPath,
                  uint32_t maxDepth, uint64_t maxEntries);

}  // namespace chitin::audit
