// SPDX-License-Identifier: Apache-2.0
// A channel account's credential and state directory (see account-setup.h).
// Runs in: supervisor

#include "account-setup.h"

#include <dirent.h>
#include <fcntl.h>
#include <kj/io.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

namespace chitin::channels {

namespace {

constexpr size_t MAX_CREDENTIAL_BYTES = 64 << 10;

std::string errnoText(int error) { return strerror(error); }

// The credential file opened and checked: regular, this owner's, no group/other access, small.
kj::AutoCloseFd openCredential(const std::string& path, uid_t owner, struct stat& st) {
  // O_NOFOLLOW: a symlink could point the supervisor at any file it can read (the gateway
  // token, the model key) and hand it to a channel worker.
  int raw = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (raw < 0) {
    int error = errno;
    if (error == ELOOP)
      throw AccountError("credential " + path +
                         ": is a symlink; put the credential in a regular "
                         "file there (mode 600)");
    if (error == ENOENT)
      throw AccountError("credential " + path +
                         ": no such file (write the token there with mode 600, or use `chitin "
                         "channels add`)");
    throw AccountError("credential " + path + ": cannot open: " + errnoText(error));
  }
  kj::AutoCloseFd fd(raw);
  if (fstat(fd, &st) != 0)
    throw AccountError("credential " + path + ": cannot stat: " + errnoText(errno));
  if (!S_ISREG(st.st_mode)) throw AccountError("credential " + path + ": is not a regular file");
  if (st.st_uid != owner)
    throw AccountError("credential " + path + ": is owned by uid " + std::to_string(st.st_uid) +
                       ", not by the service user (uid " + std::to_string(owner) +
                       "); chown it to that user");
  if ((st.st_mode & 077) != 0)
    throw AccountError("credential " + path +
                       ": is readable or writable by group or others; run `chmod 600 " + path +
                       "` (and replace the credential if someone else may have read it)");
  if (static_cast<uint64_t>(st.st_size) > MAX_CREDENTIAL_BYTES)
    throw AccountError("credential " + path + ": is larger than 64 KiB");
  return fd;
}

}  // namespace

std::string defaultCredentialPath(const std::string& homeDir, const std::string& kind,
                                  const std::string& account) {
  return homeDir + "/credentials/" + kind + "-" + account;
}

std::string credentialProblem(const std::string& path, uid_t owner, bool& missing) {
  struct stat st;
  missing = lstat(path.c_str(), &st) != 0 && errno == ENOENT;
  try {
    openCredential(path, owner, st);
  } catch (const AccountError& e) {
    return e.what();
  }
  return "";
}

std::string readCredential(const std::string& path, uid_t owner) {
  struct stat st;
  kj::AutoCloseFd fd = openCredential(path, owner, st);
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw AccountError("credential " + path + ": cannot read: " + errnoText(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  if (!out.empty() && out.back() == '\n') out.pop_back();
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return out;
}

std::string ensureStateDir(const std::string& homeDir, const std::string& kind,
                           const std::string& account) {
  return ensurePrivateDir(homeDir, {"state", "channels", kind, account});
}

std::string ensurePrivateDir(const std::string& homeDir, const std::vector<std::string>& parts) {
  std::string path = homeDir;
  for (const auto& part : parts) path += "/" + part;
  // Walk down from the home with openat(O_NOFOLLOW): a symlink planted at any level would
  // otherwise give the worker (which gets this directory read-write) a directory elsewhere.
  int raw = open(homeDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (raw < 0) throw AccountError(homeDir + ": cannot open: " + errnoText(errno));
  kj::AutoCloseFd dir(raw);
  std::string sofar = homeDir;
  for (const std::string& part : parts) {
    sofar += "/" + part;
    if (mkdirat(dir, part.c_str(), 0700) != 0 && errno != EEXIST)
      throw AccountError(sofar + ": cannot create: " + errnoText(errno));
    int next = openat(dir, part.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (next < 0) {
      int error = errno;
      throw AccountError(sofar + (error == ELOOP || error == ENOTDIR
                                      ? ": is not a directory (a symlink?); remove it"
                                      : ": cannot open: " + errnoText(error)));
    }
    dir = kj::AutoCloseFd(next);
  }
  struct stat st;
  if (fstat(dir, &st) != 0) throw AccountError(path + ": cannot stat: " + errnoText(errno));
  if (st.st_uid != geteuid())
    throw AccountError(path + ": is owned by uid " + std::to_string(st.st_uid) +
                       ", not by the service user");
  if ((st.st_mode & 077) != 0 && fchmod(dir, 0700) != 0)
    throw AccountError(path + ": cannot make it 0700: " + errnoText(errno));
  return path;
}

namespace {

// Empties the directory `dir` (a descriptor), depth first, without following any symlink.
void emptyDirectory(int dir, const std::string& shown) {
  int copy = dup(dir);
  DIR* d = copy < 0 ? nullptr : fdopendir(copy);
  if (d == nullptr) throw AccountError(shown + ": cannot list: " + errnoText(errno));
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  for (const auto& name : names) {
    if (unlinkat(dir, name.c_str(), 0) == 0 || errno == ENOENT) continue;
    if (errno != EISDIR && errno != EPERM)
      throw AccountError(shown + "/" + name + ": cannot remove: " + errnoText(errno));
    int sub = openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) throw AccountError(shown + "/" + name + ": cannot open: " + errnoText(errno));
    kj::AutoCloseFd subFd(sub);
    emptyDirectory(subFd, shown + "/" + name);
    if (unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0)
      throw AccountError(shown + "/" + name + ": cannot remove: " + errnoText(errno));
  }
}

}  // namespace

bool removeStateDir(const std::string& homeDir, const std::string& kind,
                    const std::string& account) {
  std::string parent = homeDir + "/state/channels/" + kind;
  int raw = open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (raw < 0) return false;
  kj::AutoCloseFd dir(raw);
  int sub = openat(dir, account.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (sub < 0) return false;
  {
    kj::AutoCloseFd subFd(sub);
    emptyDirectory(subFd, parent + "/" + account);
  }
  if (unlinkat(dir, account.c_str(), AT_REMOVEDIR) != 0)
    throw AccountError(parent + "/" + account + ": cannot remove: " + errnoText(errno));
  return true;
}

}  // namespace chitin::channels
