// SPDX-License-Identifier: Apache-2.0
// The delivered message ids of one channel account (see seen-store.h).
// Runs in: supervisor

#include "seen-store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>

#include "home.h"
#include "pool-sync.h"

namespace chitin::channels {

namespace {

std::string keyOf(const std::string& chatId, const std::string& messageId) {
  return chatId + " " + messageId;
}

bool wellFormed(const std::string& line) {
  size_t space = line.find(' ');
  if (space == 0 || space == std::string::npos || space + 1 == line.size() ||
      line.find(' ', space + 1) != std::string::npos)
    return false;
  for (char c : line) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

SeenStore::SeenStore(std::string path, size_t capacity)
    : path_(std::move(path)), capacity_(capacity) {
  int fd = open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) throw std::runtime_error(path_ + ": cannot open: " + strerror(errno));
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int error = errno;
      close(fd);
      throw std::runtime_error(path_ + ": cannot read: " + strerror(error));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  size_t complete = text.rfind('\n');
  complete = complete == std::string::npos ? 0 : complete + 1;
  if (complete != text.size()) {
    // Never acknowledged: the worker was not told it arrived, so it will deliver it again.
    spdlog::warn("{}: cutting off an incomplete last line ({} bytes; a crash mid-write)", path_,
                 text.size() - complete);
    if (ftruncate(fd, static_cast<off_t>(complete)) != 0 || fdatasync(fd) != 0) {
      int error = errno;
      close(fd);
      throw std::runtime_error(path_ +
                               ": cannot cut off the incomplete last line: " + strerror(error));
    }
  }
  close(fd);
  bytes_ = complete;
  size_t start = 0;
  while (start < complete) {
    size_t end = text.find('\n', start);
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++lines_;
    if (wellFormed(line)) {
      remember(std::move(line));
    } else {
      spdlog::warn("{}: skipping a malformed line", path_);
    }
  }
  openForAppend();
  if (lines_ >= 2 * capacity_) compact();
}

SeenStore::~SeenStore() {
  if (fd_ >= 0) close(fd_);
}

void SeenStore::openForAppend() {
  if (fd_ >= 0) close(fd_);
  fd_ = open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  if (fd_ < 0) throw std::runtime_error(path_ + ": cannot open for appending: " + strerror(errno));
}

void SeenStore::remember(std::string key) {
  if (!keys_.insert(key).second) return;
  order_.push_back(std::move(key));
  while (order_.size() > capacity_) {
    keys_.erase(order_.front());
    order_.pop_front();
  }
}

bool SeenStore::contains(const std::string& chatId, const std::string& messageId) const {
  return keys_.count(keyOf(chatId, messageId)) != 0;
}

void SeenStore::record(const std::string& chatId, const std::string& messageId) {
  std::string key = keyOf(chatId, messageId);
  if (!wellFormed(key)) throw std::runtime_error(path_ + ": refusing a malformed id");
  std::string line = key + "\n";
  // One write() on an O_APPEND descriptor: a crash leaves the line whole or torn at the end,
  // never interleaved.
  ssize_t n;
  do {
    n = write(fd_, line.data(), line.size());
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(line.size())) {
    int error = n < 0 ? errno : ENOSPC;
    // Whatever part reached the file is not acknowledged: cut it off now, so the next line
    // does not continue a torn one.
    if (ftruncate(fd_, static_cast<off_t>(bytes_)) != 0)
      spdlog::error("{}: cannot cut off a failed append: {}", path_, strerror(errno));
    throw std::runtime_error(path_ + ": cannot record the message id: " + strerror(error));
  }
  bytes_ += line.size();
  ++lines_;
  remember(std::move(key));
  if (lines_ >= 2 * capacity_) compact();
}

void SeenStore::sync() {
  if (fdatasync(fd_) != 0)
    throw std::runtime_error(path_ + ": cannot sync the message ids: " + strerror(errno));
}

void SeenStore::syncAsync(uv_loop_t* loop, std::function<void(int error)> synced) {
  int fd = fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) {
    synced(errno);
    return;
  }
  // The callback is moved only once the request is queued: kept here for the error below.
  auto callback = std::make_shared<std::function<void(int)>>(std::move(synced));
  if (int rc = fdatasyncOnPool(loop, fd, [callback](int error) { (*callback)(error); }); rc != 0)
    (*callback)(-rc);
}

void SeenStore::compact() {
  std::string text;
  for (const auto& key : order_) text += key + "\n";
  try {
    writeFileAtomically(path_, text, 0600);
  } catch (const std::exception& e) {
    // The old file still holds everything: only its size is not bounded yet.
    spdlog::error("{}: compaction failed: {}", path_, e.what());
    return;
  }
  lines_ = order_.size();
  bytes_ = text.size();
  openForAppend();
}

}  // namespace chitin::channels
