// SPDX-License-Identifier: Apache-2.0
// openat2-based file access confined to the workspace (see beneath.h).
// Runs in: worker (sandboxed)

#include "beneath.h"

#include <errno.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace chitin {

namespace {

// openat2 returns EAGAIN when a rename elsewhere races a RESOLVE_BENEATH lookup; a few retries
// settle it. More than this means something is renaming in a loop: report it as a fault.
constexpr int MAX_OPEN_RETRIES = 16;
constexpr int MAX_TEMP_NAME_ATTEMPTS = 8;
constexpr mode_t NEW_DIRECTORY_MODE = 0755;

FileFailure failure(kj::StringPtr what, kj::StringPtr shownPath, kj::StringPtr after = "") {
  return FileFailure{kj::str(what, shownPath, after)};
}

kj::String randomHex() {
  unsigned char bytes[8];
  ssize_t n;
  do {
    n = getrandom(bytes, sizeof(bytes), 0);
  } while (n < 0 && errno == EINTR);
  KJ_ASSERT(n == sizeof(bytes), "getrandom() for a temporary file name", n, errno);
  static constexpr char HEX[] = "0123456789abcdef";
  char out[sizeof(bytes) * 2];
  for (size_t i = 0; i < sizeof(bytes); ++i) {
    out[2 * i] = HEX[bytes[i] >> 4];
    out[2 * i + 1] = HEX[bytes[i] & 0xf];
  }
  return kj::heapString(out, sizeof(out));
}

// Errors a write can hit that are the file system's state, not a bug: they go to the model.
bool isWriteOutcome(int error) {
  return error == ENOSPC || error == EDQUOT || error == EFBIG || error == EROFS ||
         error == EACCES || error == EPERM;
}

}  // namespace

kj::OneOf<kj::AutoCloseFd, int> openBeneath(int dirFd, kj::StringPtr rel, int flags,
                                            Symlinks symlinks, mode_t mode) {
  struct open_how how;
  memset(&how, 0, sizeof(how));
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  // The kernel refuses a mode without O_CREAT.
  how.mode = (flags & O_CREAT) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  if (symlinks == Symlinks::REFUSE) how.resolve |= RESOLVE_NO_SYMLINKS;

  for (int attempt = 0;; ++attempt) {
    long fd = syscall(SYS_openat2, dirFd, rel.cStr(), &how, sizeof(how));
    if (fd >= 0) return kj::AutoCloseFd(static_cast<int>(fd));
    int error = errno;
    if (error == EINTR || (error == EAGAIN && attempt < MAX_OPEN_RETRIES)) continue;
    if (error == ENOSYS) {
      KJ_FAIL_SYSCALL("openat2 (needs Linux >= 5.6 and a seccomp filter that allows it)", error,
                      rel);
    }
    return error;
  }
}

FileFailure describeOpenError(int error, int rootFd, kj::StringPtr rel, Symlinks symlinks,
                              kj::StringPtr shownPath) {
  switch (error) {
    case ENOENT:
      return failure("file not found: ", shownPath);
    case EXDEV:
      return failure("path escapes the workspace: ", shownPath);
    case ELOOP:
      if (symlinks == Symlinks::REFUSE) {
        // Tell a symlink that leads outside (an escape attempt) from an ordinary one.
        auto followed = openBeneath(rootFd, rel, O_PATH, Symlinks::FOLLOW_BENEATH);
        if (followed.is<int>() && followed.get<int>() == EXDEV) {
          return failure("path escapes the workspace: ", shownPath);
        }
        return failure("path goes through a symlink: ", shownPath,
                       " (write and edit do not follow or replace symlinks)");
      }
      return failure("too many levels of symbolic links: ", shownPath);
    case ENOTDIR:
      return failure("not a directory: a parent of ", shownPath, " is a file");
    case EISDIR:
      return failure("is a directory: ", shownPath);
    case EACCES:
    case EPERM:
      return failure("permission denied: ", shownPath);
    case EROFS:
      return failure("read-only file system: ", shownPath);
    case ENOSPC:
    case EDQUOT:
      return failure("no space left on the device for ", shownPath);
    case EFBIG:
      return failure("file too large (over the worker's file size limit): ", shownPath);
    case ENAMETOOLONG:
      return failure("a name in the path is too long: ", shownPath);
    case ENXIO:
      return failure("not a regular file: ", shownPath);
    case ETXTBSY:
      return failure("file is busy (a running program): ", shownPath);
    default:
      KJ_FAIL_SYSCALL("openat2", error, shownPath);
  }
}

