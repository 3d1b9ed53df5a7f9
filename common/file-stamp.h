// SPDX-License-Identifier: Apache-2.0
// What a file's stat says of its contents, for caches that skip rereading unchanged files.
// Runs in: supervisor (standard library only)
//
// The rule both users follow (the snapshot scanner's blob cache, the skills catalog's parsed
// SKILL.md files): the same stamp means the same contents, except just after a change. File
// timestamps come from a coarse clock (a tick of 1-10 ms), so a file written again within the
// same tick, at the same size, keeps its stamp. What was read from a file is therefore
// remembered only when the file's last change is older than the read by RACY_NANOS (git's
// "racily clean" entries, handled the same way).

#pragma once

#include <sys/stat.h>
#include <time.h>

#include <cstdint>
#include <map>
#include <string>

namespace chitin {

inline constexpr int64_t RACY_NANOS = 100'000'000;

inline int64_t nanos(const struct timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

struct FileStamp {
  dev_t dev;
  ino_t ino;
  off_t size;
  mode_t mode;
  struct timespec mtime, ctime;

  static FileStamp of(const struct stat& st) {
    return {st.st_dev, st.st_ino, st.st_size, st.st_mode, st.st_mtim, st.st_ctim};
  }
  bool operator==(const FileStamp& o) const {
    return dev == o.dev && ino == o.ino && size == o.size && mode == o.mode &&
           nanos(mtime) == nanos(o.mtime) && nanos(ctime) == nanos(o.ctime);
  }
};

// Whether what was read from the file `st` describes, in a read that began at `readStartNanos`
// (CLOCK_REALTIME), may be remembered by its stamp.
inline bool settledBefore(const struct stat& st, int64_t readStartNanos) {
  return nanos(st.st_ctim) < readStartNanos - RACY_NANOS;
}

// Now, on the clock file timestamps come from: a read's start for settledBefore().
inline int64_t realtimeNanos() {
  struct timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  return nanos(now);
}

// What was read from files, by key (a path or a name), each value kept with the stamp of the
// file it came from, by the rule above: find() gives it back while the file's stat still
// matches; put() keeps it only when the file had settled before the read began, and otherwise
// forgets what was kept for the key. One thread at a time.
template <typename T>
class StampedValues {
 public:
  T* find(const std::string& key, const struct stat& st) {
    auto it = entries_.find(key);
    if (it == entries_.end() || !(it->second.stamp == FileStamp::of(st))) return nullptr;
    return &it->second.value;
  }
  void put(const std::string& key, const struct stat& st, T value, int64_t readStartNanos) {
    if (!settledBefore(st, readStartNanos)) {
      entries_.erase(key);  // read again next time, until it has settled
      return;
    }
    entries_.insert_or_assign(key, Entry{FileStamp::of(st), std::move(value)});
  }
  void erase(const std::string& key) { entries_.erase(key); }
  template <typename Predicate>
  void eraseIf(Predicate drop) {
    std::erase_if(entries_, [&](const auto& item) { return drop(item.second.value); });
  }

 private:
  struct Entry {
    FileStamp stamp;
    T value;
  };
  std::map<std::string, Entry> entries_;
};

}  // namespace chitin
