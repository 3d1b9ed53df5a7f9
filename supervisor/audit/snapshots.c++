// SPDX-License-Identifier: Apache-2.0
// Workspace snapshots and rollback with libgit2 (see snapshots.h).
// Runs in: supervisor
//
// The workspace is read and written only through directory fds opened with O_NOFOLLOW, starting
// from the workspace root: a sandboxed tool may have planted symlinks anywhere in it, and none of
// them may lead a privileged write (or read) outside.

#include "snapshots.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <map>
#include <set>
#include <stdexcept>

namespace chitin::audit {

namespace {

// libgit2 once per process; its global/system config search paths cleared, so that neither the
// owner's ~/.gitconfig nor /etc/gitconfig changes how snapshots are written.
void ensureLibgit2() {
  struct Lib {
    Lib() {
      git_libgit2_init();
      for (int level : {GIT_CONFIG_LEVEL_PROGRAMDATA, GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG,
                        GIT_CONFIG_LEVEL_GLOBAL})
        git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, level, "");
    }
    ~Lib() { git_libgit2_shutdown(); }
  };
  static Lib lib;
}

void check(int rc, const std::string& op) {
  if (rc >= 0) return;
  const git_error* e = git_error_last();
  throw std::runtime_error("snapshots: " + op + ": " +
                           (e && e->message ? e->message : "libgit2 error " + std::to_string(rc)));
}

[[noreturn]] void throwErrno(const std::string& op, const std::string& path) {
  throw std::runtime_error("snapshots: " + op + " " + path + ": " + strerror(errno));
}

template <typename T, void (*F)(T*)>
struct GitFree {
  void operator()(T* p) const { F(p); }
};
template <typename T, void (*F)(T*)>
using GitPtr = std::unique_ptr<T, GitFree<T, F>>;
using ObjectPtr = GitPtr<git_object, git_object_free>;
using CommitPtr = GitPtr<git_commit, git_commit_free>;
using TreePtr = GitPtr<git_tree, git_tree_free>;
using BlobPtr = GitPtr<git_blob, git_blob_free>;
using BuilderPtr = GitPtr<git_treebuilder, git_treebuilder_free>;
using SignaturePtr = GitPtr<git_signature, git_signature_free>;

struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

struct Entry {
  git_filemode_t mode;
  git_oid oid;
  bool operator==(const Entry& o) const { return mode == o.mode && git_oid_equal(&oid, &o.oid); }
};
// Path ('/'-separated, relative to the workspace) -> blob. Directories are implied.
using FlatTree = std::map<std::string, Entry>;

std::string hex(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof(buf), &oid);
  return buf;
}

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    size_t slash = path.find('/', pos);
    out.push_back(path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos));
    if (slash == std::string::npos) return out;
    pos = slash + 1;
  }
}

// Opens the directory `dirs` under `root` without following any symlink. With `create`, a
// missing component is made, and a non-directory in the way (a file, or a symlink planted by a
// tool) is removed first. Returns -1 (errno set) if it cannot be opened and `create` is false.
int openDirs(int root, const std::vector<std::string>& dirs, size_t count, bool create) {
  int fd = ::fcntl(root, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return -1;
  for (size_t i = 0; i < count; ++i) {
    const char* name = dirs[i].c_str();
    int next = ::openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0 && create && (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)) {
      if (errno != ENOENT && ::unlinkat(fd, name, 0) < 0) {
        int err = errno;
        ::close(fd);
        errno = err;
        return -1;
      }
      if (::mkdirat(fd, name, 0755) == 0 || errno == EEXIST)
        next = ::openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    }
    int err = errno;
    ::close(fd);
    if (next < 0) {
      errno = err;
      return -1;
    }
    fd = next;
  }
  return fd;
}

