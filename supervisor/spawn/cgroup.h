// SPDX-License-Identifier: Apache-2.0
// cgroup v2 limits for each worker (memory.max, pids.max, cpu.max), where the host delegates a
// cgroup subtree to the service user; part of the spawner.
// Runs in: supervisor
//
// Detection, once: cgroup2 is mounted at /sys/fs/cgroup; this process's cgroup (from
// /proc/self/cgroup) offers memory, pids and cpu in cgroup.controllers; we may write its
// cgroup.procs and cgroup.subtree_control; and no process but this one is in it (we never move
// processes that are not ours, such as the login shell sharing a terminal's scope). If any of
// that is missing, limits are not in force and status() says why and how to delegate (systemd:
// Delegate=yes). That is the common case and not an error: rlimits and tmpfs caps still hold.
//
// Preparation, once detected: this process moves to <ours>/supervisor (in cgroup v2 only leaves
// hold processes); "+memory +pids +cpu" go into <ours>/cgroup.subtree_control; <ours>/workers is
// made with the same. Per worker: <ours>/workers/<name> is made, memory.max, memory.swap.max
// (0), memory.oom.group (1), pids.max and cpu.max written, and its cgroup.procs opened for the
// spawn child, which writes "0" there (itself) before it execs bwrap. From detection on, a step
// that fails throws SandboxUnavailable: no worker runs without the limits once chosen.

#pragma once

#include <kj/io.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace chitin::spawn {

// The file operations on the cgroup tree, so tests can stand in for /sys/fs/cgroup.
class CgroupFs {
 public:
  virtual ~CgroupFs() noexcept(false) = default;
  virtual bool isCgroup2Mount(const std::string& path) = 0;
  virtual std::optional<std::string> read(const std::string& path) = 0;      // nullopt: unreadable
  virtual int write(const std::string& path, const std::string& value) = 0;  // 0 or an errno
  virtual int makeDir(const std::string& path) = 0;                          // 0 or an errno
  virtual int removeDir(const std::string& path) = 0;                        // 0 or an errno
  virtual bool writable(const std::string& path) = 0;
  virtual std::vector<std::string> subdirectories(const std::string& path) = 0;
  // An O_WRONLY | O_CLOEXEC descriptor, or -errno.
  virtual int openForWrite(const std::string& path) = 0;
};

class SystemCgroupFs final : public CgroupFs {
 public:
  bool isCgroup2Mount(const std::string& path) override;
  std::optional<std::string> read(const std::string& path) override;
  int write(const std::string& path, const std::string& value) override;
  int makeDir(const std::string& path) override;
  int removeDir(const std::string& path) override;
  bool writable(const std::string& path) override;
  std::vector<std::string> subdirectories(const std::string& path) override;
  int openForWrite(const std::string& path) override;
};

struct CgroupStatus {
  bool inForce = false;
  std::string detail;  // in force: the delegated cgroup; else: why not
  std::string fix;     // how to delegate (empty when in force)
};

struct CgroupLimits {
  uint64_t memoryBytes = 0;  // memory.max
  uint32_t maxPids = 0;      // pids.max
  uint32_t cpuPercent = 0;   // cpu.max, in percent of one CPU
};

// One worker's cgroup. Destroying it kills what is left in it and removes it; keep it until the
// worker has been reaped.
class CgroupLease {
 public:
  CgroupLease(CgroupFs& fs, std::string path, kj::AutoCloseFd procs);
  ~CgroupLease() noexcept(false);
  CgroupLease(const CgroupLease&) = delete;
  CgroupLease& operator=(const CgroupLease&) = delete;

  const std::string& path() const { return path_; }
  int procsFd() const { return procs_.get(); }  // for the spawn child; -1 once closed
  void setProcsFd(kj::AutoCloseFd fd) { procs_ = kj::mv(fd); }
  void closeProcsFd() { procs_ = nullptr; }

 private:
  CgroupFs& fs_;
  std::string path_;
  kj::AutoCloseFd procs_;
};

class Cgroups {
 public:
  explicit Cgroups(CgroupFs& fs, std::string mount = "/sys/fs/cgroup",
                   std::string selfCgroupFile = "/proc/self/cgroup");

  // Detects and prepares once; later calls return the same answer. Throws SandboxUnavailable
  // when delegation was found but preparing the tree failed (and on every later call).
  const CgroupStatus& status();

  // Detection only, changing nothing (for `chitin doctor`): inForce means a supervisor started
  // like this process would apply the limits; `detail` is then the delegated cgroup.
  CgroupStatus detect();

  // The worker's cgroup with `limits` written, or null when limits are not in force. Throws
  // SandboxUnavailable if any step fails.
  std::unique_ptr<CgroupLease> create(const std::string& profile, const CgroupLimits& limits);

  // The text written to cpu.max for a percentage of one CPU ("50000 100000" for 50).
  static std::string cpuMax(uint32_t percent);

 private:
  std::optional<std::string> whyNotDelegated(const std::string& dir);
  void prepare(const std::string& dir);
  [[noreturn]] void failStep(const std::string& what, const std::string& path, int error);

  CgroupFs& fs_;
  std::string mount_;
  std::string selfCgroupFile_;
  std::optional<CgroupStatus> status_;
  std::string failure_;  // set when preparation failed: every later spawn refuses with it
  std::string workersDir_;
  uint64_t counter_ = 0;
};

}  // namespace chitin::spawn
