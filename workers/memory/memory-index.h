// SPDX-License-Identifier: Apache-2.0
// The memory index: a full-text index (SQLite FTS5, BM25 ranking) over the agent's memory files
// (`MEMORY.md` and `memory/**.md`, common/memory-path.h), and reading lines of one of them.
// Runs in: the memory worker (sandboxed; workers/memory/memory-main.c++), and its tests.
//
// The index is derived and never trusted: it lives in the worker's state directory, a missing
// file is built anew, a file that is not a readable index of this schema version is deleted and
// built anew, and before every answer it is brought up to date with the workspace (a file whose
// change time or size differ is read again; its chunks are replaced only when its content hash
// differs). The workspace is only read: every memory file is opened beneath the workspace root
// without following symlinks (a symlink is not a memory file and is skipped).
//
// Files are indexed in chunks: runs of non-blank lines (a paragraph, a list), cut at
// CHUNK_MAX_LINES, so a hit names the lines it came from.
//
// Two processes may use one index at once: the gateway's memory worker and the one `chitin
// memory` starts, each in its own sandbox with the same state directory bound in. A MemoryIndex
// holds an exclusive flock() on `<index>.lock` from before it opens the index until it is
// destroyed, so one memory call at a time reads, rebuilds or updates an index: a rebuild never
// deletes a file another process has open, and an update never waits on SQLite's busy handler.
// SQLite's own locking (rollback journal, a busy timeout) stays underneath, for anything else
// that opens the file (the sqlite3 shell).

#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

namespace chitin {

struct MemoryHit {
  std::string path;  // workspace-relative, clean
  uint32_t startLine = 0;
  uint32_t endLine = 0;  // inclusive, 1-based
  std::string snippet;   // the matching words in **bold**; "…" where text was left out
  double score = 0;      // BM25: lower is better (SQLite's sign)
};

struct MemoryStats {
  uint64_t files = 0;   // memory files in the index
  uint64_t chunks = 0;  // indexed chunks
  uint64_t indexBytes = 0;
  // What the last update did (update()), or what it would do (status(): `stale` = added +
  // changed + removed, counted by change time and size alone).
  uint64_t added = 0, changed = 0, removed = 0, unchanged = 0, stale = 0;
  uint64_t skipped = 0;        // not indexed: symlinks, not regular, too large, unreadable
  std::string rebuiltBecause;  // why the index file was (re)created this time, or ""
  int64_t updatedAt = 0;       // when an update last finished (Unix seconds), 0 = never
};

class MemoryIndex {
 public:
  static constexpr int SCHEMA_VERSION = 2;
  static constexpr uint32_t CHUNK_MAX_LINES = 12;
  static constexpr uint64_t MAX_FILE_BYTES = 4 << 20;  // a larger memory file is skipped
  static constexpr uint64_t MAX_FILES = 50000;
  static constexpr size_t MAX_PATH_BYTES = 1024;  // a longer path is skipped (tool.capnp's bound)
  // How long a MemoryIndex waits for another process's to finish (the worker's wall clock is
  // 120 s): past it the constructor throws, naming the lock.
  static constexpr uint32_t LOCK_TIMEOUT_MS = 90000;

  // Takes the index's lock (waiting at most `lockTimeoutMs`), then opens `indexPath`, creating it
  // when missing and replacing it when it is not a valid index (rebuiltBecause() says which).
  // Throws std::runtime_error naming the path when the lock is not had in time or the index
  // cannot be created at all.
  explicit MemoryIndex(std::string indexPath, uint32_t lockTimeoutMs = LOCK_TIMEOUT_MS);
  ~MemoryIndex();
  MemoryIndex(const MemoryIndex&) = delete;
  MemoryIndex& operator=(const MemoryIndex&) = delete;

  // Brings the index up to date with the memory files beneath `rootFd` (the workspace root,
  // any fd that names the directory), in one transaction.
  MemoryStats update(int rootFd);
  // What the index holds and how much of it is stale, without changing it.
  MemoryStats status(int rootFd);
  // What the index holds (files, chunks, size, last change), without looking at the files.
  MemoryStats counts();
  // The best `maxResults` chunks for the words of `query` (all words first; when no chunk has
  // them all, any of them). Throws std::invalid_argument when `query` has no word at all.
  std::vector<MemoryHit> search(const std::string& query, uint32_t maxResults);

  const std::string& rebuiltBecause() const { return rebuiltBecause_; }

 private:
  void lock(uint32_t timeoutMs);
  void open();
  void createSchema();
  std::string validate();
  void exec(const char* sql);
  uint64_t countOf(const char* sql);
  std::vector<MemoryHit> query(const std::string& match, uint32_t maxResults);

  std::string path_;
  int lockFd_ = -1;
  sqlite3* db_ = nullptr;
  std::string rebuiltBecause_;
};

// The memory files beneath `rootFd` that the index covers, sorted: clean relative paths.
// Directories named by symlinks are not entered.
std::vector<std::string> listMemoryFiles(int rootFd);

// Lines `from`..`from + lines - 1` of memory file `path` beneath `rootFd`, each prefixed with
// its number and a tab. Sets `error` (naming the path) and returns "" when the path is not a
// memory file, cannot be opened without following a symlink, or `from` is past the end.
std::string readMemoryLines(int rootFd, const std::string& path, uint32_t from, uint32_t lines,
                            std::string& error);

// The FTS5 query for the words of `text` (letters, digits and the characters FTS5's unicode61
// tokenizer keeps together), each quoted, joined with `joiner` (" " = all, " OR " = any).
// "" when there is no word.
std::string ftsQuery(const std::string& text, const char* joiner);

// The first `max` bytes of `text` at most, cut at a character boundary (the answer's bounds,
// tool.capnp).
std::string cutAtCharacter(const std::string& text, size_t max);

// memoryGet's numbered `lines` within `max` bytes: whole lines while they fit (a first line longer
// than that cut at a character), then a last line saying where the cut fell.
std::string boundedLines(const std::string& lines, size_t max);

}  // namespace chitin
