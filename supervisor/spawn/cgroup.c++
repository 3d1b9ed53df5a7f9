// SPDX-License-Identifier: Apache-2.0
// cgroup v2 detection, preparation and per-worker cgroups (see cgroup.h).
// Runs in: supervisor

#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "spawner.h"

namespace chitin::spawn {

namespace {

const char DELEGATE_FIX[] =
    "run the gateway as its own systemd service with Delegate=yes in its [Service] section (it "
    "then has a cgroup of its own, writable by its user; to try it: systemd-run --user -p "
    "Delegate=yes --wait chitin gateway)";

constexpr const char* CONTROLLERS[] = {"memory", "pids", "cpu"};

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  std::string word;
  while (in >> word) out.push_back(word);
  return out;
}

// The "0::/path" line of /proc/self/cgroup: our cgroup v2 path.
std::optional<std::string> unifiedPath(const std::string& selfCgroup) {
  std::istringstream in(selfCgroup);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return std::nullopt;
}

}  // namespace

bool SystemCgroupFs::isCgroup2Mount(const std::string& path) {
  struct statfs fs;
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC;
}

std::optional<std::string> SystemCgroupFs::read(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int SystemCgroupFs::write(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  // cgroup files take one value per write(2); a short write is an error.
  ssize_t n = ::write(fd, value.data(), value.size());
  int error = n == static_cast<ssize_t>(value.size()) ? 0 : (n < 0 ? errno : EIO);
  close(fd);
  return error;
}

int SystemCgroupFs::makeDir(const std::string& path) {
  return mkdir(path.c_str(), 0755) == 0 ? 0 : errno;
}

int SystemCgroupFs::removeDir(const std::string& path) {
  return rmdir(path.c_str()) == 0 ? 0 : errno;
}

bool SystemCgroupFs::writable(const std::string& path) { return access(path.c_str(), W_OK) == 0; }

std::vector<std::string> SystemCgroupFs::subdirectories(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = opendir(path.c_str());
  if (dir == nullptr) return names;
  while (dirent* entry = readdir(dir)) {
    std::string name = entry->d_name;
    if (entry->d_type == DT_DIR && name != "." && name != "..") names.push_back(name);
  }
  closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

int SystemCgroupFs::openForWrite(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

CgroupLease::CgroupLease(CgroupFs& fs, std::string path, kj::AutoCloseFd procs)
    : fs_(fs), path_(std::move(path)), procs_(kj::mv(procs)) {}

CgroupLease::~CgroupLease() noexcept(false) {
  procs_ = nullptr;
  // The worker has been reaped; whatever it left (nothing, normally: its pid namespace died with
  // it) goes now, so the directory can be removed. cgroup.kill exists since Linux 5.14.
  fs_.write(path_ + "/cgroup.kill", "1");
  // A leftover directory is removed when the next supervisor prepares the tree.
  fs_.removeDir(path_);
}

Cgroups::Cgroups(CgroupFs& fs, std::string mount, std::string selfCgroupFile)
    : fs_(fs), mount_(std::move(mount)), selfCgroupFile_(std::move(selfCgroupFile)) {}

std::string Cgroups::cpuMax(uint32_t percent) {
  // A 100 ms period: quota = percent% of it, in microseconds.
  return std::to_string(uint64_t{percent} * 1000) + " 100000";
}

std::optional<std::string> Cgroups::whyNotDelegated(const std::string& dir) {
  auto controllers = fs_.read(dir + "/cgroup.controllers");
  if (!controllers) return "cannot read " + dir + "/cgroup.controllers";
  auto offered = words(*controllers);
  std::string missing;
  for (const char* name : CONTROLLERS) {
    if (std::find(offered.begin(), offered.end(), name) == offered.end()) {
      missing += missing.empty() ? name : std::string(", ") + name;
    }
  }
  if (!missing.empty()) {
    return "the controllers " + missing + " are not available in this process's cgroup " + dir;
  }
  for (const char* file : {"cgroup.procs", "cgroup.subtree_control"}) {
    if (!fs_.writable(dir + "/" + file)) {
      return "this process's cgroup " + dir + " is not delegated to this user (" + file +
             " is not writable)";
    }
  }
  auto procs = fs_.read(dir + "/cgroup.procs");
  if (!procs) return "cannot read " + dir + "/cgroup.procs";
  auto pids = words(*procs);
  std::string self = std::to_string(getpid());
  for (auto& pid : pids) {
    if (pid != self) {
      return "this process's cgroup " + dir + " holds other processes too (" +
             std::to_string(pids.size()) +
             " in all); chitin only limits workers from a cgroup of "
             "its own";
    }
  }
  return std::nullopt;
}

void Cgroups::failStep(const std::string& what, const std::string& path, int error) {
  throw SandboxUnavailable("cgroup limits: cannot " + what + " (" + path + ": " + strerror(error) +
                           "); the host delegates cgroups, so no worker runs without them");
}

void Cgroups::prepare(const std::string& dir) {
  // Only leaves hold processes in cgroup v2: we step into a leaf of our own before enabling the
  // controllers for our children.
  std::string own = dir + "/supervisor";
  int error = fs_.makeDir(own);
  if (error != 0 && error != EEXIST) failStep("create the supervisor's cgroup", own, error);
  error = fs_.write(own + "/cgroup.procs", std::to_string(getpid()));
  if (error != 0) failStep("move the supervisor into its cgroup", own, error);
  const std::string enable = "+memory +pids +cpu";
  error = fs_.write(dir + "/cgroup.subtree_control", enable);
  if (error != 0) failStep("enable the memory, pids and cpu controllers", dir, error);
  workersDir_ = dir + "/workers";
  error = fs_.makeDir(workersDir_);
  if (error != 0 && error != EEXIST) failStep("create the workers' cgroup", workersDir_, error);
  // Leftovers of an earlier supervisor (their workers died with it: --die-with-parent).
  for (auto& name : fs_.subdirectories(workersDir_)) {
    fs_.write(workersDir_ + "/" + name + "/cgroup.kill", "1");
    fs_.removeDir(workersDir_ + "/" + name);
  }
  error = fs_.write(workersDir_ + "/cgroup.subtree_control", enable);
  if (error != 0) failStep("enable the controllers for the workers", workersDir_, error);
}

CgroupStatus Cgroups::detect() {
  CgroupStatus status;
  status.fix = DELEGATE_FIX;
  auto selfCgroup = fs_.read(selfCgroupFile_);
  auto path = selfCgroup ? unifiedPath(*selfCgroup) : std::nullopt;
  if (!fs_.isCgroup2Mount(mount_)) {
    status.detail = "cgroup v2 is not mounted at " + mount_ +
                    " (this host uses cgroup v1 or the hybrid layout)";
    status.fix =
        "boot with the unified hierarchy (systemd.unified_cgroup_hierarchy=1, the "
        "default since Debian 11), then: " +
        status.fix;
  } else if (!path || path->empty() || (*path)[0] != '/' ||
             path->find("/..") != std::string::npos) {
    status.detail = "this process's cgroup v2 path is unknown (" + selfCgroupFile_ + ")";
  } else {
    std::string dir = *path == "/" ? mount_ : mount_ + *path;
    if (auto why = whyNotDelegated(dir)) {
      status.detail = *why;
    } else {
      status.inForce = true;
      status.detail = dir;
      status.fix.clear();
    }
  }
  return status;
}

const CgroupStatus& Cgroups::status() {
  if (!failure_.empty()) throw SandboxUnavailable(failure_);
  if (status_) return *status_;
  CgroupStatus status = detect();
  if (status.inForce) {
    try {
      prepare(status.detail);
    } catch (const SandboxUnavailable& e) {
      failure_ = e.what();
      throw;
    }
    status.detail = "per-worker memory.max, pids.max and cpu.max under " + workersDir_;
  }
  status_ = status;
  return *status_;
}

std::unique_ptr<CgroupLease> Cgroups::create(const std::string& profile,
                                             const CgroupLimits& limits) {
  if (!status().inForce) return nullptr;
  std::string path = workersDir_ + "/" + profile + "-" + std::to_string(getpid()) + "-" +
                     std::to_string(++counter_);
  int error = fs_.makeDir(path);
  if (error != 0) failStep("create the worker's cgroup", path, error);
  // From here the lease removes the directory again if a later step throws.
  auto lease = std::make_unique<CgroupLease>(fs_, path, kj::AutoCloseFd());
  struct Setting {
    const char* file;
    std::string value;
    bool optional;  // absent on some kernels or configurations (no swap accounting)
  };
  const Setting settings[] = {
      {"memory.max", std::to_string(limits.memoryBytes), false},
      {"memory.swap.max", "0", true},
      // An out-of-memory kill takes the whole sandbox, not one process of it.
      {"memory.oom.group", "1", true},
      {"pids.max", std::to_string(limits.maxPids), false},
      {"cpu.max", cpuMax(limits.cpuPercent), false},
  };
  for (auto& setting : settings) {
    std::string file = path + "/" + setting.file;
    error = fs_.write(file, setting.value);
    if (error == ENOENT && setting.optional) continue;
    if (error != 0) failStep(std::string("set ") + setting.file, file, error);
  }
  int fd = fs_.openForWrite(path + "/cgroup.procs");
  if (fd < 0) failStep("open the worker's cgroup.procs", path, -fd);
  lease->setProcsFd(kj::AutoCloseFd(fd));
  return lease;
}

}  // namespace chitin::spawn
