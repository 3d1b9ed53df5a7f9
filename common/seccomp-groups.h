// SPDX-License-Identifier: Apache-2.0
// Named syscall groups and the seccomp filters built from them, shared by both sides.
// Runs in: supervisor (profile filters, `chitin sandbox explain`) and worker (lockdown).
//
// A profile names groups (proto/sandbox_profile.proto `SyscallGroup`); this file owns the exact
// syscall lists, so a reviewer reads them in one place. Every filter built here kills the whole
// process on anything not listed (SCMP_ACT_KILL_PROCESS, so the supervisor sees SIGSYS), accepts
// only the native x86_64 ABI (i386 and x32 entry points kill too), and never allows ioctl
// TIOCSTI, namespace-creating clone flags, or any syscall in NEVER_ALLOWED.

#pragma once

#include <kj/array.h>
#include <sched.h>
#include <signal.h>
#include <kj/common.h>
#include <kj/string.h>
#include <stdint.h>

namespace chitin::seccomp {

// Values equal proto `chitin.config.SyscallGroup` (the spawner static_asserts it); common/ does
// not link the protobuf code because workers do not parse profiles.
enum class Group : int {
  BASIC_IO = 1,
  MEMORY = 2,
  PROCESS_SELF = 3,
  FILE_READ = 4,
  FILE_WRITE = 5,
  UNIX_IPC = 6,
  NETWORK = 7,
  PROCESS_SPAWN = 8,
  THREADS = 9,
  TERMINAL = 10,
  TIME = 11,
  CHROMIUM = 12,
};
constexpr Group ALL_GROUPS[] = {
    Group::BASIC_IO,   Group::MEMORY,   Group::PROCESS_SELF, Group::FILE_READ,
    Group::FILE_WRITE, Group::UNIX_IPC, Group::NETWORK,      Group::PROCESS_SPAWN,
    Group::THREADS,    Group::TERMINAL, Group::TIME,     Group::CHROMIUM,
};

kj::StringPtr groupName(Group group);

// One line of a group table: `syscall` is allowed (errnoValue == 0) or fails with errnoValue,
// either always (argIndex < 0) or when (arg[argIndex] & mask) == value.
struct Rule {
  const char* syscall;
  int errnoValue;
  int argIndex;
  uint64_t mask;
  uint64_t value;
  const char* note;  // the condition in words, for `explain` ("family AF_UNIX"); "" if none
};

kj::ArrayPtr<const Rule> groupRules(Group group);

// What runs under the profile filter before the worker's own lockdown and belongs to no group:
// bwrap's execve of the worker, the dynamic loader, and the worker's start-up (rlimits, KJ's
// epoll/eventfd, loading the stacked filter).
kj::ArrayPtr<const Rule> bootstrapRules();

// What a zygote (common/zygote.h) may do beyond its profile: fork with exactly
// ZYGOTE_CLONE_FLAGS, mount, capset, reap. Only the zygote's own filter has them; every worker
// it forks stacks its profile's filter, which forbids each, before it serves.
kj::ArrayPtr<const Rule> zygoteRules();
constexpr uint64_t ZYGOTE_CLONE_FLAGS = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |
                                        CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_PIDFD | SIGCHLD;

// Syscalls no group, bootstrap or lockdown may allow; the unit tests enforce it.
extern const kj::ArrayPtr<const char* const> NEVER_ALLOWED;

// What a worker kind keeps after lockdown (common/sandbox-child.h). `errnoSyscalls` must repeat
// the kind's profile `errno_syscalls`, because stacked filters take the strictest verdict and a
// kill in the lockdown filter would override the profile's errno.
struct KindLockdown {
  const char* kind;
  kj::ArrayPtr<const Group> groups;
  kj::ArrayPtr<const Rule> extraRules;  // single syscalls outside the groups
  kj::ArrayPtr<const char* const> errnoSyscalls;
};
// An exact entry wins; otherwise an entry "prefix-*" covers every "prefix-<something>"
// ("channel-*": all channel workers).
kj::Maybe<const KindLockdown&> lockdownFor(kj::StringPtr kind);
kj::ArrayPtr<const KindLockdown> allLockdowns();

// What goes into one filter.
struct FilterSpec {
  kj::ArrayPtr<const Group> groups;
  kj::ArrayPtr<const Rule> extraRules;
  bool bootstrap = false;                           // add bootstrapRules()
  bool zygote = false;                              // add zygoteRules() (a zygote's own only)
  kj::ArrayPtr<const kj::StringPtr> errnoSyscalls;  // fail with EPERM instead of killing
};

// An owned libseccomp context. Building throws (naming the syscall) on any libseccomp error,
// including an errno syscall that a group already allows.
class Filter {
 public:
  explicit Filter(const FilterSpec& spec);
  ~Filter() noexcept;
  KJ_DISALLOW_COPY(Filter);
  Filter(Filter&& other) noexcept;

  // The classic BPF program, as bwrap's --seccomp FD reads it.
  kj::Array<kj::byte> exportBpf() const;
  // Loads the filter into the calling thread (sets PR_SET_NO_NEW_PRIVS first).
  void load() const;

 private:
  void* ctx_;  // scmp_filter_ctx
};

// Returns -1 if libseccomp does not know `name` on x86_64.
int resolveSyscall(kj::StringPtr name);

// "socket(family AF_UNIX)", "clone3 -> ENOSYS", "read": one rule for a reviewer.
kj::String describeRule(const Rule& rule);

}  // namespace chitin::seccomp
