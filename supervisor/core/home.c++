// SPDX-License-Identifier: Apache-2.0
// $CHITIN_HOME layout, token and privilege drop (see home.h).
// Runs in: supervisor

#include "home.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>
#include <vector>

#include <kj/common.h>
#include <spdlog/spdlog.h>

namespace chitin {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + strerror(errno));
}

void makeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) fail("cannot create " + path);
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) fail("cannot stat " + path);
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    fail(path);
  }
}

// One directory being walked by handTreeTo(): its stream and its name in its parent.
struct OpenDir {
  DIR* dir;
  std::string name;
};

}  // namespace

void handTreeTo(const std::string& root, uid_t uid, gid_t gid) {
  // Walked by file descriptor, never by path: each directory is opened beneath the one before it
  // with O_NOFOLLOW, and each entry is looked at and changed relative to its directory without
  // following a symlink. A directory swapped for a symlink while the walk runs (the service user
  // owns this tree) then cannot point root's chown at anything outside it. An entry that already
  // has the owner is left alone: chown sets the ctime even when nothing changes, and ctime is
  // what the snapshot and memory indexes take a file's change by. The walk holds a descriptor
  // and a name per level, so it does not descend past MAX_HAND_DEPTH (a tree that deep is the
  // work of a tool, which wrote it as the service user already); that is logged, not fatal, so
  // no tree in the workspace can keep the gateway from starting.
  std::vector<OpenDir> stack;
  KJ_DEFER(for (auto& d : stack) closedir(d.dir));
  auto pathOf = [&](const char* name) {
    std::string path = root;
    for (size_t i = 1; i < stack.size(); ++i) path += "/" + stack[i].name;
    return name == nullptr ? path : path + "/" + name;
  };
  auto fail = [](const std::string& what) {
    throw std::runtime_error(what + ": " + strerror(errno));
  };
  int rootFd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (rootFd < 0) fail("cannot open " + root);
  DIR* top = fdopendir(rootFd);
  if (top == nullptr) {
    close(rootFd);
    fail("cannot open " + root);
  }
  stack.push_back({top, ""});
  struct stat st;
  if (fstat(rootFd, &st) != 0) fail("cannot stat " + root);
  if ((st.st_uid != uid || st.st_gid != gid) && fchown(rootFd, uid, gid) != 0)
    fail("cannot chown " + root);
  while (!stack.empty()) {
    errno = 0;
    struct dirent* e = readdir(stack.back().dir);
    if (e == nullptr) {
      if (errno != 0) fail("cannot list " + pathOf(nullptr));
      closedir(stack.back().dir);
      stack.pop_back();
      continue;
    }
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    int fd = dirfd(stack.back().dir);
    if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // gone since it was listed
      fail("cannot stat " + pathOf(e->d_name));
    }
    if ((st.st_uid != uid || st.st_gid != gid) &&
        fchownat(fd, e->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
      fail("cannot chown " + pathOf(e->d_name));
    if (!S_ISDIR(st.st_mode)) continue;
    if (stack.size() > MAX_HAND_DEPTH) {
      spdlog::warn("{} is more than {} directories deep: what is below it was not handed over",
                   pathOf(e->d_name), MAX_HAND_DEPTH);
      continue;
    }
    int child = openat(fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (child < 0) {
      if (errno == ENOENT) continue;
      fail("cannot open " + pathOf(e->d_name));
    }
    DIR* dir = fdopendir(child);
    if (dir == nullptr) {
      close(child);
      fail("cannot open " + pathOf(e->d_name));
    }
    stack.push_back({dir, e->d_name});
  }
}

void writeFileAtomically(const std::string& path, const std::string& content, mode_t mode,
                         Durability durability) {
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) fail("cannot write " + tmp);
  bool ok = write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
            fchmod(fd, mode) == 0 && (durability == Durability::RENAMED || fsync(fd) == 0);
  int saved = errno;
  close(fd);
  errno = saved;
  if (!ok) fail("cannot write " + tmp);
  if (rename(tmp.c_str(), path.c_str()) != 0) fail("cannot rename " + tmp + " to " + path);
  if (durability == Durability::RENAMED) return;
  // The rename is durable only once the directory entry is.
  std::string dir = path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
  int dirFd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd >= 0) {
    fsync(dirFd);
    close(dirFd);
  }
}

std::string defaultHomePath(const std::string& serviceUserHome) {
  if (const char* h = getenv("CHITIN_HOME"); h != nullptr && *h != '\0') return h;
  if (!serviceUserHome.empty()) return serviceUserHome + "/.chitin";
  if (const char* h = getenv("HOME"); h != nullptr && *h != '\0')
    return std::string(h) + "/.chitin";
  throw std::runtime_error("cannot find a home directory: set CHITIN_HOME");
}

