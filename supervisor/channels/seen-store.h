// SPDX-License-Identifier: Apache-2.0
// The message ids one channel account has delivered: so that nothing is answered twice across
// reconnects, worker restarts and gateway restarts.
// Runs in: supervisor
//
// A worker persists its progress (a poll offset, an IMAP UID) only after InboundSink.message
// returns, so after a crash it delivers again what it had not yet confirmed; this store is how
// the supervisor recognises the repeat. It lives in $CHITIN_HOME/state/channel-seen/, which no
// worker can reach (a worker that could edit it could make the supervisor answer a message
// twice, or never). One line per message, "<chatId> <messageId>\n", appended, and
// fdatasync()ed before the worker is told the message was taken (the router starts its run
// beside the sync, on libuv's pool, so no disk wait holds the loop). Bounded: the newest `capacity`
// ids are kept; the file is rewritten (atomically) with those when it reaches twice that. A torn
// last line (a crash mid-append) is cut off at open: that message was never accepted, so it comes
// again.

#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <unordered_set>

typedef struct uv_loop_s uv_loop_t;

namespace chitin::channels {

class SeenStore {
 public:
  static constexpr size_t DEFAULT_CAPACITY = 20000;

  // Opens or creates (0600) `path`. Throws std::runtime_error naming it when it cannot.
  explicit SeenStore(std::string path, size_t capacity = DEFAULT_CAPACITY);
  ~SeenStore();
  SeenStore(const SeenStore&) = delete;
  SeenStore& operator=(const SeenStore&) = delete;

  // Ids are printable ASCII without spaces (the router checks them before they get here).
  bool contains(const std::string& chatId, const std::string& messageId) const;

  // Appends the id (one write) and remembers it. Throws std::runtime_error on a write error (no
  // part of the line then stays in the file, and the worker delivers the message again later).
  // Durable once a sync() or syncAsync() begun after it has succeeded.
  void record(const std::string& chatId, const std::string& messageId);

  // Makes every id recorded so far durable. Throws std::runtime_error naming the file.
  void sync();
  // The same off the calling thread: fdatasync on libuv's pool, on a duplicate of the file's
  // descriptor (a compaction meanwhile replaces the file and syncs the new one itself), then
  // `synced(0 or an errno)` on the loop's thread. A failed sync leaves the ids remembered: a
  // second delivery is still a duplicate, only a restart may not know it.
  void syncAsync(uv_loop_t* loop, std::function<void(int error)> synced);

  size_t size() const { return order_.size(); }
  const std::string& path() const { return path_; }

 private:
  void remember(std::string key);
  void compact();
  void openForAppend();

  std::string path_;
  size_t capacity_;
  int fd_ = -1;
  size_t lines_ = 0;  // in the file, including those no longer remembered
  size_t bytes_ = 0;  // the file's length: everything in it is acknowledged
  std::deque<std::string> order_;
  std::unordered_set<std::string> keys_;
};

}  // namespace chitin::channels
