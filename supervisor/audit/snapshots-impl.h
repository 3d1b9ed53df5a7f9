// SPDX-License-Identifier: Apache-2.0
// The inside of Snapshots, shared by its three implementation files: snapshots.c++ (taking,
// comparing, trees, the thread), snapshot-restore.c++ and snapshot-retention.c++.
// Runs in: supervisor
//
// Every member that touches `repo` or `scanner` is called with `lock` held ("...Locked").

#pragma once

#include <git2.h>
#include <kj/function.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include "snapshots.h"
#include "workspace-scan.h"

namespace chitin::audit {

void check(int rc, const std::string& op);
[[noreturn]] void throwErrno(const std::string& op, const std::string& path);
std::string hex(const git_oid& oid);
std::vector<std::string> splitPath(const std::string& path);

template <typename T, void (*F)(T*)>
struct GitFree {
  void operator()(T* p) const { F(p); }
};
template <typename T, void (*F)(T*)>
using GitPtr = std::unique_ptr<T, GitFree<T, F>>;
using CommitPtr = GitPtr<git_commit, git_commit_free>;
using TreePtr = GitPtr<git_tree, git_tree_free>;

struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// A snapshot as restore and compare read it back.
struct SnapshotTree {
  FlatTree files;
  std::vector<Skipped> skipped;
  std::set<std::string> skippedPaths;
  bool incomplete = false;
  std::string incompleteReason;
  bool legacy = false;  // format 1: every `.git` was left out (snapshot-names.h)

  // Is `path` (or a directory above it) outside what this snapshot knows?
  bool covers(const std::string& path) const;
};

// A snapshot's name: refs/snapshots/<20-digit stamp>, the stamp being nanoseconds since the
// epoch when it was taken, forced to grow (names sort in the order snapshots were taken, even if
// the clock steps back or two come in one tick).
std::string snapshotRefName(int64_t stamp);

// Entries of `from` and `to` that differ, sorted by path.
std::vector<FileChange> diffTrees(const FlatTree& from, const FlatTree& to);

struct Snapshots::Impl {
  std::string gitDir;
  std::string workDir;
  RetentionPolicy retention;
  git_repository* repo = nullptr;  // null until readyLocked()
  WorkspaceScanner scanner;
  std::mutex lock;  // one thread uses `repo` at a time
  std::atomic<bool> openPosted = false;  // openInBackground() was called

  // The last snapshot, so that an unchanged workspace costs only the scan.
  bool haveLast = false;
  git_oid lastCommit = {};
  FlatTree lastFiles;
  std::string lastManifest;
  int64_t lastStamp = 0;  // the newest snapshot name's stamp (0: not looked up yet)
  uint32_t sincePrune = 0;
  bool prunedOnce = false;

  // The snapshot thread (see snapshots.h, "Threads").
  std::thread worker;
  std::mutex queueLock;
  std::condition_variable queueReady;
  std::deque<kj::Function<void()>> jobs;
  bool stopping = false;

  Impl(std::string g, std::string w, SnapshotLimits l, RetentionPolicy r)
      : gitDir(std::move(g)), workDir(std::move(w)), retention(r), scanner(l) {}
  ~Impl();

  // Opens the repository on first use (creating it if missing): libgit2's start-up (it parses
  // the system's CA bundle, ~6 ms) and the open are not paid before the gateway accepts
  // clients. Then empties libgit2's trust store (emptyTrustStore in snapshots.c++).
  void readyLocked();
  void openOrCreateLocked();
  void openRepositoryLocked();
  int64_t lastStampLocked();
  int64_t nextStampLocked();
  Fd openWorkspace();
  ScanResult scanLocked();
  // With `scanned`, the scan the snapshot was made of is handed back.
  Snapshot takeLocked(const std::string& message, ScanResult* scanned = nullptr);
  Comparison compareLocked(const std::string& id);
  Restored restoreLocked(const std::string& id, const std::string& beforeMessage);
  std::vector<Skipped> restorePathsLocked(const std::string& id,
                                          const std::vector<std::string>& paths);
  std::vector<std::string> pruneLocked(int64_t now);
  bool pruneDue() const { return !prunedOnce || sincePrune >= retention.pruneEvery; }

  git_oid writeTreeLocked(const FlatTree& files, const std::string& manifest);
  CommitPtr lookupCommitLocked(const std::string& id);
  SnapshotTree treeOfLocked(const std::string& id);
  // If `id` was pruned by retention: what to tell the person.
  std::optional<std::string> prunedProblem(const std::string& id) const;
  void writeEntryLocked(int root, const std::string& path, const TreeEntry& entry);

  void post(kj::Function<void()> job);
  void workerLoop();
};

}  // namespace chitin::audit
