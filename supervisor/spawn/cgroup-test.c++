// SPDX-License-Identifier: Apache-2.0
// Unit tests of the cgroup v2 limits against a fake cgroup tree: when limits are in force and
// when not (and why), the steps of preparation and of each worker's cgroup, and that a failing
// step fails the spawn once delegation was found.
// Runs in: tests

#include "cgroup.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <set>

#include "spawner.h"

namespace chitin::spawn {

namespace {

// A cgroup tree in memory. Writes are recorded in order; `failWrites` makes a write fail.
class FakeCgroupFs final : public CgroupFs {
 public:
  bool cgroup2 = true;
  std::map<std::string, std::string> files;
  std::set<std::string> dirs;
  std::set<std::string> readOnly;
  std::map<std::string, int> failWrites;  // path -> errno
  std::vector<std::string> log;           // "write PATH VALUE", "mkdir PATH", "rmdir PATH"

  bool isCgroup2Mount(const std::string&) override { return cgroup2; }
  std::optional<std::string> read(const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) return std::nullopt;
    return it->second;
  }
  int write(const std::string& path, const std::string& value) override {
    log.push_back("write " + path + " " + value);
    auto fail = failWrites.find(path);
    if (fail != failWrites.end()) return fail->second;
    if (files.count(path) == 0) return ENOENT;
    files[path] = value;
    return 0;
  }
  int makeDir(const std::string& path) override {
    log.push_back("mkdir " + path);
    if (dirs.count(path) > 0) return EEXIST;
    dirs.insert(path);
    // The kernel populates a new cgroup's files.
    for (const char* name : {"cgroup.procs", "cgroup.subtree_control", "cgroup.kill", "memory.max",
                             "memory.swap.max", "memory.oom.group", "pids.max", "cpu.max"}) {
      files[path + "/" + name] = "";
    }
    return 0;
  }
  int removeDir(const std::string& path) override {
    log.push_back("rmdir " + path);
    return dirs.erase(path) > 0 ? 0 : ENOENT;
  }
  bool writable(const std::string& path) override { return readOnly.count(path) == 0; }
  std::vector<std::string> subdirectories(const std::string& path) override {
    std::vector<std::string> out;
    for (auto& dir : dirs) {
      if (dir.rfind(path + "/", 0) == 0 && dir.find('/', path.size() + 1) == std::string::npos) {
        out.push_back(dir.substr(path.size() + 1));
      }
    }
    return out;
  }
  int openForWrite(const std::string& path) override {
    log.push_back("open " + path);
    if (files.count(path) == 0) return -ENOENT;
    return ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  }
};

const std::string SERVICE = "/sys/fs/cgroup/system.slice/chitin.service";

// The tree systemd makes for a service with Delegate=yes whose only process is us.
void delegated(FakeCgroupFs& fs) {
  fs.files["/proc/self/cgroup"] = "0::/system.slice/chitin.service\n";
  fs.dirs.insert(SERVICE);
  fs.files[SERVICE + "/cgroup.controllers"] = "cpuset cpu io memory pids\n";
  fs.files[SERVICE + "/cgroup.procs"] = std::to_string(getpid()) + "\n";
  fs.files[SERVICE + "/cgroup.subtree_control"] = "";
}

CgroupLimits limits() { return {1 << 30, 65, 100}; }

}  // namespace

TEST_CASE("cgroups: not in force without cgroup v2, delegation or a cgroup of our own; says why") {
  struct Case {
    const char* name;
    void (*change)(FakeCgroupFs&);
    const char* detail;
  };
  const Case cases[] = {
      {"hybrid layout", [](FakeCgroupFs& fs) { fs.cgroup2 = false; },
       "cgroup v2 is not mounted at /sys/fs/cgroup (this host uses cgroup v1 or the hybrid "
       "layout)"},
      {"no controllers",
       [](FakeCgroupFs& fs) { fs.files[SERVICE + "/cgroup.controllers"] = "cpuset io\n"; },
       "the controllers memory, pids, cpu are not available in this process's cgroup "
       "/sys/fs/cgroup/system.slice/chitin.service"},
      {"not delegated",
       [](FakeCgroupFs& fs) { fs.readOnly.insert(SERVICE + "/cgroup.subtree_control"); },
       "this process's cgroup /sys/fs/cgroup/system.slice/chitin.service is not delegated to "
       "this user (cgroup.subtree_control is not writable)"},
      {"shared cgroup", [](FakeCgroupFs& fs) { fs.files[SERVICE + "/cgroup.procs"] += "1\n"; },
       "this process's cgroup /sys/fs/cgroup/system.slice/chitin.service holds other processes "
       "too (2 in all); chitin only limits workers from a cgroup of its own"},
  };
  for (auto& c : cases) {
    CAPTURE(c.name);
    FakeCgroupFs fs;
    delegated(fs);
    c.change(fs);
    Cgroups cgroups(fs);
    auto& status = cgroups.status();
    CHECK_FALSE(status.inForce);
    CHECK(status.detail == c.detail);
    CHECK(status.fix.find("Delegate=yes") != std::string::npos);
    // Nothing is changed and no worker gets a cgroup: the spawn goes on without.
    CHECK(cgroups.create("exec", limits()) == nullptr);
    for (auto& entry : fs.log) CHECK(entry.rfind("write", 0) != 0);
  }
}

