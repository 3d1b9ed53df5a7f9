// SPDX-License-Identifier: Apache-2.0
// The tamper-evident audit log: hash-chained JSON lines in `<dir>/audit.jsonl` (proto/audit.proto
// describes the record and the chain), plus the readers behind `chitin audit`.
// Runs in: supervisor (and the `chitin audit` command, read-only)
//
// Limitation an auditor must know: the last record is protected only once another follows it,
// and cutting the file short leaves a valid chain. `verify()` returns the head hash so it can be
// anchored outside the machine and compared later.

#pragma once

#include <stdint.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <kj/async.h>

#include "audit.pb.h"

namespace chitin::audit {

// The file inside the audit directory.
constexpr char LOG_FILE_NAME[] = "audit.jsonl";
// `prev` of the first record.
constexpr char GENESIS_HASH[] = "0000000000000000000000000000000000000000000000000000000000000000";

class AuditLog {
 public:
  // Opens (creating a 0700 dir / 0600 file) `<dir>/audit.jsonl` for appending, and takes an
  // exclusive flock() on it: two supervisors appending to one chain would fork it, so a second
  // open (in any process) throws. Reads the existing file's tail to recover the last seq and the
  // hash of the last line (the whole file only when its last line is not a record). A torn tail
  // (the file does not end in '\n': a crash mid-write) is cut off (it was never synced nor
  // acknowledged) and a LOG_RECOVERED record saying how many bytes were dropped is appended. The
  // whole chain as it was is checked on a thread of this object's (so start-up does not grow with
  // the log); one that does not verify is NOT repaired: appends continue from the last line, the
  // problem is logged loudly, and openProblem() says what it is. That check begins `verifyAfter`
  // after the open (the gateway's: once its start-up is over, which the check would otherwise
  // share two cores with). Throws std::runtime_error naming the path on I/O errors.
  static std::unique_ptr<AuditLog> open(
      const std::string& dir, std::chrono::milliseconds verifyAfter = std::chrono::milliseconds(0));
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Fills seq, time (now) and prev (overwriting what the caller set), and writes one line with a
  // single write(); if `sync`, fdatasync()s before returning. Returns the seq. Throws
  // std::runtime_error on I/O failure, after cutting off whatever part of the line reached the
  // file; the caller then refuses the effect (fail closed). If even that cut fails, the log
  // refuses every later append. Thread-safe.
  uint64_t append(Record record, bool sync = true);
  // The same, for a record whose loss must not stop anything (the effect it describes has
  // happened or been refused already): a failure is logged, and the seq is 0.
  uint64_t appendOrLog(Record record, bool sync = true) noexcept;
  // An fdatasync() for records appended with sync = false, off the caller's thread: it runs on
  // the log's sync thread, and the promise
  // (on the calling thread's KJ event loop) resolves once one that began after this call has
  // completed, so every record appended before the call is on disk; it is rejected, naming the
  // path, if that sync failed. Requests that come while a sync runs share the next one (group
  // commit: one sync for the records of several sessions). The event loop serves on meanwhile.
  // A closing log syncs once more for the requests still waiting, and answers them.
  kj::Promise<void> syncAsync();
  uint64_t lastSeq() const;
  // "" when the chain that was there at open verified; otherwise what `verify()` found. Waits for
  // that check to end.
  std::string openProblem() const;
  const std::string& path() const;

 private:
  AuditLog(std::string path, int fd);
  void recover();
  // The end of the check of the chain at open: logs the problem if there is one, then wakes
  // openProblem().
  void settleVerification(std::string problem);

  std::string path_;
  int fd_;
  mutable std::mutex mutex_;
  uint64_t lastSeq_ = 0;
  std::string lastHash_ = GENESIS_HASH;
  off_t size_ = 0;
  bool failed_ = false;  // a failed append could not be cut off: the file's tail is unknown
  // The check of the chain as it was at open (recover()), and what it found.
  std::thread verifier_;
  std::chrono::milliseconds verifyAfter_{0};
  std::atomic<bool> stopVerifying_{false};  // set under verifyMutex_, with verifyStopCv_ told
  mutable std::mutex verifyMutex_;
  std::condition_variable verifyStopCv_;
  mutable std::condition_variable verifiedCv_;
  bool verified_ = false;
  std::string openProblem_;
  // The sync thread (syncAsync), started on first use: it takes every request waiting when it
  // begins a sync, and answers them when it ends.
  void syncLoop();
  std::thread syncer_;
  std::mutex syncMutex_;
  std::condition_variable syncWanted_;
  std::vector<kj::Own<kj::CrossThreadPromiseFulfiller<void>>> syncWaiting_;
  bool stopSyncing_ = false;
};

struct VerifyResult {
  bool ok = true;
  uint64_t records = 0;  // lines that verified (all of them when ok)
  uint64_t badSeq = 0;   // seq of the first broken record, 0 if it has none (unparseable)
  size_t badLine = 0;    // 1-based line number of the first broken record
  std::string reason;
  std::string headHash;  // SHA-256 hex of the last line (GENESIS_HASH for an empty log)
  uint64_t headSeq = 0;  // seq of the last record
};

// Walks `<dir>/audit.jsonl`: each line parses as a Record, seq = previous + 1 (the first is 1),
// prev = SHA-256 hex of the previous line's exact bytes (genesis: 64 '0's). Reports the FIRST
// broken record. A missing file is not ok (a log that disappears is evidence of tampering); an
// empty one is. An incomplete last line (no '\n') is reported as broken.
VerifyResult verify(const std::string& dir);

struct Filter {
  std::optional<uint64_t> seq;
  std::string session;  // exact session key
  // Records at or after this time: RFC 3339 ("2024-05-01", "2024-05-01T12:00", with seconds,
  // fractions, "Z" or "+02:00"), or a duration back from now ("90s", "15m", "2h", "7d").
  std::string since;
  std::optional<Kind> kind;
};

// Records matching every set field of `filter`, in log order. A missing log reads as empty.
// Throws std::runtime_error on an unreadable file or a line that is not a Record (naming the
// line number), std::invalid_argument on a bad `since`.
std::vector<Record> read(const std::string& dir, const Filter& filter);

// The snapshot to roll back to: the TOOL_START record `seq` (which must carry a snapshot), or with
// seq unset the last TOOL_START that has one (only in `session` if given). Reads the log from its
// end and stops there (older lines are not read). Throws std::invalid_argument with a message for
// the user otherwise, std::runtime_error (naming it) for a line on the way that is not a record.
Record findSnapshotRecord(const std::string& dir, std::optional<uint64_t> seq,
                          const std::string& session = "");

// Helpers shared with the CLI.
std::string sha256Hex(std::string_view bytes);
std::string nowRfc3339();
// Normalises a `Filter::since` value to the log's own time format ("YYYY-MM-DDTHH:MM:SS.mmmZ",
// UTC), so that records compare as strings. Throws std::invalid_argument naming the value.
std::string normaliseSince(const std::string& since);
// One line of the log as JSON (what append() writes, minus the '\n'), and back. parseLine throws
// std::runtime_error with the parser's message.
std::string toLine(const Record& record);
Record parseLine(std::string_view line);

}  // namespace chitin::audit
