// SPDX-License-Identifier: Apache-2.0
// Workspace snapshots with libgit2: taking and comparing them, reading their trees back (see
// snapshots.h). The thread is in snapshot-thread.c++, restore and retention in
// snapshot-restore.c++ and snapshot-retention.c++.
// Runs in: supervisor

#include <errno.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "libgit2-loader.h"
#include "snapshots-impl.h"
#include "utf8.h"

namespace chitin::audit {

namespace {

// libgit2 once per process, loaded now (libgit2-loader.h: a library that cannot be loaded fails
// this snapshot, and is tried again for the next); its global/system config search paths
// cleared, so that neither the owner's ~/.gitconfig nor /etc/gitconfig changes how snapshots
// are written.
void ensureLibgit2() {
  struct Lib {
    Lib() {
      if (std::string problem = loadLibgit2(); !problem.empty())
        throw std::runtime_error("snapshots: " + problem);
      git_libgit2_init();
      for (int level : {GIT_CONFIG_LEVEL_PROGRAMDATA, GIT_CONFIG_LEVEL_SYSTEM, GIT_CONFIG_LEVEL_XDG,
                        GIT_CONFIG_LEVEL_GLOBAL})
        git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, level, "");
    }
    ~Lib() { git_libgit2_shutdown(); }
  };
  static Lib lib;
}

// libgit2's start-up parses the system's whole CA bundle for HTTPS remotes and keeps it for the
// life of the process (~360 KiB of the supervisor's heap with Debian's bundle). Snapshots never
// fetch or push, so once a repository exists the trust store is swapped for one read from a
// fresh, empty directory made beside it and removed at once: no certificate is kept, and an
// HTTPS connection libgit2 were ever asked to make would verify against nothing. If that
// directory cannot be made the bundle stays; it costs memory, nothing else.
void emptyTrustStore(const std::string& besideDir) {
  static std::once_flag once;
  std::call_once(once, [&] {
    std::string dir = besideDir + "/.no-ca-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) {
      spdlog::debug("snapshots: libgit2 keeps the CA bundle (cannot make {}: {})", dir,
                    strerror(errno));
      return;
    }
    if (git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, nullptr, dir.c_str()) < 0) {
      const git_error* e = git_error_last();
      spdlog::debug("snapshots: libgit2 keeps the CA bundle ({})", e ? e->message : "?");
    }
    ::rmdir(dir.c_str());
  });
}

using ObjectPtr = GitPtr<git_object, git_object_free>;
using BlobPtr = GitPtr<git_blob, git_blob_free>;
using BuilderPtr = GitPtr<git_treebuilder, git_treebuilder_free>;
using SignaturePtr = GitPtr<git_signature, git_signature_free>;

constexpr size_t RECORDED_SKIPS = 100;  // per audit record; the manifest has them all

}  // namespace

void check(int rc, const std::string& op) {
  if (rc >= 0) return;
  const git_error* e = git_error_last();
  throw std::runtime_error("snapshots: " + op + ": " +
                           (e && e->message ? e->message : "libgit2 error " + std::to_string(rc)));
}

void throwErrno(const std::string& op, const std::string& path) {
  throw std::runtime_error("snapshots: " + op + " " + path + ": " + strerror(errno));
}

std::string hex(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof(buf), &oid);
  return buf;
}

std::vector<std::string> splitPath(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    size_t slash = path.find('/', pos);
    out.push_back(path.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos));
    if (slash == std::string::npos) return out;
    pos = slash + 1;
  }
}

std::string printablePath(const std::string& path) {
  kj::ArrayPtr<const char> bytes(path.data(), path.size());
  if (isValidUtf8(bytes)) return path;
  std::string out;
  for (size_t i = 0; i < path.size();) {
    size_t n = utf8SequenceLength(bytes, i);
    if (n == 0) {
      char buf[8];
      snprintf(buf, sizeof(buf), "\\x%02X", static_cast<unsigned char>(path[i]));
      out += buf;
      ++i;
    } else {
      out.append(path, i, n);
      i += n;
    }
  }
  return out;
}

void addFiles(Record& record, const std::vector<FileChange>& changes) {
  for (auto& c : changes) {
    auto* f = record.add_files();
    f->set_path(printablePath(c.path));
    f->set_before(c.before);
    f->set_after(c.after);
  }
}

