// SPDX-License-Identifier: Apache-2.0
// The memory files on the workspace side: finding them (one walk, one lstat-like stat each),
// opening one only as the regular file the walk saw, and memory_get's numbered lines.
// Runs in: the memory worker (sandboxed; workers/memory/memory-main.c++), and its tests.
//
// Nothing here follows a symlink: directories are opened with O_NOFOLLOW beneath the workspace
// root, entries are stat'ed with AT_SYMLINK_NOFOLLOW, and a file is opened relative to its
// directory with O_NOFOLLOW. A symlink is never a memory file: the walk reports it (its stat
// says S_ISLNK) so that callers can count it as skipped, and never enters or opens it.

#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <string>

namespace chitin {

// One memory file the walk found. Valid during the visit only (dirFd is closed after it).
struct FoundFile {
  int dirFd;                // its directory, opened without following symlinks
  const char* name;         // its name in that directory
  const std::string& path;  // workspace-relative and clean, e.g. "memory/2026-12-01.md"
  const struct stat& st;    // fstatat(dirFd, name, AT_SYMLINK_NOFOLLOW): a symlink is S_ISLNK
};

// Calls `visit` for `MEMORY.md` and each `*.md` beneath `memory/` (common/memory-path.h) under
// `rootFd`, whatever their type, at most MAX_FILES of them, in directory order (not sorted).
// Directories named by symlinks are not entered.
void forEachMemoryFile(int rootFd, const std::function<void(const FoundFile&)>& visit);
constexpr uint64_t MAX_MEMORY_FILES = 50000;
constexpr uint64_t MAX_MEMORY_FILE_BYTES = 4 << 20;  // a larger memory file is not read

// `file` opened for reading (non-blocking, close-on-exec), or -1 when it is no longer the
// regular file the walk saw: replaced by a symlink (O_NOFOLLOW refuses it), by another file or
// by anything else (fstat names another device or inode, or not a regular file).
int openFoundFile(const FoundFile& file);

// All of `fd` into `out`; false on a read error or when it holds more than `limit` bytes.
bool readAll(int fd, uint64_t limit, std::string& out);

// Lines `from`..`from + lines - 1` of memory file `path` beneath `rootFd`, each prefixed with
// its number and a tab. Sets `error` (naming the path) and returns "" when the path is not a
// memory file, cannot be opened without following a symlink, or `from` is past the end.
std::string readMemoryLines(int rootFd, const std::string& path, uint32_t from, uint32_t lines,
                            std::string& error);

// The first `max` bytes of `text` at most, cut at a character boundary (the answer's bounds,
// tool.capnp).
std::string cutAtCharacter(const std::string& text, size_t max);

// memoryGet's numbered `lines` within `max` bytes: whole lines while they fit (a first line longer
// than that cut at a character), then a last line saying where the cut fell.
std::string boundedLines(const std::string& lines, size_t max);

}  // namespace chitin