// Deletes `name` in `dirfd` and, if it is a directory, everything under it (never following a
// symlink: a symlink is an entry to unlink like any other).
void removeTreeAt(int dirfd, const std::string& name, const std::string& shownPath) {
  if (::unlinkat(dirfd, name.c_str(), 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR && errno != EPERM) throwErrno("cannot remove", shownPath);
  Fd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (sub.fd < 0) throwErrno("cannot open", shownPath);
  std::vector<std::string> names;
  {
    DIR* d = ::fdopendir(::fcntl(sub.fd, F_DUPFD_CLOEXEC, 0));
    if (!d) throwErrno("cannot list", shownPath);
    while (struct dirent* ent = ::readdir(d)) {
      std::string n = ent->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
  }
  for (auto& n : names) removeTreeAt(sub.fd, n, shownPath + "/" + n);
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) < 0 && errno != ENOENT)
    throwErrno("cannot remove", shownPath);
}

bool readAllAt(int dirfd, const char* name, std::string& out, struct stat& st) {
  // O_NONBLOCK: if the file was swapped for a fifo since fstatat(), open must not hang.
  Fd fd(::openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.fd < 0) return false;
  if (::fstat(fd.fd, &st) < 0 || !S_ISREG(st.st_mode)) return false;
  out.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  for (;;) {
    if (done == out.size()) out.resize(out.size() + 4096);  // grew since fstat()
    ssize_t n = ::read(fd.fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return true;
}

}  // namespace

void addFiles(Record& record, const std::vector<FileChange>& changes) {
  for (auto& c : changes) {
    auto* f = record.add_files();
    f->set_path(c.path);
    f->set_before(c.before);
    f->set_after(c.after);
  }
}

struct Snapshots::Impl {
  std::string gitDir;
  std::string workDir;
  git_repository* repo = nullptr;
  // The last snapshot, so that an unchanged workspace costs only the scan.
  FlatTree lastTree;
  git_oid lastCommit = {};
  bool haveLast = false;
  ~Impl() { git_repository_free(repo); }

  Fd openWorkspace() {
    Fd root(::open(workDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (root.fd < 0) throwErrno("cannot open workspace", workDir);
    return root;
  }

  git_oid hashBlob(const std::string& data, bool write) {
    git_oid oid;
    if (write)
      check(git_blob_create_from_buffer(&oid, repo, data.data(), data.size()), "write blob");
    else
      check(git_odb_hash(&oid, data.data(), data.size(), GIT_OBJECT_BLOB), "hash blob");
    return oid;
  }

  // What a regular file looked like when it was last hashed, as git's index keeps it, so that
  // an unchanged file is neither read nor hashed again. ctime cannot be set from user space
  // and changes with every write, chmod or rename; an entry whose ctime is too close to the scan
  // that made it is not kept ("racy git": the kernel's timestamps are coarse, so a write in the
  // same tick could leave every field equal).
  struct StatKey {
    dev_t dev;
    ino_t ino;
    off_t size;
    mode_t mode;
    struct timespec mtime, ctime;
    bool operator==(const StatKey& o) const {
      return dev == o.dev && ino == o.ino && size == o.size && mode == o.mode &&
             mtime.tv_sec == o.mtime.tv_sec && mtime.tv_nsec == o.mtime.tv_nsec &&
             ctime.tv_sec == o.ctime.tv_sec && ctime.tv_nsec == o.ctime.tv_nsec;
    }
  };
  struct Cached {
    StatKey key;
    git_oid oid;
    bool written;  // the blob is in the repository (not merely hashed)
  };
  static constexpr int64_t RACY_NANOS = 100'000'000;  // coarse clocks tick every 1-10 ms
  std::map<std::string, Cached> statCache;
  std::map<std::string, Cached> nextCache;
  int64_t scanStartNanos = 0;

  static StatKey keyOf(const struct stat& st) {
    return {st.st_dev, st.st_ino, st.st_size, st.st_mode, st.st_mtim, st.st_ctim};
  }

  // The workspace as it is now. With `write`, its blobs are stored in the repository.
  FlatTree scan(bool write) {
    FlatTree out;
    Fd root = openWorkspace();
    struct timespec now;
    ::clock_gettime(CLOCK_REALTIME, &now);
    scanStartNanos = static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
    nextCache.clear();
    scanDir(root.fd, "", write, out);
    statCache.swap(nextCache);
    nextCache.clear();
    return out;
  }

  git_oid regularFileBlob(int dirfd, const std::string& name, const std::string& rel,
                          const struct stat& st, bool write, std::string& content) {
    auto hit = statCache.find(rel);
    if (hit != statCache.end() && hit->second.key == keyOf(st) && (hit->second.written || !write)) {
      nextCache.insert(*hit);
      return hit->second.oid;
    }
    struct stat opened;
    if (!readAllAt(dirfd, name.c_str(), content, opened)) {
      if (errno == ENOENT) throw std::out_of_range("vanished");
      throwErrno("cannot read", workDir + "/" + rel);
    }
    git_oid oid = hashBlob(content, write);
    int64_t ctimeNanos =
        static_cast<int64_t>(opened.st_ctim.tv_sec) * 1'000'000'000 + opened.st_ctim.tv_nsec;
    if (ctimeNanos < scanStartNanos - RACY_NANOS && keyOf(opened) == keyOf(st))
      nextCache[rel] = {keyOf(st), oid, write};
    return oid;
  }

  void scanDir(int dirfd, const std::string& prefix, bool write, FlatTree& out) {
    std::vector<std::string> names;
    {
      DIR* d = ::fdopendir(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
      if (!d) throwErrno("cannot list", workDir + "/" + prefix);
      while (struct dirent* ent = ::readdir(d)) {
        std::string n = ent->d_name;
        // `.git`: the agent's own repositories are not part of snapshots (snapshots.h).
        if (n != "." && n != ".." && n != ".git") names.push_back(n);
      }
      ::closedir(d);
    }
    std::string content;
    for (auto& name : names) {
      std::string rel = prefix + name;
      struct stat st;
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT) continue;  // removed while we looked
        throwErrno("cannot stat", workDir + "/" + rel);
      }
      if (S_ISDIR(st.st_mode)) {
        Fd sub(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (sub.fd < 0) {
          if (errno == ENOENT) continue;
          throwErrno("cannot open", workDir + "/" + rel);
        }
        scanDir(sub.fd, rel + "/", write, out);
      } else if (S_ISREG(st.st_mode)) {
        git_oid oid;
        try {
          oid = regularFileBlob(dirfd, name, rel, st, write, content);
        } catch (const std::out_of_range&) {
          continue;  // removed while we looked
        }
        out[rel] = {(st.st_mode & S_IXUSR) ? GIT_FILEMODE_BLOB_EXECUTABLE : GIT_FILEMODE_BLOB, oid};
      } else if (S_ISLNK(st.st_mode)) {
        content.resize(static_cast<size_t>(st.st_size) + 1);
        ssize_t n;
        for (;;) {
          n = ::readlinkat(dirfd, name.c_str(), content.data(), content.size());
          if (n < 0 || static_cast<size_t>(n) < content.size()) break;
          content.resize(content.size() * 2);  // the link changed since fstatat()
        }
        if (n < 0) {
          if (errno == ENOENT) continue;
          throwErrno("cannot read link", workDir + "/" + rel);
        }
        content.resize(static_cast<size_t>(n));
        out[rel] = {GIT_FILEMODE_LINK, hashBlob(content, write)};
      }
      // Fifos, sockets and devices are not content: skipped (snapshots.h).
    }
  }

  struct DirNode {
    std::map<std::string, DirNode> dirs;
    std::vector<std::pair<std::string, Entry>> files;
  };

  git_oid writeTree(const DirNode& node) {
    git_treebuilder* raw = nullptr;
    check(git_treebuilder_new(&raw, repo, nullptr), "create tree");
    BuilderPtr builder(raw);
    for (auto& [name, sub] : node.dirs) {
      git_oid oid = writeTree(sub);
      check(git_treebuilder_insert(nullptr, builder.get(), name.c_str(), &oid, GIT_FILEMODE_TREE),
            "add directory " + name);
    }
    for (auto& [name, entry] : node.files)
      check(git_treebuilder_insert(nullptr, builder.get(), name.c_str(), &entry.oid, entry.mode),
            "add file " + name);
    git_oid oid;
    check(git_treebuilder_write(&oid, builder.get()), "write tree");
    return oid;
  }

  git_oid writeTree(const FlatTree& flat) {
    DirNode root;
    for (auto& [path, entry] : flat) {
      auto parts = split(path);
      DirNode* node = &root;
      for (size_t i = 0; i + 1 < parts.size(); ++i) node = &node->dirs[parts[i]];
      node->files.emplace_back(parts.back(), entry);
    }
    return writeTree(root);
  }

  CommitPtr lookupCommit(const std::string& id) {
    if (id.empty()) throw std::runtime_error("snapshots: empty snapshot id");
    git_object* raw = nullptr;
    check(git_revparse_single(&raw, repo, id.c_str()), "find snapshot " + id);
    ObjectPtr obj(raw);
    git_object* peeled = nullptr;
    check(git_object_peel(&peeled, obj.get(), GIT_OBJECT_COMMIT),
          "snapshot " + id + " is a commit");
    return CommitPtr(reinterpret_cast<git_commit*>(peeled));
  }

  FlatTree treeOf(const std::string& id) {
    CommitPtr commit = lookupCommit(id);
    git_tree* raw = nullptr;
    check(git_commit_tree(&raw, commit.get()), "read tree of " + id);
    TreePtr tree(raw);
    FlatTree out;
    auto cb = [](const char* root, const git_tree_entry* entry, void* payload) -> int {
      git_filemode_t mode = git_tree_entry_filemode(entry);
      if (mode == GIT_FILEMODE_TREE) return 0;
      std::string name = git_tree_entry_name(entry);
      // The repository is ours, but restore() writes what it says: refuse names that could
      // step out of a directory or into a repository's metadata.
      if (name.empty() || name == "." || name == ".." || name == ".git" ||
          name.find('/') != std::string::npos || mode == GIT_FILEMODE_COMMIT)
        return -1;
      (*static_cast<FlatTree*>(payload))[std::string(root) + name] = {mode,
                                                                      *git_tree_entry_id(entry)};
      return 0;
    };
    int rc = git_tree_walk(tree.get(), GIT_TREEWALK_PRE, cb, &out);
    if (rc == GIT_EUSER)
      throw std::runtime_error("snapshots: snapshot " + id + " holds an entry restore refuses");
    check(rc, "read tree of " + id);
    return out;
  }

  std::string blobContent(const git_oid& oid, const std::string& path) {
    git_blob* raw = nullptr;
    check(git_blob_lookup(&raw, repo, &oid), "read blob of " + path);
    BlobPtr blob(raw);
    return std::string(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                       static_cast<size_t>(git_blob_rawsize(blob.get())));
  }

  // Writes one entry of a snapshot at `path`: into a temporary name in the same directory, then
  // renamed over whatever is there (a file, or a symlink, which is replaced, not followed).
  void writeEntry(int root, const std::string& path, const Entry& entry) {
    auto parts = split(path);
    Fd dir(openDirs(root, parts, parts.size() - 1, true));
    if (dir.fd < 0) throwErrno("cannot create the directory of", workDir + "/" + path);
    const std::string& name = parts.back();
    std::string content = blobContent(entry.oid, path);
    std::string tmp;
    for (int attempt = 0;; ++attempt) {
      tmp = ".chitin-restore-" + std::to_string(::getpid()) + "-" + std::to_string(attempt);
      if (entry.mode == GIT_FILEMODE_LINK) {
        if (::symlinkat(content.c_str(), dir.fd, tmp.c_str()) == 0) break;
      } else {
        Fd out(::openat(dir.fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        0600));
        if (out.fd >= 0) {
          size_t done = 0;
          while (done < content.size()) {
            ssize_t n = ::write(out.fd, content.data() + done, content.size() - done);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
              int err = errno;
              ::unlinkat(dir.fd, tmp.c_str(), 0);
              errno = err;
              throwErrno("cannot write", workDir + "/" + path);
            }
            done += static_cast<size_t>(n);
          }
          mode_t mode = entry.mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644;
          if (::fchmod(out.fd, mode) < 0) throwErrno("cannot chmod", workDir + "/" + path);
          break;
        }
      }
      if (errno != EEXIST || attempt > 100) throwErrno("cannot create", workDir + "/" + path);
    }
    if (::renameat(dir.fd, tmp.c_str(), dir.fd, name.c_str()) < 0) {
      if (errno == EISDIR || errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR) {
        // A directory stands where the snapshot has a file: it goes.
        removeTreeAt(dir.fd, name, workDir + "/" + path);
        if (::renameat(dir.fd, tmp.c_str(), dir.fd, name.c_str()) == 0) return;
      }
      int err = errno;
      ::unlinkat(dir.fd, tmp.c_str(), 0);
      errno = err;
      throwErrno("cannot replace", workDir + "/" + path);
    }
  }
};

namespace {

// Entries of `from` and `to` that differ, sorted by path.
std::vector<FileChange> diff(const FlatTree& from, const FlatTree& to) {
  std::vector<FileChange> out;
  auto a = from.begin(), b = to.begin();
  while (a != from.end() || b != to.end()) {
    if (b == to.end() || (a != from.end() && a->first < b->first)) {
      out.push_back({a->first, hex(a->second.oid), ""});
      ++a;
    } else if (a == from.end() || b->first < a->first) {
      out.push_back({b->first, "", hex(b->second.oid)});
      ++b;
    } else {
      if (!(a->second == b->second))
        out.push_back({a->first, hex(a->second.oid), hex(b->second.oid)});
      ++a;
      ++b;
    }
  }
  return out;
}

}  // namespace

Snapshots::Snapshots(std::string gitDir, std::string workDir) : impl_(std::make_unique<Impl>()) {
  ensureLibgit2();
  impl_->gitDir = std::move(gitDir);
  impl_->workDir = std::move(workDir);
  struct stat st;
  if (::stat((impl_->gitDir + "/HEAD").c_str(), &st) == 0) {
    check(git_repository_open_bare(&impl_->repo, impl_->gitDir.c_str()),
          "open snapshot repository " + impl_->gitDir);
    return;
  }
  if (errno != ENOENT && errno != ENOTDIR) throwErrno("cannot stat", impl_->gitDir + "/HEAD");
  git_repository_init_options opts = GIT_REPOSITORY_INIT_OPTIONS_INIT;
  opts.flags =
      GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
  opts.initial_head = "main";
  opts.description = "chitin workspace snapshots";
  check(git_repository_init_ext(&impl_->repo, impl_->gitDir.c_str(), &opts),
        "create snapshot repository " + impl_->gitDir);
  if (::chmod(impl_->gitDir.c_str(), 0700) < 0) throwErrno("cannot chmod", impl_->gitDir);
}

Snapshots::~Snapshots() = default;

const std::string& Snapshots::gitDir() const { return impl_->gitDir; }
const std::string& Snapshots::workDir() const { return impl_->workDir; }

std::string Snapshots::snapshot(const std::string& message) {
  git_repository* repo = impl_->repo;
  FlatTree flat = impl_->scan(true);
  git_oid parentId;
  int rc = git_reference_name_to_id(&parentId, repo, "HEAD");
  if (rc != 0 && rc != GIT_ENOTFOUND && rc != GIT_EUNBORNBRANCH) check(rc, "read HEAD");
  if (rc == 0 && impl_->haveLast && git_oid_equal(&parentId, &impl_->lastCommit) &&
      flat == impl_->lastTree)
    return hex(parentId);

  git_oid treeId = impl_->writeTree(flat);
  CommitPtr parent;
  if (rc == 0) {
    git_commit* raw = nullptr;
    check(git_commit_lookup(&raw, repo, &parentId), "read HEAD");
    parent.reset(raw);
  }
  auto remember = [&](const git_oid& commit) {
    impl_->lastTree = std::move(flat);
    impl_->lastCommit = commit;
    impl_->haveLast = true;
    return hex(commit);
  };
  if (parent && git_oid_equal(git_commit_tree_id(parent.get()), &treeId)) return remember(parentId);

  git_tree* rawTree = nullptr;
  check(git_tree_lookup(&rawTree, repo, &treeId), "read new tree");
  TreePtr tree(rawTree);
  git_signature* rawSig = nullptr;
  check(git_signature_now(&rawSig, "chitin", "chitin@localhost"), "make signature");
  SignaturePtr sig(rawSig);
  const git_commit* parents[1] = {parent.get()};
  git_oid commitId;
  check(git_commit_create(&commitId, repo, "HEAD", sig.get(), sig.get(), nullptr, message.c_str(),
                          tree.get(), parent ? 1 : 0, parents),
        "commit snapshot");
  return remember(commitId);
}

std::vector<FileChange> Snapshots::changesSince(const std::string& id) {
  return diff(impl_->treeOf(id), impl_->scan(false));
}

std::vector<FileChange> Snapshots::restore(const std::string& id) {
  FlatTree target = impl_->treeOf(id);
  FlatTree current = impl_->scan(false);
  std::vector<FileChange> changes = diff(current, target);
  Fd root = impl_->openWorkspace();

  // 1. Delete what the snapshot does not have (a file, or a symlink standing where the snapshot
  // has a directory: the link itself goes, never what it points to).
  std::set<std::string> emptiedDirs;  // a child sorts after its parent: walk in reverse
  for (auto& c : changes) {
    if (!c.after.empty()) continue;
    auto parts = split(c.path);
    Fd dir(openDirs(root.fd, parts, parts.size() - 1, false));
    if (dir.fd < 0) {
      if (errno == ENOENT) continue;
      throwErrno("cannot open the directory of", impl_->workDir + "/" + c.path);
    }
    if (::unlinkat(dir.fd, parts.back().c_str(), 0) < 0 && errno != ENOENT)
      throwErrno("cannot remove", impl_->workDir + "/" + c.path);
    for (size_t slash = c.path.find('/'); slash != std::string::npos;
         slash = c.path.find('/', slash + 1))
      emptiedDirs.insert(c.path.substr(0, slash));
  }
  // 2. Remove directories this emptied, deepest first, unless the snapshot has files in them.
  for (auto it = emptiedDirs.rbegin(); it != emptiedDirs.rend(); ++it) {
    const std::string& dirPath = *it;
    auto under = target.lower_bound(dirPath + "/");
    if (under != target.end() && under->first.compare(0, dirPath.size() + 1, dirPath + "/") == 0)
      continue;
    auto parts = split(dirPath);
    Fd parent(openDirs(root.fd, parts, parts.size() - 1, false));
    if (parent.fd >= 0) ::unlinkat(parent.fd, parts.back().c_str(), AT_REMOVEDIR);  // if empty
  }
  // 3. Write what differs.
  for (auto& c : changes)
    if (!c.after.empty()) impl_->writeEntry(root.fd, c.path, target.at(c.path));
  return changes;
}

void Snapshots::restorePath(const std::string& id, const std::string& path) {
  FlatTree target = impl_->treeOf(id);
  Fd root = impl_->openWorkspace();
  auto it = target.find(path);
  if (it != target.end()) {
    impl_->writeEntry(root.fd, path, it->second);
    return;
  }
  auto parts = split(path);
  Fd dir(openDirs(root.fd, parts, parts.size() - 1, false));
  if (dir.fd < 0) {
    if (errno == ENOENT) return;
    throwErrno("cannot open the directory of", impl_->workDir + "/" + path);
  }
  removeTreeAt(dir.fd, parts.back(), impl_->workDir + "/" + path);
}

}  // namespace chitin::audit
