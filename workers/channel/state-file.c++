// SPDX-License-Identifier: Apache-2.0
// Atomic, durable small files in the state directory (see state-file.h).
// Runs in: worker (sandboxed)

#include "state-file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform.h"

namespace chitin::channel {

namespace {

std::string failure(const std::string& what, const std::string& path, int error) {
  return what + " " + path + ": " + strerror(error);
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

}  // namespace

void requireStateDir(const std::string& dir) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw ChannelError("the state directory " + dir + " does not exist");
  }
  if (access(dir.c_str(), W_OK) != 0) {
    throw ChannelError("the state directory " + dir + " is not writable");
  }
}

std::optional<std::string> readStateFile(const std::string& dir, const std::string& name,
                                         size_t maxBytes) {
  std::string path = dir + "/" + name;
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::nullopt;
    throw ChannelError(failure("cannot open", path, errno));
  }
  std::string content;
  char buffer[4096];
  for (;;) {
    ssize_t n = read(fd.get(), buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw ChannelError(failure("cannot read", path, errno));
    if (n == 0) break;
    content.append(buffer, n);
    if (content.size() > maxBytes) {
      throw ChannelError(path + " is larger than " + std::to_string(maxBytes) + " bytes");
    }
  }
  return content;
}

void writeStateFile(const std::string& dir, const std::string& name, std::string_view content,
                    StateSync sync) {
  std::string path = dir + "/" + name;
  std::string temporary = path + ".tmp";
  {
    Fd fd(open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.get() < 0) throw ChannelError(failure("cannot create", temporary, errno));
    size_t done = 0;
    while (done < content.size()) {
      ssize_t n = write(fd.get(), content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw ChannelError(failure("cannot write", temporary, errno));
      done += n;
    }
    if (sync == StateSync::DURABLE && fsync(fd.get()) != 0) {
      throw ChannelError(failure("cannot sync", temporary, errno));
    }
    if (close(fd.release()) != 0) throw ChannelError(failure("cannot close", temporary, errno));
  }
  if (rename(temporary.c_str(), path.c_str()) != 0) {
    throw ChannelError(failure("cannot replace", path, errno));
  }
  if (sync == StateSync::LAZY) return;
  // The rename itself is durable only once the directory is.
  Fd directory(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (directory.get() < 0 || fsync(directory.get()) != 0) {
    throw ChannelError(failure("cannot sync", dir, errno));
  }
}

}  // namespace chitin::channel
