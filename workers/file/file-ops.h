// SPDX-License-Identifier: Apache-2.0
// The read, write and edit tools (OpenClaw's `read {path}`, `write {path, content}`,
// `edit {path, oldText, newText}`) as plain functions over a workspace root fd.
// Runs in: worker (sandboxed)
//
// Each takes the model's path as given, applies the lexical rules of common/workspace-path.h,
// then works beneath `rootFd` only (beneath.h). Everything the model can cause -- a bad path,
// a missing file, a binary file, an ambiguous edit -- comes back as a failed FileOutcome with a
// message naming the path; only faults (I/O errors, broken invariants) throw.

#pragma once

#include <kj/string.h>

namespace chitin {

struct FileOutcome {
  bool failed = false;
  kj::String text;         // what the model sees: the file text, or the failure message
  bool truncated = false;  // read only: the file was longer than the cap
};

// read returns at most this much of a file (a model context cannot use more in one go).
constexpr size_t READ_CAP_BYTES = 256 * 1024;
// edit loads the whole file; beyond this it refuses rather than risk the memory limit.
constexpr size_t EDIT_MAX_BYTES = 16 * 1024 * 1024;
// Mode of a file that write creates (an existing file keeps its permission bits).
constexpr unsigned NEW_FILE_MODE = 0644;

// The text of a regular UTF-8 file; longer files are cut at `cap` (on a character boundary)
// with a closing note. Binary files (NUL bytes or not UTF-8) fail with "binary file, N bytes".
FileOutcome readWorkspaceFile(int rootFd, kj::StringPtr path, size_t cap = READ_CAP_BYTES);

// Creates missing parent directories, then replaces the file atomically with `content`.
FileOutcome writeWorkspaceFile(int rootFd, kj::StringPtr path, kj::ArrayPtr<const char> content);

// Replaces the one occurrence of `oldText` with `newText`, atomically, keeping the file's
// permission bits. Zero or several occurrences fail and leave the file untouched.
FileOutcome editWorkspaceFile(int rootFd, kj::StringPtr path, kj::StringPtr oldText,
                              kj::StringPtr newText);

}  // namespace chitin
