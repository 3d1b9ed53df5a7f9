// SPDX-License-Identifier: Apache-2.0
// Workspace snapshots and rollback: commits of the agent's workspace in a git repository that
// lives outside it (libgit2), taken before every mutating tool call.
// Runs in: supervisor
//
// What a snapshot holds, exactly:
// - every regular file (content and the executable bit: git knows only 0644 and 0755) and every
//   symlink (as a link: its target text; never followed), whatever .gitignore says — no ignore
//   rules apply, and nothing goes through a git index or the workspace's own config;
// - NOT empty directories (git cannot record them): restore neither recreates nor deletes an
//   empty directory, except one that it emptied itself by deleting files;
// - NOT special files (fifos, sockets, devices): skipped, and left alone by restore;
// - NOT any entry named `.git`, at any depth: a workspace may hold the agent's own repositories
//   (`.git` dirs or gitlink files), and git cannot store a path component named `.git`. Their
//   files are outside snapshots: changesSince() does not list them and restore() does not touch
//   them, so after a rollback the agent's own repository metadata (HEAD, index, refs) may
//   describe files that were rolled back. (Deleting a whole directory that the snapshot does not
//   have removes any `.git` inside it too, as the directory is gone in the snapshot.)
//
// The repository is bare and `workDir` is only known to this object: no `.git` file is written
// into the workspace (libgit2's separate-workdir init would write one, and a sandboxed tool could
// repoint it), and no git config, hook or attribute from the workspace is ever read. Global and
// system git config are ignored too (libgit2's search paths are cleared once per process).
//
// Durability: libgit2 does not fsync objects here (GIT_OPT_ENABLE_FSYNC_GITDIR is off, as it
// would cost an fsync per object on every snapshot), so after a power loss a snapshot named by a
// synced audit record may be missing; restore() then fails with "not found" rather than
// restoring something else.
//
// Not thread-safe: one Snapshots per workspace, used from one thread.

#pragma once

#include <memory>
#include <string>
#include <vector>

#include "audit.pb.h"

namespace chitin::audit {

// One file that differs. Git blob ids (hex) in the snapshot repository; "" = absent. A change of
// only the executable bit lists the file with equal ids.
struct FileChange {
  std::string path, before, after;
};

// Copies `changes` into record.files (the proto's Record.FileChange).
void addFiles(Record& record, const std::vector<FileChange>& changes);

class Snapshots {
 public:
  // gitDir: a bare git repository OUTSIDE the workspace (e.g. $CHITIN_HOME/state/snapshots/
  // main.git), so a sandboxed tool, which can write the workspace, cannot rewrite history;
  // created (0700, HEAD -> refs/heads/main) if missing. workDir: the workspace; it must exist
  // when a method is called. Throws std::runtime_error if gitDir exists but is not a repository.
  Snapshots(std::string gitDir, std::string workDir);
  ~Snapshots();
  Snapshots(const Snapshots&) = delete;
  Snapshots& operator=(const Snapshots&) = delete;

  // Commits the workspace exactly as it is now (see the top of this file for what that covers)
  // on refs/heads/main, with committer "chitin <chitin@localhost>". If nothing changed since the
  // last snapshot, returns that commit's id instead of adding an identical one. Returns the
  // commit id (40 hex).
  std::string snapshot(const std::string& message);

  // Files that differ between commit `id` and the workspace now (added, removed, modified),
  // sorted by path; `before` is the commit's blob, `after` the workspace's. Writes nothing.
  std::vector<FileChange> changesSince(const std::string& id);

  // Makes the workspace exactly commit `id`'s tree: rewrites changed files (atomically, via a
  // temporary file and rename), recreates removed ones, deletes files the commit does not have.
  // Never follows a symlink in the workspace: every path is walked with O_NOFOLLOW from the
  // workspace root, and a symlink (or file) found where the commit has a directory is replaced
  // by a real directory. Returns the changes made (`before` = the workspace's blob, `after` =
  // the commit's). The replaced contents are not kept: call snapshot() first to make the
  // rollback itself undoable.
  std::vector<FileChange> restore(const std::string& id);

  // Puts one file back as it is in commit `id`: rewritten like restore() does, or removed if the
  // commit does not have it. Nothing else in the workspace is touched.
  void restorePath(const std::string& id, const std::string& path);

  const std::string& gitDir() const;
  const std::string& workDir() const;

  // Accepted ids: a full or abbreviated commit id, or anything git_revparse_single() takes
  // ("HEAD~2"), which must name a commit.

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace chitin::audit
