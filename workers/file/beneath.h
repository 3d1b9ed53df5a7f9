// SPDX-License-Identifier: Apache-2.0
// Opening, creating and atomically replacing files strictly beneath the workspace root fd.
// Runs in: worker (sandboxed)
//
// Every open goes through openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)
// relative to a directory fd, so even a symlink planted inside the workspace cannot lead out
// of it: the kernel refuses with EXDEV. Mutations additionally refuse symlinks altogether
// (RESOLVE_NO_SYMLINKS), so that what is changed is exactly the path the policy decided on.
// Unexpected errors are faults (exceptions); the errors a model can provoke with a path are
// turned into messages by describeOpenError().

#pragma once

#include <kj/io.h>
#include <kj/one-of.h>
#include <kj/string.h>
#include <sys/types.h>

namespace chitin {

// A failed result for the model, e.g. "file not found: \"notes/x.md\"".
struct FileFailure {
  kj::String message;
};

enum class Symlinks {
  FOLLOW_BENEATH,  // reading: symlinks are followed as long as they stay in the workspace
  REFUSE,          // writing and editing: any symlink on the way is refused
};

// openat2(dirFd, rel, ...) with the workspace resolve flags. Returns the fd, or the errno
// (positive) for the caller to describe. Retries EINTR and the EAGAIN that openat2 returns
// when a concurrent rename races the lookup.
kj::OneOf<kj::AutoCloseFd, int> openBeneath(int dirFd, kj::StringPtr rel, int flags,
                                            Symlinks symlinks, mode_t mode = 0);

// A message for an errno the model can cause through a path (not found, escapes the
// workspace, symlink, not a directory, permission, read-only, no space...). `rootFd` and
// `rel` let an ELOOP under Symlinks::REFUSE be told apart: a symlink leading out of the
// workspace is reported as an escape, any other as a refused symlink. Any other errno is a
// fault and throws.
FileFailure describeOpenError(int error, int rootFd, kj::StringPtr rel, Symlinks symlinks,
                              kj::StringPtr shownPath);

// Opens (O_PATH) the directory that holds `rel`, one component at a time with
// Symlinks::REFUSE. With `create`, missing directories are made (mode 0755) on the way.
// On success also returns the last component of `rel`.
struct ParentDir {
  kj::AutoCloseFd fd;
  kj::String name;
};
kj::OneOf<ParentDir, FileFailure> openParentDir(int rootFd, kj::StringPtr rel, bool create,
                                                kj::StringPtr shownPath);

// Replaces `name` in `dirFd` with `content`: a temporary file in the same directory, written,
// given `mode`, fsync()ed, then renameat() over `name` and the directory fsync()ed. Readers
// see the old file or the new one, never a mix; on any failure the old file is untouched and
// the temporary file removed.
kj::Maybe<FileFailure> replaceAtomically(int dirFd, kj::StringPtr name,
                                         kj::ArrayPtr<const char> content, mode_t mode,
                                         kj::StringPtr shownPath);

// The workspace root as an O_PATH directory fd. Opened before the worker locks down.
kj::AutoCloseFd openWorkspaceRoot(kj::StringPtr dir);

}  // namespace chitin
