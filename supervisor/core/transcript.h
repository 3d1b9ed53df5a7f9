// SPDX-License-Identifier: Apache-2.0
// Transcripts: one JSON-lines file per session key under $CHITIN_HOME/state/sessions/.
// Runs in: supervisor
//
// Written only by the supervisor, from what it proxied between the session worker, the model
// and the tools (never from what a worker reports). Each record is one write(2) on an O_APPEND
// descriptor followed by fdatasync, so a crash can at worst leave a torn last line, which the
// reader skips (and reports) instead of losing the file. appendAsync() leaves the fdatasync to
// libuv's thread pool and says when it is done; the agent core holds a run's result until
// everything the run recorded is on disk, so no reply is acknowledged before its transcript.

#pragma once

#include <nlohmann/json.hpp>
#include <uv.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace chitin {

struct TranscriptToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text as the model sent it
};

struct TranscriptEntry {
  std::string ts;  // RFC 3339 UTC
  std::string runId;
  std::string role;  // "user" | "assistant" | "tool" | "compaction" (compaction.h)
  std::string content;
  std::vector<TranscriptToolCall> toolCalls;  // assistant
  std::string toolCallId;                     // tool
  std::string toolName;                       // tool
  bool isError = false;                       // tool
  // Why this entry holds content from outside (a stranger's message, an untrusted file, or
  // anything the model said or a tool returned while such content was in its context); "" if
  // it does not. A session is tainted while such an entry is in the history it replays.
  std::string untrusted;
  // "memory-flush" for the prompt of the turn that runs just before a compaction; "" otherwise.
  std::string kind;
  // compaction: how many entries just before this one (not counting earlier compaction entries)
  // the model still sees as they are after the summary.
  uint64_t kept = 0;

  nlohmann::json toJson() const;
  static TranscriptEntry fromJson(const nlohmann::json& j);  // throws on a bad shape
};

struct TranscriptSummary {
  std::string key;
  uint64_t entries = 0;
  std::string updatedAt;
};

// Loading is cached per session (a turn loads its session's transcript, which only ever grows):
// the entries parsed so far are kept with the file's device, inode and the offset they end at,
// and the next load parses only what was appended after that offset. Any other change (another
// file under the name, a file shorter than the offset) parses the file anew. The cache holds at
// most `cacheBytes` of transcript (by file size), least recently loaded sessions dropped first;
// a transcript larger than that is parsed on every load.
class TranscriptStore {
 public:
  static constexpr size_t DEFAULT_CACHE_BYTES = 4 << 20;

  explicit TranscriptStore(std::string dir, size_t cacheBytes = DEFAULT_CACHE_BYTES);
  ~TranscriptStore();

  void append(const std::string& sessionKey, const TranscriptEntry& entry);
  // The record is written here, as by append() (a later load() sees it), and made durable on
  // libuv's thread pool: `synced` runs on `loop` with 0 once it is on disk, or with the errno
  // of a failed fdatasync. Records of one session stay in their order (one write each, on an
  // O_APPEND descriptor). Failing to open or write throws here, as append() does. `synced`
  // may run after this store is gone (it touches nothing of the store).
  void appendAsync(uv_loop_t* loop, const std::string& sessionKey, const TranscriptEntry& entry,
                   std::function<void(int error)> synced);

  // All readable entries, oldest first. `skipped` counts lines that did not parse (a torn
  // tail after a crash).
  std::vector<TranscriptEntry> load(const std::string& sessionKey, size_t* skipped = nullptr) const;

  std::vector<TranscriptSummary> list() const;

  // Moves the session's transcript to archive/<file name>.<UTC time>.jsonl (kept, no longer
  // loaded): the session starts over. Returns the archived file's name, or "" if there was none.
  std::string archive(const std::string& sessionKey);

  // File name for a key: percent-encoding of every byte outside [A-Za-z0-9._-], so keys map
  // one-to-one to names and never contain '/'.
  static std::string fileNameFor(const std::string& sessionKey);
  static std::string keyForFileName(const std::string& fileName);  // "" if not a transcript

 private:
  struct Cache;
  // Opens the session's file and writes the record (cutting a torn last line first); returns
  // the descriptor, not yet synced. Throws naming the file.
  int write(const std::string& sessionKey, const TranscriptEntry& entry, std::string& path);
  std::string dir_;
  std::unique_ptr<Cache> cache_;
};

std::string nowRfc3339();

}  // namespace chitin
