// SPDX-License-Identifier: Apache-2.0
// Workspace snapshots and rollback: commits of the agent's workspace in a git repository that
// lives outside it (libgit2), taken before every mutating tool call, off the event loop.
// Runs in: supervisor
//
// What a snapshot holds, exactly:
// - every regular file (content and the executable bit: git knows only 0644 and 0755) and every
//   symlink (as a link: its target text; never followed), whatever .gitignore says — no ignore
//   rules apply, and nothing goes through a git index or the workspace's own config;
// - `.git` directories and gitlink files too, at any depth, like any other bytes: their names are
//   stored encoded (snapshot-names.h), so a write into a workspace repository is rolled back.
//   Only this repository's own config is read: the workspace's repositories are never opened as
//   repositories, so no config, hook or attribute in them is ever read by libgit2;
// - NOT empty directories (git cannot record them): restore neither recreates nor deletes an
//   empty directory, except one that it emptied itself by deleting files;
// - NOT what it skipped, and it says so: the snapshot's manifest lists every entry left out and
//   why — unreadable, deeper than `maxDepth`, over the entry, per-file or per-snapshot byte
//   limits, out of time, vanished or changing while read, or special (fifo, socket, device).
//   A skipped entry never fails the snapshot. Restore leaves a skipped path (and everything under
//   it) as it finds it and reports it; a snapshot marked incomplete (stopped by the time limit,
//   or more skips than `maxSkipped`) makes restore delete nothing that the snapshot lacks.
//
// Bounds (SnapshotLimits): the walk is iterative with at most three descriptors open (the root,
// one directory, one file; directories are reopened from the root with openat2 RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS), so neither depth nor width of the workspace costs stack or descriptors.
// Files are streamed into the object database in 256 KiB chunks, never read whole. A stat cache
// (dev, inode, size, mode, mtime, ctime: git's "racy" rule) means an unchanged file is neither
// read nor hashed again, and a hard-linked inode is read once per scan, so an unchanged
// workspace costs one lstat per entry whatever its size. Sparse files count by their apparent
// size against maxFileBytes, so a huge sparse file is skipped, not read.
//
// History and retention: each snapshot is a parentless commit named by refs/snapshots/<stamp>
// (nanoseconds since the epoch, made to grow; refs/heads/main is the newest), so ids never change
// when old ones go. prune() keeps the
// newest `keepSnapshots` younger than `keepDays` (always the newest one), writes everything they
// reach into one new pack (git_packbuilder), deletes every other pack and loose object (libgit2
// has no gc), and, while the pack is over `maxBytes`, halves what it keeps. Pruned ids are
// appended to <gitDir>/chitin-pruned, so restoring one says it was pruned, not "not found".
// Chosen over rewriting history (re-parenting the oldest kept commit would change every later
// commit's id, and the audit log names them) and over repository generations (the same copy of
// reachable objects, plus a second repository to keep track of).
//
// The repository is bare and `workDir` is only known to this object: no `.git` file is written
// into the workspace, and global and system git config are ignored (libgit2's search paths are
// cleared once per process).
//
// Durability: libgit2 does not fsync objects here (GIT_OPT_ENABLE_FSYNC_GITDIR is off, as it
// would cost an fsync per object on every snapshot), so after a power loss a snapshot named by a
// synced audit record may be missing; restore() then fails with "not found" rather than
// restoring something else.
//
// Threads: the *Async methods run the work on one thread of this object's own (started on first
// use; all signals blocked), one job at a time, and fulfil a KJ promise on the calling thread's
// event loop (a cross-thread fulfiller: KJ's wake-up eventfd is in the epoll set the supervisor's
// libuv loop watches). The synchronous methods take the same lock, so exactly one thread uses the
// libgit2 repository at any time. Destroy this object after every promise it returned.

#pragma once

#include <kj/async.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "audit.pb.h"
#include "snapshot-names.h"

