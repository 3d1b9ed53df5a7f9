// SPDX-License-Identifier: Apache-2.0
// Snapshot retention: which snapshots stay, and getting rid of the rest (see snapshots.h,
// "History and retention").
// Runs in: supervisor (on the snapshot thread, or a caller holding the lock)
//
// libgit2 has no gc. So: every object the kept snapshots reach is written into one new pack
// (git_packbuilder over a revwalk of the kept commits), the pack is synced, and only then are the
// dropped snapshots' names recorded and removed and every other pack and loose object deleted.
// A crash at any point leaves a store where every kept snapshot is whole: at worst an extra pack
// or some objects nobody names, which the next prune removes.

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "snapshots-impl.h"

namespace chitin::audit {

namespace {

struct Named {
  git_oid id;
  int64_t time;
  std::string ref;
};

bool isHexPair(const char* name) {
  return strlen(name) == 2 && isxdigit(static_cast<unsigned char>(name[0])) &&
         isxdigit(static_cast<unsigned char>(name[1]));
}

// Calls `each(dirPath, name)` for every file in objects/XX/ and objects/pack/.
template <typename Each>
void forEachObjectFile(const std::string& objects, Each each) {
  DIR* top = ::opendir(objects.c_str());
  if (!top) throwErrno("cannot list", objects);
  std::vector<std::string> dirs;
  while (struct dirent* e = ::readdir(top))
    if (isHexPair(e->d_name) || strcmp(e->d_name, "pack") == 0) dirs.push_back(e->d_name);
  ::closedir(top);
  for (auto& d : dirs) {
    std::string dir = objects + "/" + d;
    DIR* sub = ::opendir(dir.c_str());
    if (!sub) continue;
    std::vector<std::string> files;
    while (struct dirent* e = ::readdir(sub))
      if (e->d_name[0] != '.') files.push_back(e->d_name);
    ::closedir(sub);
    for (auto& f : files) each(dir, f);
  }
}

uint64_t fileBytes(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

void syncFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.fd < 0 || ::fsync(fd.fd) < 0) throwErrno("cannot sync", path);
}

}  // namespace

