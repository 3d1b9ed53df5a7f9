// SPDX-License-Identifier: Apache-2.0
// The zygote: one sandbox of a `fork_server` profile that forks that profile's workers.
// Runs in: worker (sandboxed; the zygote and, until they serve, the workers it forks)
//
// bwrap builds the zygote like any sandbox of the profile (same mounts, limits and filter), with
// two differences the spawner adds: CAP_SYS_ADMIN, inside the sandbox's own user namespace only,
// and zygoteRules() on top of the profile's filter (fork with exactly ZYGOTE_CLONE_FLAGS, mount,
// capset, reap). The worker executable starts as usual (runWorker), makes itself non-dumpable,
// sees ZYGOTE_FLAG and serves the supervisor on fd 3 (SOCK_SEQPACKET) instead of RPC. It has no
// event loop of its own (a forked worker builds its own) and reads nothing but the supervisor's
// requests. For each FORK it clones a child into fresh pid, mount, network, IPC, UTS and cgroup
// namespaces; the child, before it reads a byte from the supervisor:
//   1. dies with the zygote (PR_SET_PDEATHSIG), checks it is pid 1 of its own pid namespace;
//   2. makes its mounts private, and mounts its own proc, tmpfs (each of the profile's, with the
//      profile's size), /dev/shm and devpts over the zygote's: nothing one worker writes there
//      is seen by another, and its /proc shows its own namespace only; then the root read-only;
//   3. puts the request's socket on fd 3 and its own stdout and stderr on 1 and 2, closes every
//      other fd (the zygote's control socket among them);
//   4. drops every capability (capset to nothing; no_new_privs is set since bwrap);
//   5. loads the profile's filter (sent by the supervisor once, SETUP), which forbids mount,
//      capset and namespace flags again;
// and returns into runWorker, which goes on as after bwrap's exec: limits (the profile's, from
// SETUP), hidden-directory check, RPC, the kind's lockdown. A step that fails ends the child
// with status 70 before anything is served (fail closed); the supervisor sees it on the pidfd.
//
// The zygote reports each child's end (EXITED, with its wait status) since the supervisor, not
// being the child's parent, cannot wait for it. The zygote is pid 1 of its sandbox: when it ends
// (the supervisor hung up, or killed it) every worker it forked ends with it.

#pragma once

#include <stdint.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace chitin::zygote {

// argv flag of a worker started as a zygote (the spawner adds it; never a worker's own request).
constexpr char ZYGOTE_FLAG[] = "--chitin-zygote";

// glibc's malloc settings in a fork_server profile's zygote and workers (GLIBC_TUNABLES, set by
// the spawner): no per-thread cache and no fast bins, so that a freed chunk coalesces at once and
// an idle worker's malloc_trim gives back every whole free page.
constexpr char ZYGOTE_MALLOC_TUNABLES[] = "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0";

// Gives back what malloc_trim can, then takes every free chunk of this process's heap, for good
// (the zygote, once, before its first fork), so that a forked worker's allocations come from fresh
// pages above it: each hole a worker reused instead made the whole page around it the worker's
// private copy. The chunks taken stay allocated, shared by every worker and written by none.
// Afterwards the heap has no free chunk below its top (glibc's mallinfo2: fordblks == keepcost),
// whether or not the cache is on.
void sealHeap();

enum class Type : uint32_t { SETUP = 1, FORK = 2, FORKED = 3, EXITED = 4 };

enum class RenewKind : uint32_t { PROC = 1, TMPFS = 2, DEVPTS = 3 };

// A mount each forked worker makes fresh over the zygote's.
struct Renewal {
  RenewKind kind;
  uint32_t reserved;
  uint64_t sizeBytes;  // TMPFS only
  char path[256];      // absolute, NUL-terminated
};

constexpr uint32_t MAX_RENEWALS = 8;
constexpr uint32_t MAX_FILTER_BYTES = 64 * 1024;  // 8,192 BPF instructions
constexpr size_t MAX_LIMITS_CHARS = 256;

// Supervisor -> zygote, first and once; followed in the same message by `filterBytes` bytes of
// classic BPF (the profile's filter, as bwrap's --seccomp reads it).
struct Setup {
  Type type;  // SETUP
  uint32_t renewalCount;
  Renewal renewals[MAX_RENEWALS];
  char limits[MAX_LIMITS_CHARS];  // the worker's --chitin-limits=... argument
  uint32_t filterBytes;
  uint32_t reserved;
};

// Supervisor -> zygote, with three fds (SCM_RIGHTS): the worker's socket end, its stdout, its
// stderr.
struct Fork {
  Type type;  // FORK
  uint32_t reserved;
  uint64_t id;
};

// Zygote -> supervisor, the answer to a FORK; with the child's pidfd (SCM_RIGHTS) when pid > 0.
struct Forked {
  Type type;    // FORKED
  int32_t pid;  // in the zygote's pid namespace; <= 0 when the fork failed
  uint64_t id;
  int32_t error;  // errno of the failed clone
  uint32_t reserved;
};

// Zygote -> supervisor, whenever a forked worker has ended (it has been reaped).
struct Exited {
  Type type;  // EXITED
  int32_t pid;
  int32_t status;  // the raw wait status
  uint32_t reserved;
};

// What a forked child goes on with: the arguments runWorker's later steps read (the limits).
struct Child {
  std::vector<std::string> args;
};

// Whether argv asks for the zygote.
bool requested(int argc, char** argv);

// Serves FORK requests on fd 3 until the supervisor hangs up (then exits the process with 0, or
// 70 on a broken request). Returns only in a forked child, after steps 1-5 above.
Child serve();

}  // namespace chitin::zygote