void ensureHomeLayout(const HomeLayout& home, const std::string& agent) {
  makeDir(home.root);
  if (chmod(home.root.c_str(), 0700) != 0) fail("cannot chmod " + home.root);
  makeDir(home.stateDir());
  makeDir(home.sessionsDir());
  makeDir(home.auditDir());
  makeDir(home.stateDir() + "/snapshots");
  makeDir(home.stateDir() + "/untrusted");
  makeDir(home.policiesDir());
  makeDir(home.root + "/run");
  makeDir(home.root + "/workspace");
  makeDir(home.workspaceDir(agent));
}

std::string loadOrCreateToken(const HomeLayout& home) {
  std::string path = home.tokenPath();
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
    unsigned char bytes[32];
    randombytes_buf(bytes, sizeof(bytes));
    char hex[sizeof(bytes) * 2 + 1];
    sodium_bin2hex(hex, sizeof(hex), bytes, sizeof(bytes));
    writeFileAtomically(path, std::string(hex) + "\n", 0600);
    return hex;
  }
  if (fd < 0) fail("cannot read " + path);
  struct stat st;
  if (fstat(fd, &st) != 0) fail("cannot stat " + path);
  if ((st.st_mode & 077) != 0) {
    close(fd);
    char mode[8];
    snprintf(mode, sizeof(mode), "%03o", st.st_mode & 0777);
    throw std::runtime_error(path + " is readable by group or others (mode " + mode +
                             "); chmod 600 it and consider rotating it (delete it and restart "
                             "the gateway)");
  }
  char buf[256];
  ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  if (n < 0) fail("cannot read " + path);
  std::string token(buf, n);
  while (!token.empty() && isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  if (token.size() < 32) throw std::runtime_error(path + ": token is shorter than 32 characters");
  return token;
}

void writeGatewayUrl(const HomeLayout& home, const std::string& url) {
  writeFileAtomically(home.urlPath(), url + "\n", 0644, Durability::RENAMED);
}

ServiceUser lookupServiceUser(const std::string& name) {
  errno = 0;
  struct passwd* pw = getpwnam(name.c_str());
  if (pw == nullptr) {
    throw std::runtime_error("--user " + name +
                             ": no such user (create one with: useradd --system " + name + ")");
  }
  if (pw->pw_uid == 0) throw std::runtime_error("--user " + name + ": refusing to run as uid 0");
  return ServiceUser{pw->pw_uid, pw->pw_gid, pw->pw_name, pw->pw_dir ? pw->pw_dir : ""};
}

void dropRootTo(const ServiceUser& user, const std::string& home) {
  if (geteuid() != 0) return;
  // The service user must own its home: it writes transcripts and the token there.
  try {
    handTreeTo(home, user.uid, user.gid);
  } catch (const std::runtime_error& e) {
    throw std::runtime_error("cannot hand " + home + " to " + user.name + ": " + e.what());
  }
  becomeUser(user);
}

void becomeUser(const ServiceUser& user) {
  if (geteuid() != 0) return;
  if (setgroups(1, &user.gid) != 0) fail("setgroups");
  if (setresgid(user.gid, user.gid, user.gid) != 0) fail("setresgid");
  if (setresuid(user.uid, user.uid, user.uid) != 0) fail("setresuid");
  // Paranoia, as OpenSSH does after permanently_set_uid(): root must be gone for good.
  if (setuid(0) == 0 || seteuid(0) == 0) {
    throw std::runtime_error("privilege drop failed: uid 0 could be regained");
  }
  if (getuid() != user.uid || geteuid() != user.uid || getgid() != user.gid) {
    throw std::runtime_error("privilege drop failed: ids did not change");
  }
  setenv("HOME", user.homeDir.c_str(), 1);
  setenv("USER", user.name.c_str(), 1);
}

void becomeHomeOwner(const std::string& homeDir) {
  if (geteuid() != 0) return;
  struct stat st;
  if (stat(homeDir.c_str(), &st) != 0 || st.st_uid == 0) return;
  struct passwd* pw = getpwuid(st.st_uid);
  if (pw == nullptr)
    throw std::runtime_error(homeDir + " belongs to uid " + std::to_string(st.st_uid) +
                             ", which has no name: run this as that user");
  becomeUser(lookupServiceUser(pw->pw_name));
}

}  // namespace chitin