std::vector<std::string> Snapshots::Impl::pruneLocked(int64_t now) {
  readyLocked();
  prunedOnce = true;
  sincePrune = 0;
  const std::string objects = gitDir + "/objects";

  // 1. Every named snapshot.
  std::vector<Named> all;
  git_reference_iterator* iter = nullptr;
  check(git_reference_iterator_glob_new(&iter, repo, "refs/snapshots/*"), "list snapshots");
  git_reference* ref = nullptr;
  while (git_reference_next(&ref, iter) == 0) {
    const git_oid* target = git_reference_target(ref);
    const char* name = git_reference_name(ref);
    if (target)
      all.push_back(
          {*target, strtoll(name + strlen("refs/snapshots/"), nullptr, 10) / 1'000'000'000, name});
    git_reference_free(ref);
  }
  git_reference_iterator_free(iter);
  if (all.empty()) return {};
  // Newest first by name (snapshotRefName); the newest (HEAD) always stays.
  std::sort(all.begin(), all.end(), [](const Named& a, const Named& b) { return a.ref > b.ref; });
  git_oid head;
  if (git_reference_name_to_id(&head, repo, "HEAD") == 0) {
    auto it = std::find_if(all.begin(), all.end(),
                           [&](const Named& n) { return git_oid_equal(&n.id, &head); });
    if (it != all.end()) std::rotate(all.begin(), it, it + 1);
  }
  size_t keep = 1;
  int64_t maxAge = static_cast<int64_t>(retention.keepDays) * 86400;
  while (keep < all.size() && keep < retention.keepSnapshots && now - all[keep].time <= maxAge)
    ++keep;

  uint64_t storeBytes = 0;
  forEachObjectFile(objects, [&](const std::string& dir, const std::string& name) {
    storeBytes += fileBytes(dir + "/" + name);
  });
  if (keep == all.size() && storeBytes <= retention.maxBytes) return {};

  // 2. One pack of what the kept snapshots reach; while it is over the size bound, keep half.
  std::string packName;
  for (;;) {
    git_packbuilder* pb = nullptr;
    check(git_packbuilder_new(&pb, repo), "start a pack");
    GitPtr<git_packbuilder, git_packbuilder_free> ownPb(pb);
    git_packbuilder_set_threads(pb, 1);
    git_revwalk* walk = nullptr;
    check(git_revwalk_new(&walk, repo), "walk snapshots");
    GitPtr<git_revwalk, git_revwalk_free> ownWalk(walk);
    for (size_t i = 0; i < keep; ++i) check(git_revwalk_push(walk, &all[i].id), "walk snapshot");
    check(git_packbuilder_insert_walk(pb, walk), "pack kept snapshots");
    check(git_packbuilder_write(pb, nullptr, 0, nullptr, nullptr), "write pack");
    packName = std::string("pack-") + git_packbuilder_name(pb);
    std::string base = objects + "/pack/" + packName;
    uint64_t bytes = fileBytes(base + ".pack") + fileBytes(base + ".idx");
    if (bytes <= retention.maxBytes || keep <= 1) break;
    keep = std::max<size_t>(1, keep / 2);
    // The next pack holds a subset of this one: this one goes with the other packs below.
  }
  for (const char* ext : {".pack", ".idx"}) syncFile(objects + "/pack/" + packName + ext);

  // 3. The dropped snapshots (and, for format-1 history, the commits behind them) are recorded
  // as pruned, then lose their names.
  std::vector<std::string> pruned;
  {
    git_revwalk* walk = nullptr;
    check(git_revwalk_new(&walk, repo), "walk pruned snapshots");
    GitPtr<git_revwalk, git_revwalk_free> ownWalk(walk);
    for (size_t i = keep; i < all.size(); ++i) git_revwalk_push(walk, &all[i].id);
    for (size_t i = 0; i < keep; ++i) git_revwalk_hide(walk, &all[i].id);
    git_oid id;
    while (git_revwalk_next(&id, walk) == 0) pruned.push_back(hex(id));
    for (size_t i = keep; i < all.size(); ++i)  // names whose commit could not be walked
      if (std::find(pruned.begin(), pruned.end(), hex(all[i].id)) == pruned.end())
        pruned.push_back(hex(all[i].id));
  }
  if (!pruned.empty()) {
    std::string path = gitDir + "/chitin-pruned";
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    if (fd.fd < 0) throwErrno("cannot open", path);
    std::string text;
    for (auto& id : pruned) text += id + "\n";
    if (::write(fd.fd, text.data(), text.size()) != static_cast<ssize_t>(text.size()) ||
        ::fsync(fd.fd) < 0)
      throwErrno("cannot write", path);
  }
  for (size_t i = keep; i < all.size(); ++i) {
    git_reference* r = nullptr;
    if (git_reference_lookup(&r, repo, all[i].ref.c_str()) == 0) {
      check(git_reference_delete(r), "remove " + all[i].ref);
      git_reference_free(r);
    }
  }

  // 4. Everything but the new pack goes.
  forEachObjectFile(objects, [&](const std::string& dir, const std::string& name) {
    if (name.compare(0, packName.size(), packName) == 0) return;
    if (::unlink((dir + "/" + name).c_str()) < 0 && errno != ENOENT)
      throwErrno("cannot remove", dir + "/" + name);
  });
  if (DIR* top = ::opendir(objects.c_str())) {
    while (struct dirent* e = ::readdir(top))
      if (isHexPair(e->d_name)) ::rmdir((objects + "/" + e->d_name).c_str());
    ::closedir(top);
  }

  // libgit2 caches objects and pack lists per repository: start afresh.
  openRepositoryLocked();
  git_odb* odb = nullptr;
  check(git_repository_odb(&odb, repo), "open the object database");
  GitPtr<git_odb, git_odb_free> ownOdb(odb);
  scanner.forgetMissing(odb);
  return pruned;
}

}  // namespace chitin::audit
