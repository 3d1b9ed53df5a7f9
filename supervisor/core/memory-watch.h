// SPDX-License-Identifier: Apache-2.0
// Whether an agent's memory files may have changed since a point in time, so memory_search can
// skip its walk (a stat per note: at 10,000 notes most of a search's cost) when they cannot have.
// Runs in: supervisor
//
// An inotify instance watches the workspace root (for `MEMORY.md` and `memory` only) and every
// directory beneath `memory/`. Each event that could touch a memory file (a write, a close after
// writing, a create, a delete, a rename, an attribute change), a new or vanished directory, and a
// lost event (the kernel's queue overflowed) advances `generation`. The memory worker records the
// (epoch, generation) it last walked at in its index; a search whose pair is the same skips the
// walk (workers/memory/memory-index.h). The epoch is random per MemoryWatch, so a restarted
// supervisor, or `chitin memory` (which passes none), never matches an older record.
//
// Events are read when asked (current()), not on the loop: a write that returned before the
// call asks has queued its event by then (inotify queues it inside the write), so nothing the
// call should see is missed. What a directory watch cannot see: a file changed through a shared
// mapping (mmap) without a write, or through another hard link outside memory/. The worker
// therefore walks at least every few minutes regardless (tool.capnp memoryWalkEverySeconds). A
// hint only saves work: a wrong one leaves results stale for that long, and never lets a worker
// read more than its sandbox allows (the hits are judged for taint file by file as always).

#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace chitin {

struct MemorySync {
  uint64_t epoch = 0;       // never 0 when given
  uint64_t generation = 0;  // grows with every change the watch sees
};

class MemoryWatch {
 public:
  // More directories beneath memory/ than this, and the watch gives up (no hints: every search
  // walks), rather than take a large share of the user's inotify watches.
  static constexpr size_t MAX_DIRECTORIES = 1000;

  explicit MemoryWatch(std::string workspaceDir);
  ~MemoryWatch();
  MemoryWatch(const MemoryWatch&) = delete;
  MemoryWatch& operator=(const MemoryWatch&) = delete;

  // Reads the events queued so far, then the pair to pass to the memory worker; nullopt when
  // this watch cannot say (inotify unavailable, too many directories).
  std::optional<MemorySync> current();

 private:
  void drain();
  // A new inotify instance watching the root and the memory tree (the old one closed).
  void start();
  void watchRoot();
  void watchTree(const std::string& rel);  // `rel` beneath the workspace, and its subdirectories
  void giveUp(const std::string& why);

  std::string workspace_;
  int fd_ = -1;
  int rootWd_ = -1;
  std::unordered_map<int, std::string> dirs_;  // watch descriptor -> directory, workspace-relative
  uint64_t epoch_ = 0;
  uint64_t generation_ = 1;
};

}  // namespace chitin