kj::OneOf<ParentDir, FileFailure> openParentDir(int rootFd, kj::StringPtr rel, bool create,
                                                kj::StringPtr shownPath) {
  KJ_REQUIRE(rel.size() > 0 && rel != "." && rel[0] != '/', "not a clean relative path", rel);
  constexpr int DIR_FLAGS = O_PATH | O_DIRECTORY;

  auto opened = openBeneath(rootFd, ".", DIR_FLAGS, Symlinks::REFUSE);
  if (opened.is<int>())
    return describeOpenError(opened.get<int>(), rootFd, ".", Symlinks::REFUSE, shownPath);
  kj::AutoCloseFd current = kj::mv(opened.get<kj::AutoCloseFd>());

  size_t start = 0;
  for (;;) {
    KJ_IF_MAYBE (slash, rel.slice(start).findFirst('/')) {
      size_t end = start + *slash;
      kj::String component = kj::heapString(rel.slice(start, end));
      kj::String prefix = kj::heapString(rel.slice(0, end));
      auto next = openBeneath(current, component, DIR_FLAGS, Symlinks::REFUSE);
      if (create && next.is<int>() && next.get<int>() == ENOENT) {
        // mkdirat never follows a symlink in its last component (it fails with EEXIST).
        if (mkdirat(current, component.cStr(), NEW_DIRECTORY_MODE) < 0 && errno != EEXIST) {
          int error = errno;
          if (!isWriteOutcome(error) && error != ENOENT) {
            KJ_FAIL_SYSCALL("mkdirat", error, prefix);
          }
          return describeOpenError(error, rootFd, prefix, Symlinks::REFUSE, shownPath);
        }
        next = openBeneath(current, component, DIR_FLAGS, Symlinks::REFUSE);
      }
      if (next.is<int>()) {
        return describeOpenError(next.get<int>(), rootFd, prefix, Symlinks::REFUSE, shownPath);
      }
      current = kj::mv(next.get<kj::AutoCloseFd>());
      start = end + 1;
    } else {
      return ParentDir{kj::mv(current), kj::heapString(rel.slice(start))};
    }
  }
}

kj::Maybe<FileFailure> replaceAtomically(int dirFd, kj::StringPtr name,
                                         kj::ArrayPtr<const char> content, mode_t mode,
                                         kj::StringPtr shownPath) {
  // A fixed-length name, so a long target name cannot push it over NAME_MAX.
  kj::String tempName;
  kj::AutoCloseFd tempFd;
  for (int attempt = 0;; ++attempt) {
    tempName = kj::str(".chitin-", randomHex(), ".tmp");
    auto opened = openBeneath(dirFd, tempName, O_WRONLY | O_CREAT | O_EXCL | O_NOCTTY,
                              Symlinks::REFUSE, 0600);
    if (opened.is<kj::AutoCloseFd>()) {
      tempFd = kj::mv(opened.get<kj::AutoCloseFd>());
      break;
    }
    int error = opened.get<int>();
    if (error == EEXIST && attempt + 1 < MAX_TEMP_NAME_ATTEMPTS) continue;
    if (!isWriteOutcome(error)) KJ_FAIL_SYSCALL("openat2(O_CREAT)", error, shownPath);
    return describeOpenError(error, dirFd, tempName, Symlinks::REFUSE, shownPath);
  }

  bool renamed = false;
  KJ_DEFER(if (!renamed) unlinkat(dirFd, tempName.cStr(), 0));

  // Set explicitly so the process umask does not change a preserved mode.
  KJ_SYSCALL(fchmod(tempFd, mode), shownPath);

  const char* pos = content.begin();
  while (pos < content.end()) {
    ssize_t n = write(tempFd, pos, content.end() - pos);
    if (n < 0) {
      int error = errno;
      if (error == EINTR) continue;
      if (!isWriteOutcome(error)) KJ_FAIL_SYSCALL("write", error, shownPath);
      return describeOpenError(error, dirFd, tempName, Symlinks::REFUSE, shownPath);
    }
    pos += n;
  }
  if (fsync(tempFd) < 0) {
    int error = errno;
    if (!isWriteOutcome(error)) KJ_FAIL_SYSCALL("fsync", error, shownPath);
    return describeOpenError(error, dirFd, tempName, Symlinks::REFUSE, shownPath);
  }
  tempFd = nullptr;

  if (renameat(dirFd, tempName.cStr(), dirFd, name.cStr()) < 0) {
    int error = errno;
    if (!isWriteOutcome(error) && error != EISDIR && error != ENOTDIR && error != EBUSY) {
      KJ_FAIL_SYSCALL("renameat", error, shownPath);
    }
    if (error == EBUSY) return failure("file is in use (a mount point?): ", shownPath);
    return describeOpenError(error, dirFd, name, Symlinks::REFUSE, shownPath);
  }
  renamed = true;

  // The rename is durable only once the directory entry is on disk.
  auto dir = openBeneath(dirFd, ".", O_RDONLY | O_DIRECTORY, Symlinks::REFUSE);
  if (dir.is<kj::AutoCloseFd>()) {
    if (fsync(dir.get<kj::AutoCloseFd>()) < 0 && errno != EINVAL) {
      KJ_FAIL_SYSCALL("fsync(directory)", errno, shownPath);
    }
  }
  return nullptr;
}

kj::AutoCloseFd openWorkspaceRoot(kj::StringPtr dir) {
  KJ_REQUIRE(dir.startsWith("/"), "the workspace root must be an absolute path", dir);
  int fd;
  KJ_SYSCALL(fd = open(dir.cStr(), O_PATH | O_DIRECTORY | O_CLOEXEC),
             "cannot open the workspace root", dir);
  return kj::AutoCloseFd(fd);
}

}  // namespace chitin
