// SPDX-License-Identifier: Apache-2.0
// Tests that a hostile workspace cannot stop snapshots or rollback: unreadable, deep, wide,
// huge, sparse and hard-linked entries are bounded, skipped and reported; `.git` is in history;
// retention prunes; the async path runs off the caller's thread.
// Runs in: test

#include <doctest/doctest.h>
#include <fcntl.h>
#include <git2.h>
#include <kj/async-io.h>
#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "audit-test-util.h"
#include "snapshots.h"

namespace chitin::audit {
namespace {

namespace fs = std::filesystem;
using test::readFile;
using test::TempDir;
using test::writeFile;

using test::exists;
using Fixture = test::SnapshotFixture;

const Skipped* findSkip(const std::vector<Skipped>& list, const std::string& path) {
  for (auto& s : list)
    if (s.path == path) return &s;
  return nullptr;
}

// Root reads a chmod-000 directory anyway (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH); the service
// user does not. This drops both from the calling thread's effective set while it lives, so the
// test sees what the supervisor sees.
struct AsServiceUser {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct saved[2]{};
  AsServiceUser() {
    REQUIRE(syscall(SYS_capget, &header, saved) == 0);
    __user_cap_data_struct dropped[2] = {saved[0], saved[1]};
    dropped[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
    REQUIRE(syscall(SYS_capset, &header, dropped) == 0);
  }
  ~AsServiceUser() { syscall(SYS_capset, &header, saved); }
};

// A directory chain `levels` deep under `dir`, each level named "d", with `leaf` written at the
// bottom; made with one descriptor at a time, as a tool in the sandbox could.
void makeDeep(const std::string& dir, int levels, const std::string& leaf) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(fd >= 0);
  for (int i = 0; i < levels; ++i) {
    REQUIRE(mkdirat(fd, "d", 0755) == 0);
    int next = openat(fd, "d", O_RDONLY | O_DIRECTORY);
    close(fd);
    REQUIRE(next >= 0);
    fd = next;
  }
  int f = openat(fd, "leaf", O_WRONLY | O_CREAT, 0644);
  REQUIRE(f >= 0);
  REQUIRE(write(f, leaf.data(), leaf.size()) == static_cast<ssize_t>(leaf.size()));
  close(f);
  close(fd);
}

// Lowers RLIMIT_NOFILE while it lives.
struct FewDescriptors {
  struct rlimit saved {};
  explicit FewDescriptors(rlim_t n) {
    getrlimit(RLIMIT_NOFILE, &saved);
    struct rlimit low = saved;
    low.rlim_cur = n;
    setrlimit(RLIMIT_NOFILE, &low);
  }
  ~FewDescriptors() { setrlimit(RLIMIT_NOFILE, &saved); }
};

TEST_CASE("snapshots: a chmod-000 directory is skipped and listed, never a failed snapshot") {
  Fixture f;
  writeFile(f.at("a.txt"), "one");
  Snapshots snaps(f.git, f.ws);
  std::string clean = snaps.take("before the tool").id;
  // What a tool can do in one exec call: `mkdir locked; chmod 000 locked`.
  fs::create_directories(f.at("locked"));
  writeFile(f.at("locked/inside"), "hidden");
  writeFile(f.at("b.txt"), "two");
  chmod(f.at("locked").c_str(), 0);
  AsServiceUser service;

  std::string id = snaps.take("next call").id;  // the old code threw here, for every call
  CHECK(id.size() == 40);
  Snapshot again = snaps.take("and the one after");
  const Skipped* s = findSkip(again.skipped, "locked");
  REQUIRE(s != nullptr);
  CHECK(s->reason.find("Permission denied") != std::string::npos);
  CHECK(snaps.compare(clean).files.size() == 1);  // b.txt; locked/ is unknown, not "removed"

  writeFile(f.at("a.txt"), "clobbered");
  Restored r = snaps.restore(clean, "before rollback");
  CHECK_FALSE(r.pruned);
  CHECK(r.before.size() == 40);
  CHECK(readFile(f.at("a.txt")) == "one");
  CHECK_FALSE(exists(f.at("b.txt")));
  REQUIRE(findSkip(r.notRestored, "locked") != nullptr);
  CHECK(findSkip(r.notRestored, "locked")->reason.find("left as it is") != std::string::npos);
  CHECK(exists(f.at("locked")));
}

TEST_CASE("snapshots: a 2,000-level directory is bounded in descriptors and depth") {
  Fixture f(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
  writeFile(f.at("top.txt"), "top");
  makeDeep(f.ws, 2000, "bottom");
  Snapshots snaps(f.git, f.ws);
  // The old walk held one descriptor per level: with 64 it failed 60 levels down.
  std::string id;
  {
    FewDescriptors few(64);
    id = snaps.take("deep").id;
  }
  Snapshot s = snaps.take("deep again");
  CHECK(s.id == id);
  REQUIRE(s.skipped.size() == 1);
  CHECK(s.skipped[0].path.size() == 2 * 257 - 1);  // "d/d/.../d", 257 levels: past the limit
  CHECK(s.skipped[0].reason.find("deeper than 256") != std::string::npos);

  writeFile(f.at("top.txt"), "changed");
  auto restored = snaps.restore(id, "").files;
  CHECK(readFile(f.at("top.txt")) == "top");
  CHECK(restored.size() == 1);
  std::string bottom = "d";
  for (int i = 1; i < 2000; ++i) bottom += "/d";
  int root = open(f.ws.c_str(), O_RDONLY | O_DIRECTORY);
  struct stat st;
  CHECK(fstatat(root, (bottom + "/leaf").c_str(), &st, 0) == 0);  // left as it was
  close(root);
}

TEST_CASE("snapshots: a directory past the entry limit is skipped whole; the rest is kept") {
  Fixture f;
  fs::create_directories(f.at("wide"));
  for (int i = 0; i < 300; ++i) writeFile(f.at("wide/f" + std::to_string(i)), "x");
  writeFile(f.at("keep.txt"), "keep");
  SnapshotLimits limits;
  limits.maxEntries = 100;
  Snapshots snaps(f.git, f.ws, limits);
  Snapshot s = snaps.take("wide");
  REQUIRE(findSkip(s.skipped, "wide") != nullptr);
  CHECK(findSkip(s.skipped, "wide")->reason.find("more than 100 entries") != std::string::npos);
  CHECK(s.entries <= 100);
  fs::remove(f.at("wide/f7"));
  writeFile(f.at("keep.txt"), "changed");
  Restored r = snaps.restore(s.id, "");
  CHECK(readFile(f.at("keep.txt")) == "keep");
  CHECK_FALSE(exists(f.at("wide/f7")));  // unknown to the snapshot: not invented
  CHECK(exists(f.at("wide/f8")));        // nor deleted
}

TEST_CASE("snapshots: a huge sparse file is skipped by size, not read") {
  Fixture f;
  int fd = open(f.at("sparse.img").c_str(), O_WRONLY | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(ftruncate(fd, 64ll << 30) == 0);  // 64 GiB apparent, no blocks
  close(fd);
  writeFile(f.at("small"), "small");
  Snapshots snaps(f.git, f.ws);
  auto t0 = std::chrono::steady_clock::now();
  Snapshot s = snaps.take("sparse");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(seconds < 2);
  CHECK(s.bytesRead == 5);
  REQUIRE(findSkip(s.skipped, "sparse.img") != nullptr);
  CHECK(findSkip(s.skipped, "sparse.img")->reason.find("too large") != std::string::npos);
}

TEST_CASE("snapshots: hard links are read once per inode; the byte budget holds") {
  Fixture f;
  writeFile(f.at("big"), std::string(3 << 20, 'b'));
  for (int i = 0; i < 50; ++i)
    REQUIRE(link(f.at("big").c_str(), f.at("link" + std::to_string(i)).c_str()) == 0);
  writeFile(f.at("other"), std::string(3 << 20, 'o'));
  SnapshotLimits limits;
  limits.maxSnapshotBytes = 5 << 20;  // room for one 3 MiB file, not two, let alone 52
  Snapshots snaps(f.git, f.ws, limits);
  Snapshot s = snaps.take("links");
  CHECK(s.bytesRead == 3u << 20);
  REQUIRE(s.skipped.size() == 1);
  CHECK(s.skipped[0].path == "other");
  CHECK(s.skipped[0].reason.find("byte budget") != std::string::npos);
  CHECK(snaps.compare(s.id).files.empty());
}

TEST_CASE("snapshots: the stat cache makes an unchanged workspace cost no file bytes") {
  Fixture f;
  for (int i = 0; i < 20; ++i) writeFile(f.at("f" + std::to_string(i)), std::string(1 << 20, 'z'));
  usleep(150'000);  // older than the racy window (workspace-scan.c++)
  Snapshots snaps(f.git, f.ws);
  Snapshot first = snaps.take("cold");
  CHECK(first.bytesRead == 20u << 20);
  Snapshot warm = snaps.take("warm");
  CHECK(warm.id == first.id);
  CHECK(warm.bytesRead == 0);
  CHECK(warm.entries == 20);
}

TEST_CASE(
    "snapshots: special files and a stopped scan are listed; incomplete restores delete "
    "nothing") {
  Fixture f;
  writeFile(f.at("a"), "a");
  REQUIRE(mkfifo(f.at("pipe").c_str(), 0600) == 0);
  SnapshotLimits limits;
  limits.timeLimitMs = 0;
  {
    Snapshots stopped(f.git, f.ws, limits);
    Snapshot s = stopped.take("no time");
    CHECK(s.incomplete);
    REQUIRE(findSkip(s.skipped, ".") != nullptr);
    writeFile(f.at("later"), "later");
    Restored r = stopped.restore(s.id, "");
    CHECK(exists(f.at("later")));  // the snapshot does not know: left
    CHECK(exists(f.at("a")));
  }
  Snapshots snaps(f.git + "2", f.ws);
  Snapshot s = snaps.take("fifo");
  REQUIRE(findSkip(s.skipped, "pipe") != nullptr);
  CHECK(findSkip(s.skipped, "pipe")->reason.find("a fifo") != std::string::npos);
  CHECK_FALSE(s.incomplete);
}

TEST_CASE("snapshots: a write into a .git directory is in history and rolled back") {
  Fixture f;
  fs::create_directories(f.at("proj/.git/hooks"));
  writeFile(f.at("proj/.git/config"), "[core]\n\tbare = false\n");
  writeFile(f.at("proj/.git/HEAD"), "ref: refs/heads/main\n");
  writeFile(f.at("proj/main.c"), "int main;");
  fs::create_directories(f.at("sub"));
  writeFile(f.at("sub/.git"), "gitdir: ../elsewhere\n");  // a gitlink file
  Snapshots snaps(f.git, f.ws);
  std::string id = snaps.take("x").id;

  // What a hostile write does: plants core.fsmonitor, a hook, and repoints a gitlink.
  writeFile(f.at("proj/.git/config"), "[core]\n\tfsmonitor = ./evil.sh\n");
  writeFile(f.at("proj/.git/hooks/post-checkout"), "#!/bin/sh\nevil\n");
  writeFile(f.at("sub/.git"), "gitdir: /etc\n");
  auto changes = snaps.compare(id).files;
  REQUIRE(changes.size() == 3);
  CHECK(changes[0].path == "proj/.git/config");
  CHECK(changes[1].path == "proj/.git/hooks/post-checkout");
  CHECK(changes[2].path == "sub/.git");
  snaps.restore(id, "");
  CHECK(readFile(f.at("proj/.git/config")) == "[core]\n\tbare = false\n");
  CHECK_FALSE(exists(f.at("proj/.git/hooks/post-checkout")));
  CHECK(readFile(f.at("sub/.git")) == "gitdir: ../elsewhere\n");
  CHECK(snaps.compare(id).files.empty());
}

TEST_CASE("snapshots: names git refuses round-trip through a real snapshot, and collide never") {
  Fixture f;
  const std::vector<std::string> names = {
      ".git", ".GIT", "GIT~1", ".git.", ".gitmodules",      "%2Egit",
      "%41",  "100%", "a\nb",  "\x7f",  ".g\xe2\x80\x8cit", "%chitin"};
  for (size_t i = 0; i < names.size(); ++i)
    writeFile(f.at(names[i]), "content " + std::to_string(i));
  fs::create_directories(f.at("d/.git/objects"));
  writeFile(f.at("d/.git/objects/x"), "object");
  Snapshots snaps(f.git, f.ws);
  std::string id = snaps.take("names").id;
  for (auto& n : names) fs::remove(f.at(n));
  fs::remove_all(f.at("d"));
  auto restored = snaps.restore(id, "").files;
  CHECK(restored.size() == names.size() + 1);
  for (size_t i = 0; i < names.size(); ++i)
    CHECK(readFile(f.at(names[i])) == "content " + std::to_string(i));
  CHECK(readFile(f.at("d/.git/objects/x")) == "object");
}

TEST_CASE("snapshots: restore writes no .git that the workspace did not have") {
  Fixture f;
  writeFile(f.at("a"), "a");
  Snapshots snaps(f.git, f.ws);
  std::string id = snaps.take("no repo yet").id;
  fs::create_directories(f.at("made/.git"));
  writeFile(f.at("made/.git/config"), "[core]\n");
  snaps.restore(id, "");
  CHECK_FALSE(exists(f.at("made")));  // the repository made after the snapshot is undone
  CHECK_FALSE(exists(f.at(".git")));
}

TEST_CASE("snapshots: a format-1 snapshot (no manifest, literal names) still restores") {
  Fixture f;
  { Snapshots init(f.git, f.ws); }  // creates the repository
  // What the previous code wrote: a parented commit on refs/heads/main, names as they are.
  git_repository* repo = nullptr;
  REQUIRE(git_repository_open_bare(&repo, f.git.c_str()) == 0);
  git_oid blob, tree, commit;
  REQUIRE(git_blob_create_from_buffer(&blob, repo, "old\n", 4) == 0);
  git_treebuilder* tb = nullptr;
  REQUIRE(git_treebuilder_new(&tb, repo, nullptr) == 0);
  REQUIRE(git_treebuilder_insert(nullptr, tb, "100%.txt", &blob, GIT_FILEMODE_BLOB) == 0);
  REQUIRE(git_treebuilder_write(&tree, tb) == 0);
  git_treebuilder_free(tb);
  git_tree* t = nullptr;
  REQUIRE(git_tree_lookup(&t, repo, &tree) == 0);
  git_signature* sig = nullptr;
  REQUIRE(git_signature_now(&sig, "chitin", "chitin@localhost") == 0);
  REQUIRE(git_commit_create(&commit, repo, "HEAD", sig, sig, nullptr, "old", t, 0, nullptr) == 0);
  git_signature_free(sig);
  git_tree_free(t);
  git_repository_free(repo);
  char hexId[GIT_OID_HEXSZ + 1];
  git_oid_tostr(hexId, sizeof(hexId), &commit);

  writeFile(f.at("100%.txt"), "new\n");
  fs::create_directories(f.at("p/.git"));
  writeFile(f.at("p/.git/config"), "[core]\n");  // format 1 never held a .git: left alone
  Snapshots snaps(f.git, f.ws);
  CHECK(snaps.prune(time(nullptr)).empty());  // adopted under refs/snapshots/, so kept
  Restored r = snaps.restore(hexId, "before");
  CHECK(readFile(f.at("100%.txt")) == "old\n");
  CHECK(readFile(f.at("p/.git/config")) == "[core]\n");
  CHECK(r.files.size() == 1);
}

TEST_CASE("snapshots: retention prunes old snapshots, repacks, and names pruned ids") {
  Fixture f;
  RetentionPolicy keep;
  keep.keepSnapshots = 3;
  keep.keepDays = 30;
  Snapshots snaps(f.git, f.ws, {}, keep);
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    writeFile(f.at("f"), "version " + std::to_string(i));
    writeFile(f.at("big" + std::to_string(i)), std::string(100000, static_cast<char>('a' + i)));
    ids.push_back(snaps.take("v" + std::to_string(i)).id);
  }
  auto pruned = snaps.prune(time(nullptr));
  CHECK(pruned.size() == 3);
  for (int i = 0; i < 3; ++i)
    CHECK(std::find(pruned.begin(), pruned.end(), ids[i]) != pruned.end());
  Restored gone = snaps.restore(ids[0], "");
  CHECK(gone.pruned);
  CHECK(gone.problem.find("was pruned") != std::string::npos);
  CHECK_THROWS_WITH_AS(snaps.compare(ids[1]), doctest::Contains("was pruned"), std::runtime_error);
  // Nothing loose remains; the kept snapshots are whole.
  int loose = 0, packs = 0;
  for (auto& e : fs::recursive_directory_iterator(f.git + "/objects")) {
    if (!e.is_regular_file()) continue;
    std::string p = e.path().string();
    if (p.find("/pack/") != std::string::npos) {
      packs += p.size() > 5 && p.substr(p.size() - 5) == ".pack";
    } else {
      ++loose;
    }
  }
  CHECK(loose == 0);
  CHECK(packs == 1);
  snaps.restore(ids[3], "");
  CHECK(readFile(f.at("f")) == "version 3");
  CHECK_FALSE(exists(f.at("big4")));
  CHECK(readFile(f.at("big3")) == std::string(100000, 'd'));
  // Age: 40 days on, only the newest is kept.
  CHECK(snaps.prune(time(nullptr) + 40 * 86400).size() == 2);
  CHECK(snaps.restore(ids[4], "").pruned);
  CHECK_FALSE(snaps.restore(ids[5], "").pruned);
  CHECK(snaps.take("after prune").id.size() == 40);  // the stat cache survived the repack
}

TEST_CASE("snapshots: the size bound keeps only the newest snapshot when the store is too big") {
  Fixture f;
  RetentionPolicy keep;
  keep.maxBytes = 4096;
  Snapshots snaps(f.git, f.ws, {}, keep);
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    std::string noise;
    uint32_t x = 2463534242u + static_cast<uint32_t>(i);
    for (int j = 0; j < 20000; ++j) {  // xorshift: incompressible, so the store really grows
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      noise += static_cast<char>(x);
    }
    writeFile(f.at("n" + std::to_string(i)), noise);
    ids.push_back(snaps.take("n" + std::to_string(i)).id);
  }
  CHECK(snaps.prune(time(nullptr)).size() == 3);
  CHECK(snaps.restore(ids[2], "").pruned);
  CHECK_FALSE(snaps.restore(ids[3], "").pruned);
}

TEST_CASE("snapshots: the async methods run on another thread and fulfil on the caller's loop") {
  Fixture f;
  writeFile(f.at("a"), "a");
  auto io = kj::setupAsyncIo();
  Snapshots snaps(f.git, f.ws);
  Snapshot s = snaps.takeAsync("async").wait(io.waitScope);
  CHECK(s.id.size() == 40);
  writeFile(f.at("a"), "b");
  Comparison c = snaps.compareAsync(s.id).wait(io.waitScope);
  REQUIRE(c.files.size() == 1);
  Restored r = snaps.restoreAsync(s.id, "before").wait(io.waitScope);
  CHECK(r.files.size() == 1);
  CHECK(readFile(f.at("a")) == "a");
  // A bad id rejects the promise; the thread carries on.
  CHECK_THROWS(snaps.compareAsync("no-such").wait(io.waitScope));
  // The caller is not held while the thread works: takeAsync returns at once, and the loop
  // runs a timer before the (cold, ~40 MB) snapshot is done.
  for (int i = 0; i < 200; ++i) writeFile(f.at("x" + std::to_string(i)), std::string(200000, 'q'));
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  auto slow = snaps.takeAsync("slow");
  auto returned = Clock::now() - t0;
  bool ticked = false;
  auto tick = io.provider->getTimer()
                  .afterDelay(1 * kj::MILLISECONDS)
                  .then([&] { ticked = true; })
                  .eagerlyEvaluate(nullptr);
  auto taken = slow.then([&](Snapshot s) {
    CHECK(ticked);
    return s;
  });
  CHECK(taken.wait(io.waitScope).id.size() == 40);
  auto total = Clock::now() - t0;
  CHECK(returned * 10 < total);
}

}  // namespace
}  // namespace chitin::audit