TEST_CASE("cgroups: delegated, the supervisor moves to a leaf and each worker gets its limits") {
  FakeCgroupFs fs;
  delegated(fs);
  fs.dirs.insert(SERVICE + "/workers/exec-1-1");  // left by an earlier supervisor
  Cgroups cgroups(fs);
  // Detection alone (`chitin doctor`) changes nothing.
  auto detected = cgroups.detect();
  CHECK(detected.inForce);
  CHECK(detected.detail == SERVICE);
  CHECK(fs.log.empty());
  auto& status = cgroups.status();
  CHECK(status.inForce);
  CHECK(status.detail ==
        "per-worker memory.max, pids.max and cpu.max under " + SERVICE + "/workers");
  std::string pid = std::to_string(getpid());
  std::vector<std::string> prepared = {
      "mkdir " + SERVICE + "/supervisor",
      "write " + SERVICE + "/supervisor/cgroup.procs " + pid,
      "write " + SERVICE + "/cgroup.subtree_control +memory +pids +cpu",
      "mkdir " + SERVICE + "/workers",
      "write " + SERVICE + "/workers/exec-1-1/cgroup.kill 1",
      "rmdir " + SERVICE + "/workers/exec-1-1",
      "write " + SERVICE + "/workers/cgroup.subtree_control +memory +pids +cpu"};
  CHECK(fs.log == prepared);
  fs.log.clear();
  {
    auto lease = cgroups.create("exec", {1 << 30, 65, 50});
    REQUIRE(lease != nullptr);
    std::string dir = SERVICE + "/workers/exec-" + pid + "-1";
    CHECK(lease->path() == dir);
    CHECK(lease->procsFd() >= 0);
    CHECK(fs.files[dir + "/memory.max"] == "1073741824");
    CHECK(fs.files[dir + "/memory.swap.max"] == "0");
    CHECK(fs.files[dir + "/memory.oom.group"] == "1");
    CHECK(fs.files[dir + "/pids.max"] == "65");
    CHECK(fs.files[dir + "/cpu.max"] == "50000 100000");
    CHECK(fs.log.back() == "open " + dir + "/cgroup.procs");
    fs.log.clear();
  }
  // The lease, dropped once the worker is reaped, kills leftovers and removes the cgroup.
  std::string dir = SERVICE + "/workers/exec-" + pid + "-1";
  CHECK(fs.log == std::vector<std::string>{"write " + dir + "/cgroup.kill 1", "rmdir " + dir});
  CHECK(fs.dirs.count(dir) == 0);
}

TEST_CASE("cgroups: once delegation is found, a failing step fails the spawn (closed)") {
  SUBCASE("preparing the tree") {
    FakeCgroupFs fs;
    delegated(fs);
    fs.failWrites[SERVICE + "/cgroup.subtree_control"] = EBUSY;
    Cgroups cgroups(fs);
    CHECK_THROWS_WITH_AS(
        cgroups.status(),
        ("cgroup limits: cannot enable the memory, pids and cpu controllers (" + SERVICE +
         ": Device or resource busy); the host delegates cgroups, so no worker "
         "runs without them")
            .c_str(),
        SandboxUnavailable);
    // And every later spawn, too.
    CHECK_THROWS_AS(cgroups.create("exec", limits()), SandboxUnavailable);
  }
  SUBCASE("one worker's limit") {
    FakeCgroupFs fs;
    delegated(fs);
    Cgroups cgroups(fs);
    REQUIRE(cgroups.status().inForce);
    std::string dir = SERVICE + "/workers/exec-" + std::to_string(getpid()) + "-1";
    fs.failWrites[dir + "/pids.max"] = EACCES;
    CHECK_THROWS_WITH_AS(cgroups.create("exec", limits()),
                         ("cgroup limits: cannot set pids.max (" + dir +
                          "/pids.max: Permission denied); the host delegates cgroups, so no "
                          "worker runs without them")
                             .c_str(),
                         SandboxUnavailable);
    CHECK(fs.dirs.count(dir) == 0);  // the half-made cgroup is removed again
    // Optional files that this kernel lacks (no swap accounting) are skipped, not fatal.
    fs.failWrites.clear();
    fs.failWrites[SERVICE + "/workers/exec-" + std::to_string(getpid()) + "-2/memory.swap.max"] =
        ENOENT;
    CHECK(cgroups.create("exec", limits()) != nullptr);
  }
}

TEST_CASE("cgroups: cpu.max is the percentage of a 100 ms period") {
  CHECK(Cgroups::cpuMax(100) == "100000 100000");
  CHECK(Cgroups::cpuMax(250) == "250000 100000");
  CHECK(Cgroups::cpuMax(5) == "5000 100000");
}

}  // namespace chitin::spawn
