// SPDX-License-Identifier: Apache-2.0
// The memory index: a full-text index (SQLite FTS5, BM25 ranking) over the agent's memory files
// (`MEMORY.md` and `memory/**.md`, common/memory-path.h; found and read by memory-files.h).
// Runs in: the memory worker (sandboxed; workers/memory/memory-main.c++), and its tests.
//
// The index is derived data, written only by this code, and never trusted: it lives in the
// worker's state directory, a missing file is built anew, and a file that is not a valid index of
// this schema version is deleted and built anew. Before every answer it is brought up to date
// with the workspace (a file whose change time, size or inode differ from what the walk's stat
// says is read again; its chunks are replaced only when its content hash differs), unless the
// supervisor's watch says nothing changed since the last walk (update()'s `sync`). The
// workspace is only read (memory-files.h: nothing there follows a symlink).
//
// Checking the index without reading all of it on every call. Every open makes the cheap checks
// (the schema version; exactly the schema's tables, no view or trigger; our tables' definitions
// as written). The full check (`PRAGMA quick_check` and FTS5's integrity-check, which read the
// whole file, and the counts kept in `meta` against the tables) runs only when the file is not
// the one this code last wrote or checked: after a full check passes and after each commit,
// `<index>.verified` records the file's device, inode, size, mtime (ns) and SQLite's file change
// counter (header offset 24), and an open whose file differs in any of them checks it in full.
// Damage the stamp cannot see (a disk error, a write that restores the mtime) is caught on use:
// a statement that fails with SQLITE_CORRUPT or SQLITE_NOTADB deletes the index and rebuilds it,
// once per MemoryIndex, and the call goes on with the new index.
// The stamp is for accidents (a truncated copy, a restored backup, a disk error), not for an
// attacker who can write /state: they could forge the stamp too, and a full check would not stop
// a crafted file either. What does is SQLite's hardening, on for every open: defensive mode
// (no writable schema, read-only shadow tables), no triggers or views, `trusted_schema=OFF` (no
// SQL function with side effects from the schema), `cell_size_check=ON` (b-tree cells checked as
// pages are read).
//
// Files, chunks and the last update are kept in `meta`, changed in the same transaction as the
// files they count, so an answer's counts read one small table instead of counting FTS5 rows.
// Likewise `scan` holds what `files` says of every file but its hash, packed in one BLOB in the
// order the walk met them: an unchanged scan reads one value and compares each walked file with
// the next record, where decoding 10,000 rows cost as much as the walk's 10,000 stats. The full
// check compares the two tables.
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
#include <utility>
#include <vector>

#include "memory-files.h"

namespace chitin {

struct MemoryHit {
  std::string path;  // workspace-relative, clean
  uint32_t startLine = 0;
  uint32_t endLine = 0;  // inclusive, 1-based
  std::string snippet;   // the matching words in **bold**; "…" where text was left out
  // Keyword ranking: BM25, lower is better (SQLite's sign). Hybrid ranking (searchHybrid):
  // the combined score, 0..1, higher is better.
  double score = 0;
  int64_t chunk = 0;  // the chunk's rowid in the index
};

// A chunk the index holds no vector for yet (chunksToEmbed()).
struct ChunkToEmbed {
  std::string hash;  // chunkHash(text)
  std::string text;
};

// The query's and the chunks' vectors are combined as VECTOR_WEIGHT x cosine similarity +
// (1 - VECTOR_WEIGHT) x the BM25 score scaled to 0..1 within the keyword candidates.
struct HybridWeights {
  double vectorWeight = 0.7;
  uint32_t candidateFactor = 4;  // each side brings maxResults x this many candidates
  // A chunk that shares no word with the query is a hit only at this similarity or above.
  double minVectorOnlySimilarity = 0.35;
};

// The supervisor's watch on the memory files, as memory_search passes it (tool.capnp
// MemorySearchArgs): epoch 0 = none.
struct WalkSync {
  uint64_t epoch = 0;
  uint64_t generation = 0;
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
  bool walked = true;          // update(): false when `sync` let it skip the walk
};

class MemoryIndex {
 public:
  static constexpr int SCHEMA_VERSION = 4;
  static constexpr uint32_t CHUNK_MAX_LINES = 12;
  static constexpr uint64_t MAX_FILE_BYTES = MAX_MEMORY_FILE_BYTES;  // a larger one is skipped
  static constexpr uint64_t MAX_FILES = MAX_MEMORY_FILES;
  static constexpr size_t MAX_PATH_BYTES = 1024;  // a longer path is skipped (tool.capnp's bound)
  // How long a MemoryIndex waits for another process's to finish (the worker's wall clock is
  // 120 s): past it the constructor throws, naming the lock.
  static constexpr uint32_t LOCK_TIMEOUT_MS = 90000;