void addSkipped(Record& record, const std::vector<Skipped>& skipped, bool incomplete) {
  size_t shown = std::min(skipped.size(), RECORDED_SKIPS);
  for (size_t i = 0; i < shown; ++i) {
    auto* s = record.add_skipped();
    s->set_path(printablePath(skipped[i].path));
    s->set_reason(printablePath(skipped[i].reason));
  }
  if (skipped.size() > shown) {
    auto* s = record.add_skipped();
    s->set_path(".");
    s->set_reason(std::to_string(skipped.size() - shown) +
                  " more skipped entries, listed in the snapshot's manifest");
  }
  if (incomplete) {
    auto* s = record.add_skipped();
    s->set_path(".");
    s->set_reason("incomplete: a rollback to this snapshot deletes nothing it does not list");
  }
}

std::string snapshotRefName(int64_t stamp) {
  char buf[48];
  snprintf(buf, sizeof(buf), "refs/snapshots/%020lld", static_cast<long long>(stamp));
  return buf;
}

int64_t Snapshots::Impl::lastStampLocked() {
  int64_t last = 0;
  git_reference_iterator* iter = nullptr;
  check(git_reference_iterator_glob_new(&iter, repo, "refs/snapshots/*"), "list snapshots");
  const char* name = nullptr;
  while (git_reference_next_name(&name, iter) == 0)
    last = std::max<int64_t>(last, strtoll(name + strlen("refs/snapshots/"), nullptr, 10));
  git_reference_iterator_free(iter);
  return last;
}

int64_t Snapshots::Impl::nextStampLocked() {
  if (lastStamp == 0) lastStamp = lastStampLocked();
  struct timespec now;
  ::clock_gettime(CLOCK_REALTIME, &now);
  lastStamp =
      std::max(lastStamp + 1, static_cast<int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec);
  return lastStamp;
}

bool SnapshotTree::covers(const std::string& path) const {
  if (skippedPaths.count(".")) return true;
  for (size_t slash = 0;; ++slash) {
    slash = path.find('/', slash);
    std::string prefix = path.substr(0, slash);
    if (skippedPaths.count(prefix)) return true;
    if (legacy) {
      size_t start = prefix.rfind('/');
      if (prefix.compare(start == std::string::npos ? 0 : start + 1, std::string::npos, ".git") ==
          0)
        return true;
    }
    if (slash == std::string::npos) return false;
  }
}

