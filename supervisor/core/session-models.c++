// SPDX-License-Identifier: Apache-2.0
// Per-session model choices (see session-models.h).
// Runs in: supervisor

#include "session-models.h"

#include <errno.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

namespace chitin {

SessionModels::SessionModels(std::string path) : path_(std::move(path)) {
  std::ifstream in(path_);
  if (!in) return;
  std::stringstream text;
  text << in.rdbuf();
  try {
    auto j = nlohmann::json::parse(text.str());
    for (auto& [key, model] : j.at("sessions").items()) models_[key] = model.get<std::string>();
  } catch (const std::exception& e) {
    spdlog::warn("{}: ignored (expected {{\"version\": 1, \"sessions\": {{KEY: MODEL}}}}): {}",
                 path_, e.what());
    models_.clear();
  }
}

std::string SessionModels::get(const std::string& sessionKey) const {
  auto it = models_.find(sessionKey);
  return it == models_.end() ? "" : it->second;
}

void SessionModels::set(const std::string& sessionKey, const std::string& model) {
  auto next = models_;
  if (model.empty()) {
    next.erase(sessionKey);
  } else {
    next[sessionKey] = model;
  }
  nlohmann::json j = {{"version", 1}, {"sessions", next}};
  std::string text = j.dump(2) + "\n";
  std::string tmp = path_ + ".tmp";
  auto fail = [&](const char* step, int err) {
    unlink(tmp.c_str());
    throw std::runtime_error(path_ + ": cannot be written (" + step + "): " + strerror(err));
  };
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) fail("open", errno);
  for (size_t done = 0; done < text.size();) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      close(fd);
      fail("write", err);
    }
    done += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) {
    int err = errno;
    close(fd);
    fail("fsync", err);
  }
  close(fd);
  if (rename(tmp.c_str(), path_.c_str()) != 0) fail("rename", errno);
  models_ = std::move(next);
}

}  // namespace chitin