  // Takes the index's lock (waiting at most `lockTimeoutMs`), then opens `indexPath`, creating it
  // when missing and replacing it when it is not a valid index (rebuiltBecause() says which);
  // checks it in full only when its stamp does not match (fullCheckDone()).
  // Throws std::runtime_error naming the path when the lock is not had in time or the index
  // cannot be created at all.
  explicit MemoryIndex(std::string indexPath, uint32_t lockTimeoutMs = LOCK_TIMEOUT_MS);
  ~MemoryIndex();
  MemoryIndex(const MemoryIndex&) = delete;
  MemoryIndex& operator=(const MemoryIndex&) = delete;

  // Brings the index up to date with the memory files beneath `rootFd` (the workspace root,
  // any fd that names the directory), in one transaction. Remembers `rootFd` (it must outlive
  // this index): a search that finds the index damaged rebuilds it from there.
  // With a `sync` (epoch != 0): when the last walk recorded this same epoch and generation less
  // than WALK_EVERY_SECONDS ago, the files are taken as they were then and not walked (the
  // supervisor's watch saw no change since: supervisor/core/memory-watch.h); otherwise the walk
  // runs and records the pair. Without one, the walk runs and records none.
  MemoryStats update(int rootFd, WalkSync sync = {});
  static constexpr int64_t WALK_EVERY_SECONDS = 300;  // tool.capnp memoryWalkEverySeconds
  // What the index holds and how much of it is stale, without changing it.
  MemoryStats status(int rootFd);
  // What the index holds (files, chunks, size, last change), without looking at the files.
  MemoryStats counts();
  // The best `maxResults` chunks for the words of `query` (all words first; when no chunk has
  // them all, any of them). Throws std::invalid_argument when `query` has no word at all.
  std::vector<MemoryHit> search(const std::string& query, uint32_t maxResults);

  // Embeddings (memory-vectors.c++). The index holds one model's vectors, one per distinct
  // chunk text, scaled to length 1; an update drops those of texts no chunk holds any more.
  //
  // Up to `limit` chunks without a vector under `model`, one per distinct text (all of them
  // when the index holds another model's). Once none is left, later calls answer at once until
  // the chunks change.
  std::vector<ChunkToEmbed> chunksToEmbed(const std::string& model, uint32_t limit);
  // Stores `vectors[i]` for `chunks[i]` in one transaction; vectors of another model, or of
  // another dimension, are dropped first. Throws std::invalid_argument on a count mismatch, or
  // an empty, zero or non-finite vector, or vectors of mixed dimensions.
  void putVectors(const std::string& model, const std::vector<ChunkToEmbed>& chunks,
                  const std::vector<std::vector<float>>& vectors);
  // Chunks with a vector under `model`.
  uint64_t embeddedChunks(const std::string& model);
  // The model whose vectors the index holds, and how many (nothing when it holds none).
  std::vector<std::pair<std::string, uint64_t>> vectorCounts();
  // The best `maxResults` chunks by keyword and meaning together: `queryVector` is `query`'s
  // embedding under `model`. Chunks without a vector rank by their keywords alone. Throws
  // std::invalid_argument when `queryVector` is empty or not finite.
  std::vector<MemoryHit> searchHybrid(const std::string& query,
                                      const std::vector<float>& queryVector,
                                      const std::string& model, uint32_t maxResults,
                                      const HybridWeights& weights = {});

  const std::string& rebuiltBecause() const { return rebuiltBecause_; }
  // Whether opening this index read all of it (quick_check and FTS5's integrity-check): the
  // stamp was missing or did not match the file.
  bool fullCheckDone() const { return fullCheckDone_; }

 private:
  void lock(uint32_t timeoutMs);
  void open();
  void openDatabase();
  void recreate(const std::string& why);
  void createSchema();
  std::string cheapCheck();
  std::string fullCheck();
  std::string fileIdentity();
  void writeStamp();
  void exec(const char* sql);
  uint64_t countOf(const char* sql);
  MemoryStats updateOnce(int rootFd, WalkSync sync);
  MemoryStats statusOnce(int rootFd);
  MemoryStats readCounts();
  std::vector<MemoryHit> query(const std::string& match, uint32_t maxResults);
  template <typename F>
  auto rebuildingOnDamage(bool refill, F&& use) -> decltype(use());

  std::string path_;
  int lockFd_ = -1;
  sqlite3* db_ = nullptr;
  std::string rebuiltBecause_;
  bool fullCheckDone_ = false;
  bool rebuiltOnDamage_ = false;
  int rootFd_ = -1;  // the last update()'s, for a rebuild on damage
};

// The hash a chunk's vector is stored under (change detection, not security).
std::string chunkHash(const std::string& text);

// The FTS5 query for the words of `text` (letters, digits and the characters FTS5's unicode61
// tokenizer keeps together), each quoted, joined with `joiner` (" " = all, " OR " = any).
// "" when there is no word.
std::string ftsQuery(const std::string& text, const char* joiner);

}  // namespace chitin