std::vector<FileChange> diffTrees(const FlatTree& from, const FlatTree& to) {
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

Snapshots::Impl::~Impl() {
  {
    std::lock_guard<std::mutex> g(queueLock);
    stopping = true;
  }
  queueReady.notify_all();
  if (worker.joinable()) worker.join();
  git_repository_free(repo);
}

void Snapshots::Impl::openRepositoryLocked() {
  git_repository_free(repo);
  repo = nullptr;
  check(git_repository_open_bare(&repo, gitDir.c_str()), "open snapshot repository " + gitDir);
}

Fd Snapshots::Impl::openWorkspace() {
  Fd root(::open(workDir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.fd < 0) throwErrno("cannot open workspace", workDir);
  return root;
}

ScanResult Snapshots::Impl::scanLocked() {
  Fd root = openWorkspace();
  git_odb* odb = nullptr;
  check(git_repository_odb(&odb, repo), "open the object database");
  GitPtr<git_odb, git_odb_free> own(odb);
  return scanner.scan(root.fd, odb);
}

git_oid Snapshots::Impl::writeTreeLocked(const FlatTree& files, const std::string& manifest) {
  // Directories as nested nodes; depth is bounded by SnapshotLimits::maxDepth, so the recursion
  // below is too (the workspace cannot deepen it).
  struct DirNode {
    std::map<std::string, DirNode> dirs;
    std::vector<std::pair<std::string, TreeEntry>> files;
  };
  DirNode root;
  for (auto& [path, entry] : files) {
    auto parts = splitPath(path);
    DirNode* node = &root;
    for (size_t i = 0; i + 1 < parts.size(); ++i) node = &node->dirs[parts[i]];
    node->files.emplace_back(parts.back(), entry);
  }
  auto write = [this](auto& self, const DirNode& node, const std::string* manifestText) -> git_oid {
    git_treebuilder* raw = nullptr;
    check(git_treebuilder_new(&raw, repo, nullptr), "create tree");
    BuilderPtr builder(raw);
    for (auto& [name, sub] : node.dirs) {
      git_oid oid = self(self, sub, nullptr);
      check(git_treebuilder_insert(nullptr, builder.get(), names::encodeName(name).c_str(), &oid,
                                   GIT_FILEMODE_TREE),
            "add directory " + name);
    }
    for (auto& [name, entry] : node.files)
      check(git_treebuilder_insert(nullptr, builder.get(), names::encodeName(name).c_str(),
                                   &entry.oid, entry.mode),
            "add file " + name);
    if (manifestText) {
      git_oid oid;
      check(git_blob_create_from_buffer(&oid, repo, manifestText->data(), manifestText->size()),
            "write manifest");
      check(
          git_treebuilder_insert(nullptr, builder.get(), names::MANIFEST, &oid, GIT_FILEMODE_BLOB),
          "add manifest");
    }
    git_oid oid;
    check(git_treebuilder_write(&oid, builder.get()), "write tree");
    return oid;
  };
  return write(write, root, &manifest);
}

Snapshot Snapshots::Impl::takeLocked(const std::string& message, ScanResult* scanned) {
  readyLocked();
  ScanResult scan = scanLocked();
  Snapshot result;
  result.skipped = scan.skipped;
  result.incomplete = scan.incomplete;
  result.bytesRead = scan.bytesRead;
  result.entries = scan.entries;
  names::Manifest m{scan.incomplete, scan.incompleteReason, scan.skipped};
  std::string manifest = names::writeManifest(m);
  auto done = [&](const git_oid& commit) {
    result.id = hex(commit);
    if (scanned) *scanned = scan;
    lastFiles = std::move(scan.files);
    lastManifest = std::move(manifest);
    lastCommit = commit;
    haveLast = true;
    return result;
  };

  git_oid headId;
  int rc = git_reference_name_to_id(&headId, repo, "HEAD");
  if (rc != 0 && rc != GIT_ENOTFOUND && rc != GIT_EUNBORNBRANCH) check(rc, "read HEAD");
  if (rc == 0 && haveLast && git_oid_equal(&headId, &lastCommit) && scan.files == lastFiles &&
      manifest == lastManifest)
    return done(headId);

  git_oid treeId = writeTreeLocked(scan.files, manifest);
  if (rc == 0) {
    git_commit* raw = nullptr;
    check(git_commit_lookup(&raw, repo, &headId), "read HEAD");
    CommitPtr head(raw);
    if (git_oid_equal(git_commit_tree_id(head.get()), &treeId)) return done(headId);
  }
  git_tree* rawTree = nullptr;
  check(git_tree_lookup(&rawTree, repo, &treeId), "read new tree");
  TreePtr tree(rawTree);
  git_signature* rawSig = nullptr;
  check(git_signature_now(&rawSig, "chitin", "chitin@localhost"), "make signature");
  SignaturePtr sig(rawSig);
  std::string text = message;
  if (!scan.skipped.empty() || scan.incomplete)
    text += "\n\n" + std::to_string(scan.skipped.size()) + " entries skipped" +
            (scan.incomplete ? " (incomplete: " + scan.incompleteReason + ")" : "") + "; see " +
            names::MANIFEST;
  // A root commit: retention can drop old snapshots without changing any kept snapshot's id.
  git_oid commitId;
  check(git_commit_create(&commitId, repo, nullptr, sig.get(), sig.get(), nullptr, text.c_str(),
                          tree.get(), 0, nullptr),
        "commit snapshot");
  git_reference* ref = nullptr;
  check(git_reference_create(&ref, repo, snapshotRefName(nextStampLocked()).c_str(), &commitId, 0,
                             "snapshot"),
        "name snapshot");
  git_reference_free(ref);
  check(git_reference_create(&ref, repo, "refs/heads/main", &commitId, 1, "snapshot"),
        "update refs/heads/main");
  git_reference_free(ref);
  ++sincePrune;
  return done(commitId);
}

Comparison Snapshots::Impl::compareLocked(const std::string& id) {
  readyLocked();
  SnapshotTree before = treeOfLocked(id);
  ScanResult now = scanLocked();
  SnapshotTree after;
  for (auto& s : now.skipped) after.skippedPaths.insert(s.path);
  Comparison out;
  for (auto& c : diffTrees(before.files, now.files)) {
    if (before.covers(c.path) || after.covers(c.path)) continue;  // unknown on one side
    if (c.before.empty() && before.incomplete) continue;
    if (c.after.empty() && now.incomplete) continue;
    out.files.push_back(std::move(c));
  }
  out.skipped = std::move(now.skipped);
  out.incomplete = now.incomplete;
  return out;
}

CommitPtr Snapshots::Impl::lookupCommitLocked(const std::string& id) {
  if (id.empty()) throw std::runtime_error("snapshots: empty snapshot id");
  git_object* raw = nullptr;
  int rc = git_revparse_single(&raw, repo, id.c_str());
  if (rc == GIT_ENOTFOUND) {
    if (auto problem = prunedProblem(id)) throw std::runtime_error(*problem);
  }
  check(rc, "find snapshot " + id);
  ObjectPtr obj(raw);
  git_object* peeled = nullptr;
  check(git_object_peel(&peeled, obj.get(), GIT_OBJECT_COMMIT), "snapshot " + id + " is a commit");
  return CommitPtr(reinterpret_cast<git_commit*>(peeled));
}

SnapshotTree Snapshots::Impl::treeOfLocked(const std::string& id) {
  CommitPtr commit = lookupCommitLocked(id);
  git_tree* raw = nullptr;
  check(git_commit_tree(&raw, commit.get()), "read tree of " + id);
  TreePtr tree(raw);
  SnapshotTree out;
  const git_tree_entry* manifestEntry = git_tree_entry_byname(tree.get(), names::MANIFEST);
  out.legacy = manifestEntry == nullptr;
  if (manifestEntry) {
    git_blob* rawBlob = nullptr;
    check(git_blob_lookup(&rawBlob, repo, git_tree_entry_id(manifestEntry)), "read manifest");
    BlobPtr blob(rawBlob);
    auto m = names::readManifest(
        std::string_view(static_cast<const char*>(git_blob_rawcontent(blob.get())),
                         static_cast<size_t>(git_blob_rawsize(blob.get()))));
    if (!m)
      throw std::runtime_error("snapshots: snapshot " + id + " has a manifest it cannot read");
    out.incomplete = m->incomplete;
    out.incompleteReason = m->incompleteReason;
    out.skipped = std::move(m->skipped);
    for (auto& s : out.skipped) out.skippedPaths.insert(s.path);
  }
  struct Walk {
    SnapshotTree* out;
    std::string root, decodedRoot;  // the last directory decoded, reused by its entries
  } walk{&out, "", ""};
  auto cb = [](const char* root, const git_tree_entry* entry, void* payload) -> int {
    auto* w = static_cast<Walk*>(payload);
    git_filemode_t mode = git_tree_entry_filemode(entry);
    std::string name = git_tree_entry_name(entry);
    if (mode == GIT_FILEMODE_COMMIT) return -1;
    if (!w->out->legacy && *root == '\0' && name == names::MANIFEST) return 0;
    if (mode == GIT_FILEMODE_TREE) return 0;
    // The repository is ours, but restore() writes what it says: refuse names that could step
    // out of a directory, or (format 1) into a repository's metadata.
    if (w->root != root) {
      w->root = root;
      std::string r = root;
      if (r.empty() || w->out->legacy) {
        w->decodedRoot = r;
      } else {
        auto d = names::decodePath(r.substr(0, r.size() - 1));
        if (!d) return -1;
        w->decodedRoot = *d + "/";
      }
    }
    std::string decoded;
    if (w->out->legacy) {
      if (name.empty() || name == "." || name == ".." || name == ".git" ||
          name.find('/') != std::string::npos)
        return -1;
      decoded = name;
    } else {
      auto d = names::decodeName(name);
      if (!d) return -1;
      decoded = *d;
    }
    w->out->files[w->decodedRoot + decoded] = {mode, *git_tree_entry_id(entry)};
    return 0;
  };
  int rc = git_tree_walk(tree.get(), GIT_TREEWALK_PRE, cb, &walk);
  if (rc == GIT_EUSER)
    throw std::runtime_error("snapshots: snapshot " + id + " holds an entry restore refuses");
  check(rc, "read tree of " + id);
  return out;
}

std::optional<std::string> Snapshots::Impl::prunedProblem(const std::string& id) const {
  if (id.size() < 7 || id.size() > GIT_OID_HEXSZ ||
      id.find_first_not_of("0123456789abcdef") != std::string::npos)
    return std::nullopt;
  FILE* f = ::fopen((gitDir + "/chitin-pruned").c_str(), "re");
  if (!f) return std::nullopt;
  char line[128];
  bool found = false;
  while (!found && ::fgets(line, sizeof(line), f))
    found = strncmp(line, id.c_str(), id.size()) == 0;
  ::fclose(f);
  if (!found) return std::nullopt;
  return "snapshot " + id +
         " was pruned by the snapshot retention policy (snapshots.keep_days, keep_snapshots, "
         "max_store_bytes in chitin.conf) and can no longer be restored";
}

// ---- the public object -------------------------------------------------------------------------

void Snapshots::Impl::readyLocked() {
  if (repo != nullptr) return;
  ensureLibgit2();
  openOrCreateLocked();
  size_t slash = gitDir.find_last_of('/');
  emptyTrustStore(slash == std::string::npos ? "." : slash == 0 ? "/" : gitDir.substr(0, slash));
}

void Snapshots::Impl::openOrCreateLocked() {
  struct stat st;
  if (::stat((gitDir + "/HEAD").c_str(), &st) == 0) {
    openRepositoryLocked();
    // A repository from before refs/snapshots: its newest commit gets a name, so retention keeps
    // it (and the chain behind it) until it ages out like any other.
    git_oid head;
    if (git_reference_name_to_id(&head, repo, "HEAD") == 0 && lastStampLocked() == 0) {
      git_commit* c = nullptr;
      check(git_commit_lookup(&c, repo, &head), "read HEAD");
      int64_t when = git_commit_time(c);
      git_commit_free(c);
      git_reference* ref = nullptr;
      check(git_reference_create(&ref, repo, snapshotRefName(when * 1'000'000'000).c_str(), &head,
                                 0, "adopt"),
            "name HEAD");
      git_reference_free(ref);
    }
    return;
  }
  if (errno != ENOENT && errno != ENOTDIR) throwErrno("cannot stat", gitDir + "/HEAD");
  git_repository_init_options opts = GIT_REPOSITORY_INIT_OPTIONS_INIT;
  opts.flags =
      GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH | GIT_REPOSITORY_INIT_NO_REINIT;
  opts.initial_head = "main";
  opts.description = "chitin workspace snapshots";
  check(git_repository_init_ext(&repo, gitDir.c_str(), &opts),
        "create snapshot repository " + gitDir);
  if (::chmod(gitDir.c_str(), 0700) < 0) throwErrno("cannot chmod", gitDir);
}

Snapshots::Snapshots(std::string gitDir, std::string workDir, SnapshotLimits limits,
                     RetentionPolicy retention)
    : impl_(std::make_unique<Impl>(std::move(gitDir), std::move(workDir), limits, retention)) {
  Impl& im = *impl_;
  struct stat st;
  if (::stat((im.gitDir + "/HEAD").c_str(), &st) == 0) return;  // opened when first used
  if (errno != ENOENT && errno != ENOTDIR) throwErrno("cannot stat", im.gitDir + "/HEAD");
  // The first start: the repository is made now, so that it exists from here on.
  std::lock_guard<std::mutex> g(im.lock);
  im.readyLocked();
}

void Snapshots::openInBackground() {
  Impl& im = *impl_;
  if (im.openPosted.exchange(true)) return;
  im.post([&im] {
    std::lock_guard<std::mutex> g(im.lock);
    try {
      im.readyLocked();
    } catch (const std::exception& e) {
      // Every snapshot tries again, and a mutating call whose snapshot fails does not run.
      spdlog::error("{}", e.what());
    }
  });
}

Snapshots::~Snapshots() = default;

const std::string& Snapshots::gitDir() const { return impl_->gitDir; }
const std::string& Snapshots::workDir() const { return impl_->workDir; }

Snapshot Snapshots::take(const std::string& message) {
  std::lock_guard<std::mutex> g(impl_->lock);
  return impl_->takeLocked(message);
}

Comparison Snapshots::compare(const std::string& id) {
  std::lock_guard<std::mutex> g(impl_->lock);
  return impl_->compareLocked(id);
}

Restored Snapshots::restore(const std::string& id, const std::string& beforeMessage) {
  std::lock_guard<std::mutex> g(impl_->lock);
  return impl_->restoreLocked(id, beforeMessage);
}

std::vector<std::string> Snapshots::prune(int64_t nowUnixSeconds) {
  std::lock_guard<std::mutex> g(impl_->lock);
  return impl_->pruneLocked(nowUnixSeconds);
}

std::vector<Skipped> Snapshots::restorePaths(const std::string& id,
                                             const std::vector<std::string>& paths) {
  std::lock_guard<std::mutex> g(impl_->lock);
  return impl_->restorePathsLocked(id, paths);
}

}  // namespace chitin::audit
