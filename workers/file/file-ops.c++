// SPDX-License-Identifier: Apache-2.0
// read, write and edit over the workspace root fd (see file-ops.h).
// Runs in: worker (sandboxed)

#include "file-ops.h"

#include <errno.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <kj/vector.h>
#include <string.h>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"
#include "utf8.h"
#include "workspace-path.h"

namespace chitin {

namespace {

constexpr size_t READ_CHUNK_BYTES = 64 * 1024;

FileOutcome failedWith(kj::String message) { return FileOutcome{true, kj::mv(message), false}; }

FileOutcome failedWith(FileFailure failure) { return failedWith(kj::mv(failure.message)); }

// The model's path, checked and cleaned, plus the form to show in messages.
struct CheckedPath {
  kj::String rel;
  kj::String shown;
};

kj::OneOf<CheckedPath, FileOutcome> checkPath(kj::StringPtr path) {
  auto checked = checkWorkspacePath(path);
  if (checked.is<PathRejection>()) {
    return failedWith(kj::mv(checked.get<PathRejection>().message));
  }
  return CheckedPath{kj::mv(checked.get<kj::String>()), displayPath(path)};
}

struct Loaded {
  kj::Array<char> bytes;  // at most limit + 1 bytes: the extra byte tells whether there is more
  uint64_t totalBytes;    // the file's size as far as we can tell
  mode_t mode;
};

// Reads a regular file's first `limit + 1` bytes.
kj::OneOf<Loaded, FileFailure> load(int fd, size_t limit, kj::StringPtr shownPath) {
  struct stat st;
  KJ_SYSCALL(fstat(fd, &st), shownPath);
  if (S_ISDIR(st.st_mode)) return FileFailure{kj::str("is a directory: ", shownPath)};
  if (!S_ISREG(st.st_mode)) return FileFailure{kj::str("not a regular file: ", shownPath)};

  size_t want = limit + 1;
  size_t expected = static_cast<uint64_t>(st.st_size) < want ? st.st_size : want;
  kj::Vector<char> bytes(expected);
  char chunk[READ_CHUNK_BYTES];
  while (bytes.size() < want) {
    size_t ask = kj::min(sizeof(chunk), want - bytes.size());
    ssize_t n = read(fd, chunk, ask);
    if (n < 0) {
      if (errno == EINTR) continue;
      KJ_FAIL_SYSCALL("read", errno, shownPath);
    }
    if (n == 0) break;
    bytes.addAll(chunk, chunk + n);
  }
  uint64_t total = kj::max(static_cast<uint64_t>(st.st_size), static_cast<uint64_t>(bytes.size()));
  return Loaded{bytes.releaseAsArray(), total, st.st_mode};
}

bool looksBinary(kj::ArrayPtr<const char> text) {
  return memchr(text.begin(), '\0', text.size()) != nullptr || !isValidUtf8(text);
}

kj::String binaryMessage(uint64_t totalBytes, kj::StringPtr shownPath) {
  return kj::str("binary file, ", totalBytes, " bytes: ", shownPath,
                 " (read shows UTF-8 text only)");
}

}  // namespace

FileOutcome readWorkspaceFile(int rootFd, kj::StringPtr path, size_t cap) {
  auto checked = checkPath(path);
  if (checked.is<FileOutcome>()) return kj::mv(checked.get<FileOutcome>());
  auto& p = checked.get<CheckedPath>();

  // O_NONBLOCK: a FIFO planted in the workspace must not hang the worker in open().
  auto opened =
      openBeneath(rootFd, p.rel, O_RDONLY | O_NOCTTY | O_NONBLOCK, Symlinks::FOLLOW_BENEATH);
  if (opened.is<int>()) {
    return failedWith(
        describeOpenError(opened.get<int>(), rootFd, p.rel, Symlinks::FOLLOW_BENEATH, p.shown));
  }
  auto loaded = load(opened.get<kj::AutoCloseFd>(), cap, p.shown);
  if (loaded.is<FileFailure>()) return failedWith(kj::mv(loaded.get<FileFailure>()));
  auto& file = loaded.get<Loaded>();

  bool truncated = file.bytes.size() > cap;
  size_t keep = truncated ? utf8BoundaryAtOrBefore(file.bytes, cap) : file.bytes.size();
  kj::ArrayPtr<const char> text = file.bytes.slice(0, keep);
  if (looksBinary(text)) return failedWith(binaryMessage(file.totalBytes, p.shown));

  if (!truncated) return FileOutcome{false, kj::heapString(text), false};
  return FileOutcome{
      false,
      kj::str(text, "\n\n[truncated: showing the first ", keep, " of ", file.totalBytes, " bytes]"),
      true};
}

FileOutcome writeWorkspaceFile(int rootFd, kj::StringPtr path, kj::ArrayPtr<const char> content) {
  auto checked = checkPath(path);
  if (checked.is<FileOutcome>()) return kj::mv(checked.get<FileOutcome>());
  auto& p = checked.get<CheckedPath>();
  if (p.rel == ".") return failedWith(kj::str("is a directory (the workspace root): ", p.shown));

  auto parent = openParentDir(rootFd, p.rel, /*create=*/true, p.shown);
  if (parent.is<FileFailure>()) return failedWith(kj::mv(parent.get<FileFailure>()));
  auto& dir = parent.get<ParentDir>();

  mode_t mode = NEW_FILE_MODE;
  struct stat st;
  if (fstatat(dir.fd, dir.name.cStr(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    // rename() would replace a symlink itself; refuse instead, as for a symlinked parent.
    if (S_ISLNK(st.st_mode)) {
      return failedWith(describeOpenError(ELOOP, rootFd, p.rel, Symlinks::REFUSE, p.shown));
    }
    if (S_ISDIR(st.st_mode)) return failedWith(kj::str("is a directory: ", p.shown));
    if (!S_ISREG(st.st_mode)) return failedWith(kj::str("not a regular file: ", p.shown));
    mode = st.st_mode & 0777;
  } else if (errno != ENOENT) {
    int error = errno;
    if (error != EACCES) KJ_FAIL_SYSCALL("fstatat", error, p.shown);
    return failedWith(describeOpenError(error, rootFd, p.rel, Symlinks::REFUSE, p.shown));
  }

  KJ_IF_MAYBE (failure, replaceAtomically(dir.fd, dir.name, content, mode, p.shown)) {
    return failedWith(kj::mv(*failure));
  }
  return FileOutcome{false, kj::str("wrote ", content.size(), " bytes to ", p.shown), false};
}

FileOutcome editWorkspaceFile(int rootFd, kj::StringPtr path, kj::StringPtr oldText,
                              kj::StringPtr newText) {
  auto checked = checkPath(path);
  if (checked.is<FileOutcome>()) return kj::mv(checked.get<FileOutcome>());
  auto& p = checked.get<CheckedPath>();
  if (oldText.size() == 0) {
    return failedWith(kj::str("oldText is empty: give the exact text to replace in ", p.shown));
  }
  if (p.rel == ".") return failedWith(kj::str("is a directory (the workspace root): ", p.shown));

  auto parent = openParentDir(rootFd, p.rel, /*create=*/false, p.shown);
  if (parent.is<FileFailure>()) return failedWith(kj::mv(parent.get<FileFailure>()));
  auto& dir = parent.get<ParentDir>();

  auto opened = openBeneath(dir.fd, dir.name, O_RDONLY | O_NOCTTY | O_NONBLOCK, Symlinks::REFUSE);
  if (opened.is<int>()) {
    return failedWith(
        describeOpenError(opened.get<int>(), rootFd, p.rel, Symlinks::REFUSE, p.shown));
  }
  auto loaded = load(opened.get<kj::AutoCloseFd>(), EDIT_MAX_BYTES, p.shown);
  if (loaded.is<FileFailure>()) return failedWith(kj::mv(loaded.get<FileFailure>()));
  auto& file = loaded.get<Loaded>();
  if (file.bytes.size() > EDIT_MAX_BYTES) {
    return failedWith(kj::str("file too large to edit: ", file.totalBytes, " bytes (at most ",
                              EDIT_MAX_BYTES, "): ", p.shown));
  }
  if (looksBinary(file.bytes)) return failedWith(binaryMessage(file.totalBytes, p.shown));

  // Overlapping matches count too: "aa" in "aaa" is ambiguous.
  std::string_view haystack(file.bytes.begin(), file.bytes.size());
  std::string_view needle(oldText.begin(), oldText.size());
  size_t first = haystack.find(needle);
  if (first == std::string_view::npos) {
    return failedWith(kj::str("oldText not found in ", p.shown));
  }
  size_t occurrences = 1;
  for (size_t at = haystack.find(needle, first + 1); at != std::string_view::npos;
       at = haystack.find(needle, at + 1)) {
    ++occurrences;
  }
  if (occurrences > 1) {
    return failedWith(
        kj::str("oldText occurs ", occurrences, " times in ", p.shown, "; include more context"));
  }

  kj::ArrayPtr<const char> before = file.bytes.slice(0, first);
  kj::ArrayPtr<const char> after = file.bytes.slice(first + oldText.size(), file.bytes.size());
  kj::String edited = kj::str(before, newText, after);
  KJ_IF_MAYBE (failure,
               replaceAtomically(dir.fd, dir.name, edited.asArray(), file.mode & 0777, p.shown)) {
    return failedWith(kj::mv(*failure));
  }
  return FileOutcome{false,
                     kj::str("replaced 1 occurrence of oldText in ", p.shown, " (",
                             file.bytes.size(), " -> ", edited.size(), " bytes)"),
                     false};
}

}  // namespace chitin
