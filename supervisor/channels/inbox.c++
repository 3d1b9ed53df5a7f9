// SPDX-License-Identifier: Apache-2.0
// Attachments into the workspace inbox (see inbox.h).
// Runs in: supervisor

#include "inbox.h"

#include <fcntl.h>
#include <kj/io.h>
#include <sodium.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <stdexcept>

namespace chitin::channels {

namespace {

constexpr size_t MAX_NAME_BYTES = 80;

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

kj::AutoCloseFd openInbox(const std::string& workspaceDir) {
  // The workspace path is the supervisor's own (its parent is never visible to a tool); what
  // lies inside it is not.
  int ws = open(workspaceDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (ws < 0) fail("the workspace " + workspaceDir + " cannot be opened: " + strerror(errno));
  kj::AutoCloseFd workspace(ws);
  if (mkdirat(workspace, "inbox", 0700) != 0 && errno != EEXIST)
    fail("inbox/ cannot be created: " + std::string(strerror(errno)));
  int in = openat(workspace, "inbox", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (in < 0) {
    int error = errno;
    fail(error == ELOOP || error == ENOTDIR
             ? "inbox/ in the workspace is not a directory (a symlink?): nothing is saved "
               "through it"
             : "inbox/ cannot be opened: " + std::string(strerror(error)));
  }
  return kj::AutoCloseFd(in);
}

bool plainName(const std::string& name) {
  return !name.empty() && name.size() <= 255 && name[0] != '.' &&
         name.find_first_of(std::string("/\0", 2)) == std::string::npos;
}

}  // namespace

std::string safeAttachmentName(const std::string& platformName) {
  std::string name = platformName;
  size_t slash = name.find_last_of("/\\");
  if (slash != std::string::npos) name = name.substr(slash + 1);
  for (char& c : name) {
    bool ok = isalnum(static_cast<unsigned char>(c)) != 0 && static_cast<unsigned char>(c) < 0x80;
    if (!ok && c != '.' && c != '_' && c != '-') c = '_';
  }
  size_t first = name.find_first_not_of('.');
  name = first == std::string::npos ? "" : name.substr(first);
  if (name.size() > MAX_NAME_BYTES) {
    size_t dot = name.rfind('.');
    std::string ext = dot != std::string::npos && name.size() - dot <= 16 ? name.substr(dot) : "";
    name = name.substr(0, MAX_NAME_BYTES - ext.size()) + ext;
  }
  if (name.empty() || name.find_first_not_of("._-") == std::string::npos) name = "attachment";
  return name;
}

std::string inboxFileName(const std::string& platformName) {
  unsigned char random[4];
  randombytes_buf(random, sizeof(random));
  char hex[sizeof(random) * 2 + 1];
  sodium_bin2hex(hex, sizeof(hex), random, sizeof(random));
  time_t now = time(nullptr);
  struct tm utc;
  gmtime_r(&now, &utc);
  char stamp[32];
  strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &utc);
  return std::string(stamp) + "-" + hex + "-" + safeAttachmentName(platformName);
}

std::string saveToInbox(const std::string& workspaceDir, const std::string& fileName,
                        const std::string& data) {
  if (!plainName(fileName)) fail("not a plain file name: \"" + fileName + "\"");
  kj::AutoCloseFd inbox = openInbox(workspaceDir);
  int raw = openat(inbox, fileName.c_str(),
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0600);
  if (raw < 0) fail("inbox/" + fileName + " cannot be created: " + strerror(errno));
  kj::AutoCloseFd file(raw);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = write(file, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int error = n < 0 ? errno : EIO;
      unlinkat(inbox, fileName.c_str(), 0);
      fail("inbox/" + fileName + " cannot be written: " + strerror(error));
    }
    done += static_cast<size_t>(n);
  }
  return "inbox/" + fileName;
}

}  // namespace chitin::channels
