// SPDX-License-Identifier: Apache-2.0
// The memory files' change generation (memory-watch.h).
// Runs in: supervisor

#include "memory-watch.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "memory-path.h"

namespace chitin {

namespace {

// What may change a memory file or the set of them. Reads (IN_ACCESS, IN_CLOSE_NOWRITE, IN_OPEN)
// are left out: the memory worker's own reads must not look like changes.
constexpr uint32_t CHANGES =
    IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;
constexpr uint32_t DIRECTORY_ONLY = IN_ONLYDIR | IN_DONT_FOLLOW;
constexpr int MAX_DEPTH = 32;  // as deep as the walk goes is far less; deeper is given up on

}  // namespace

MemoryWatch::MemoryWatch(std::string workspaceDir) : workspace_(std::move(workspaceDir)) {
  while (epoch_ == 0) {
    if (getrandom(&epoch_, sizeof epoch_, 0) != static_cast<ssize_t>(sizeof epoch_)) {
      giveUp(std::string("no random epoch: ") + strerror(errno));
      return;
    }
  }
  start();
}

void MemoryWatch::start() {
  if (fd_ >= 0) close(fd_);
  dirs_.clear();
  fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (fd_ < 0) {
    giveUp(std::string("inotify_init1: ") + strerror(errno));
    return;
  }
  watchRoot();
}

MemoryWatch::~MemoryWatch() {
  if (fd_ >= 0) close(fd_);
}

std::optional<MemorySync> MemoryWatch::current() {
  if (fd_ < 0) return std::nullopt;
  drain();
  if (fd_ < 0) return std::nullopt;
  return MemorySync{epoch_, generation_};
}

void MemoryWatch::watchRoot() {
  rootWd_ = inotify_add_watch(fd_, workspace_.c_str(), CHANGES | DIRECTORY_ONLY);
  if (rootWd_ < 0) {
    giveUp("cannot watch " + workspace_ + ": " + strerror(errno));
    return;
  }
  watchTree(MEMORY_DIR);
}

void MemoryWatch::watchTree(const std::string& rel) {
  if (fd_ < 0) return;
  std::string path = workspace_ + "/" + rel;
  int depth = 0;
  for (char c : rel) depth += c == '/';
  if (depth >= MAX_DEPTH) {
    giveUp("memory/ is nested deeper than " + std::to_string(MAX_DEPTH) + " directories");
    return;
  }
  if (dirs_.size() >= MAX_DIRECTORIES) {
    giveUp("more than " + std::to_string(MAX_DIRECTORIES) + " directories beneath memory/");
    return;
  }
  // Watched before it is listed: a directory made inside it meanwhile is seen either way.
  int wd = inotify_add_watch(fd_, path.c_str(),
                             CHANGES | IN_DELETE_SELF | IN_MOVE_SELF | DIRECTORY_ONLY);
  if (wd < 0) {
    // Gone, or not a directory (a symlink is never followed): nothing there to watch. Out of
    // watches: no hints.
    if (errno == ENOSPC || errno == ENOMEM)
      giveUp("inotify_add_watch: " + std::string(strerror(errno)));
    return;
  }
  dirs_[wd] = rel;
  int dirFd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dirFd < 0) return;
  DIR* dir = fdopendir(dirFd);
  if (dir == nullptr) {
    close(dirFd);
    return;
  }
  while (struct dirent* e = readdir(dir)) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    bool isDir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      isDir = fstatat(dirfd(dir), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    if (isDir) watchTree(rel + "/" + e->d_name);
    if (fd_ < 0) break;
  }
  closedir(dir);
}

void MemoryWatch::drain() {
  alignas(struct inotify_event) char buf[16384];
  while (fd_ >= 0) {
    ssize_t n = read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: all read
    for (ssize_t at = 0; at < n;) {
      const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + at);
      at += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
      std::string name = ev->len > 0 ? std::string(ev->name) : std::string();
      if (ev->mask & IN_Q_OVERFLOW) {
        // Events were lost, directories made meanwhile among them: watch everything afresh.
        ++generation_;
        start();
        break;  // the rest of this buffer belongs to the old instance
      }
      if (ev->wd == rootWd_) {
        if (ev->mask & IN_IGNORED) {
          giveUp("the workspace " + workspace_ + " is gone");
          return;
        }
        if (name == MEMORY_FILE) ++generation_;
        if (name == MEMORY_DIR) {
          ++generation_;
          if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO))) watchTree(name);
        }
        continue;
      }
      ++generation_;  // anything beneath memory/, or a watch already removed: assume a change
      auto dir = dirs_.find(ev->wd);
      if (dir == dirs_.end()) continue;
      if (ev->mask & IN_IGNORED) {
        dirs_.erase(dir);
        continue;
      }
      if ((ev->mask & IN_ISDIR) && (ev->mask & (IN_CREATE | IN_MOVED_TO)) && !name.empty())
        watchTree(dir->second + "/" + name);
    }
  }
}

void MemoryWatch::giveUp(const std::string& why) {
  spdlog::info("memory_search walks the memory files on every call: {}", why);
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  dirs_.clear();
}

}  // namespace chitin
