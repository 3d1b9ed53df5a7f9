// SPDX-License-Identifier: Apache-2.0
// Events acknowledged but not yet delivered, on disk (see event-journal.h).
// Runs in: worker (sandboxed)

#include "event-journal.h"

#include <dirent.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

namespace chitin::channel::slack {
namespace {

constexpr size_t NAME_DIGITS = 20;
constexpr size_t MAX_EVENT_BYTES = 4u << 20;  // as large as a Socket Mode message may be

bool journalName(const std::string& name) {
  if (name.size() != NAME_DIGITS + 5 || name.substr(NAME_DIGITS) != ".json") return false;
  return std::all_of(name.begin(), name.begin() + NAME_DIGITS,
                     [](char c) { return c >= '0' && c <= '9'; });
}

bool writeWhole(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

EventJournal::EventJournal(std::string dir) : dir_(std::move(dir)) {
  if (dir_.empty()) return;
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    KJ_LOG(WARNING, "slack: no event journal", dir_, strerror(errno));
    dir_.clear();
    return;
  }
  // File names count up from the clock, so a new run's files sort after an old run's.
  next_ = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
}

std::string EventJournal::keep(const Json& event) {
  if (dir_.empty()) return "";
  char name[NAME_DIGITS + 1];
  std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(next_++));
  std::string file = dir_ + "/" + name + ".json";
  std::string tmp = file + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  bool ok = fd >= 0 && writeWhole(fd, event.dump(-1, ' ', false, Json::error_handler_t::replace)) &&
            ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (ok && ::rename(tmp.c_str(), file.c_str()) == 0) return file;
  KJ_LOG(WARNING, "slack: cannot journal an event", tmp, strerror(errno));
  ::unlink(tmp.c_str());
  return "";
}

void EventJournal::done(const std::string& file) {
  if (!file.empty() && ::unlink(file.c_str()) != 0 && errno != ENOENT) {
    KJ_LOG(WARNING, "slack: cannot remove a delivered event", file, strerror(errno));
  }
}

std::vector<std::pair<std::string, Json>> EventJournal::leftovers() {
  std::vector<std::pair<std::string, Json>> out;
  if (dir_.empty()) return out;
  DIR* d = ::opendir(dir_.c_str());
  if (d == nullptr) return out;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (journalName(name)) names.push_back(name);
    // A .tmp file is an event that was never acknowledged: Slack sends it again.
    if (name.size() > 4 && name.substr(name.size() - 4) == ".tmp")
      ::unlink((dir_ + "/" + name).c_str());
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    std::string file = dir_ + "/" + name;
    std::string text;
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char buffer[65536];
      ssize_t n;
      while ((n = ::read(fd, buffer, sizeof buffer)) > 0 && text.size() <= MAX_EVENT_BYTES) {
        text.append(buffer, static_cast<size_t>(n));
      }
      ::close(fd);
    }
    auto event = text.size() <= MAX_EVENT_BYTES ? parsePlatformJson(text) : std::nullopt;
    if (!event) {
      KJ_LOG(WARNING, "slack: dropping an unreadable journal file", file);
      ::unlink(file.c_str());
      continue;
    }
    out.emplace_back(file, std::move(*event));
  }
  return out;
}

}  // namespace chitin::channel::slack