namespace chitin::audit {

// One file that differs. Git blob ids (hex) in the snapshot repository; "" = absent. A change of
// only the executable bit lists the file with equal ids.
struct FileChange {
  std::string path, before, after;
};

struct SnapshotLimits {
  uint32_t maxDepth = 256;                 // directory levels below the workspace root
  uint64_t maxEntries = 200'000;           // directory entries listed per scan
  uint64_t maxFileBytes = 64ull << 20;     // a larger file is skipped (by apparent size)
  uint64_t maxSnapshotBytes = 1ull << 30;  // bytes read per scan (files not in the stat cache)
  uint32_t timeLimitMs = 60'000;           // per scan; what is left is skipped
  uint32_t maxSkipped = 1'000;             // skips listed; beyond, the snapshot is incomplete
};

struct RetentionPolicy {
  uint32_t keepDays = 30;
  uint32_t keepSnapshots = 1'000;
  uint64_t maxBytes = 2ull << 30;  // the packed store; the newest snapshot is kept regardless
  uint32_t pruneEvery = 64;        // snapshots between automatic prunes (async path)
};

struct Snapshot {
  std::string id;  // commit id, 40 hex
  std::vector<Skipped> skipped;
  bool incomplete = false;  // see the top of this file
  uint64_t bytesRead = 0;   // file bytes the scan read (stat-cache misses)
  uint64_t entries = 0;     // directory entries it listed
};

struct Comparison {
  std::vector<FileChange> files;  // sorted by path; paths either side skipped are not listed
  std::vector<Skipped> skipped;   // what the scan after the call could not see
  bool incomplete = false;
};

struct Restored {
  bool pruned = false;               // the snapshot was removed by retention: nothing was done
  std::string problem;               // with `pruned`: what to tell the person
  std::string before;                // the snapshot of the state that was replaced
  std::vector<FileChange> files;     // the changes made (`before` = workspace, `after` = snapshot)
  std::vector<Skipped> notRestored;  // paths left as they were, and why
};

// A workspace path as the audit log and the gateway show it: as it is if it is valid UTF-8
// (protobuf would silently drop the bytes of a string field that is not), else with each
// malformed byte written as \xNN. The snapshot trees keep the exact bytes.
std::string printablePath(const std::string& path);

// Copies `changes` into record.files, and `skipped` into record.skipped (the first 100; the
// detail-friendly rest is counted in the last entry), marking an incomplete scan.
void addFiles(Record& record, const std::vector<FileChange>& changes);
void addSkipped(Record& record, const std::vector<Skipped>& skipped, bool incomplete);

class Snapshots {
 public:
  // gitDir: a bare git repository OUTSIDE the workspace (e.g. $CHITIN_HOME/state/snapshots/
  // main.git), so a sandboxed tool, which can write the workspace, cannot rewrite history;
  // created (0700, HEAD -> refs/heads/main) here if missing. An existing one is opened when
  // first used (or by openInBackground()), so constructing costs a stat; every method throws
  // std::runtime_error if gitDir is not a repository. workDir: the workspace; it must exist
  // when a method is called.
  Snapshots(std::string gitDir, std::string workDir, SnapshotLimits limits = {},
            RetentionPolicy retention = {});
  ~Snapshots();
  Snapshots(const Snapshots&) = delete;
  Snapshots& operator=(const Snapshots&) = delete;

  // Commits the workspace as it is now (see the top of this file for what that covers), with
  // committer "chitin <chitin@localhost>". If nothing changed since the last snapshot, returns
  // that commit instead of adding an identical one. Throws only if the repository cannot be
  // written or the workspace root cannot be opened; a skipped entry is not an error.
  Snapshot take(const std::string& message);

  // Files that differ between snapshot `id` and the workspace now. Stores the workspace's new
  // blobs (so the next snapshot need not read them again) but no commit.
  Comparison compare(const std::string& id);

  // Makes the workspace snapshot `id`'s tree as far as it can: first snapshots the current state
  // (`beforeMessage`; so a rollback can itself be undone), then rewrites changed files
  // (atomically, via a temporary file and rename), recreates removed ones and deletes files the
  // snapshot does not have. Never follows a symlink in the workspace: every path is walked with
  // O_NOFOLLOW from the workspace root, and a symlink (or file) found where the snapshot has a
  // directory is replaced by a real directory. Never writes an entry the snapshot does not hold
  // (so no `.git` appears that was not there). An entry it cannot write or remove is reported
  // in notRestored and the rest goes on. Throws for an unknown id.
  Restored restore(const std::string& id, const std::string& beforeMessage);

  // Applies the retention policy now (see the top of this file); returns the ids pruned.
  std::vector<std::string> prune(int64_t nowUnixSeconds);

  // The same, run on this object's thread (see "Threads" above). takeAsync also prunes, after
  // fulfilling, every `pruneEvery` snapshots and on the first one after opening.
  kj::Promise<Snapshot> takeAsync(std::string message);
  kj::Promise<Comparison> compareAsync(std::string id);
  kj::Promise<Restored> restoreAsync(std::string id, std::string beforeMessage);

  // Puts just these paths back as they are in snapshot `id`: rewritten like restore() does, or
  // removed if the snapshot does not have them (a path the snapshot skipped is left alone).
  // Nothing else in the workspace is touched. Returns the paths it could not put back, and why.
  std::vector<Skipped> restorePaths(const std::string& id, const std::vector<std::string>& paths);
  kj::Promise<std::vector<Skipped>> restorePathsAsync(std::string id,
                                                      std::vector<std::string> paths);

  const std::string& gitDir() const;
  const std::string& workDir() const;

  // Opens the repository on this object's thread now, so the first snapshot need not; a failure
  // is logged, and the snapshots that follow try again (and throw). Only the first call does
  // anything, so it can be made wherever a snapshot may soon be wanted.
  void openInBackground();

  // Accepted ids: a full or abbreviated commit id, or anything git_revparse_single() takes
  // ("HEAD" is the newest snapshot), which must name a commit.

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chitin::audit
