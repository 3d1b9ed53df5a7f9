// SPDX-License-Identifier: Apache-2.0
// One worker's stdout and stderr: the pipe the spawner gave it, read on the libuv loop and
// forwarded line by line to the supervisor's log under the worker's label, capped.
// Runs in: supervisor
//
// The worker is an attacker: its bytes never block the supervisor (the pipe is non-blocking
// and read only when the loop says it is readable), never reach the log raw (everything but
// printable ASCII is shown as \xNN, lines are cut at `maxLineBytes`), and never flood it: at
// most `logBytesPerWindow` per window are logged, the excess is dropped with one note, and once
// `readBytesPerWindow` have been read in a window the pipe is not read again until the window
// ends (the worker then blocks on its own writes; the supervisor does not).

#pragma once

#include <kj/io.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace chitin {

struct WorkerLogLimits {
  size_t logBytesPerWindow = 16 * 1024;
  size_t readBytesPerWindow = 1024 * 1024;
  uint64_t windowMs = 60 * 1000;
  size_t maxLineBytes = 512;
};

class WorkerLog {
 public:
  // `emit` receives each (escaped) line; the default logs it with spdlog as a warning.
  using Emit = std::function<void(const std::string& label, const std::string& line)>;

  WorkerLog(uv_loop_t* loop, kj::AutoCloseFd pipe, std::string label, WorkerLogLimits limits = {},
            Emit emit = nullptr);
  ~WorkerLog() noexcept(false);
  WorkerLog(const WorkerLog&) = delete;
  WorkerLog& operator=(const WorkerLog&) = delete;

  // What the worker wrote that was dropped (over the cap) and everything read so far.
  uint64_t droppedBytes() const { return dropped_; }
  uint64_t readBytes() const { return totalRead_; }
  bool ended() const { return ended_; }

  // `bytes` as a log line: printable ASCII kept, everything else \xNN.
  static std::string escape(const char* bytes, size_t size);

 private:
  struct Handles;  // uv handles; freed asynchronously after uv_close
  void onReadable();
  void resume();
  void take(const char* bytes, size_t size);
  void emitLine();
  void startWindowIfDue();

  uv_loop_t* loop_;
  kj::AutoCloseFd pipe_;
  std::string label_;
  WorkerLogLimits limits_;
  Emit emit_;
  Handles* handles_;
  std::string line_;
  bool lineCut_ = false;
  bool ended_ = false;
  bool paused_ = false;
  bool notedDrop_ = false;
  uint64_t windowStart_ = 0;
  size_t loggedInWindow_ = 0;
  size_t readInWindow_ = 0;
  uint64_t dropped_ = 0;
  uint64_t totalRead_ = 0;
};

}  // namespace chitin
