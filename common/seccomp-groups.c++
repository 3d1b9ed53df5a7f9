// SPDX-License-Identifier: Apache-2.0
// The syscall group tables and the libseccomp filter builder (see seccomp-groups.h).
// Runs in: supervisor and worker (sandboxed)

#include "seccomp-groups.h"

#include <errno.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <kj/io.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <linux/sockios.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>
#include <tuple>

namespace chitin::seccomp {

namespace {

constexpr uint64_t ALL_BITS = ~uint64_t(0);
// ioctl's request is an `unsigned int` in the kernel; only the low 32 bits select the command.
constexpr uint64_t LOW32 = 0xffffffffu;
// clone() flags that would create namespaces: never, whatever else the call asks for.
constexpr uint64_t NAMESPACE_FLAGS = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
                                     CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME;
// open flags that create, write or truncate: FILE_READ opens only without them.
constexpr uint64_t WRITE_OPEN_FLAGS = O_ACCMODE | O_CREAT | O_TRUNC;

constexpr Rule allow(const char* name) { return {name, 0, -1, 0, 0, ""}; }
constexpr Rule allowIf(const char* name, int arg, uint64_t mask, uint64_t value, const char* note) {
  return {name, 0, arg, mask, value, note};
}
constexpr Rule fail(const char* name, int err, const char* note) {
  return {name, err, -1, 0, 0, note};
}
constexpr Rule failIf(const char* name, int arg, uint64_t value, int err, const char* note) {
  return {name, err, arg, ALL_BITS, value, note};
}

const Rule BASIC_IO_RULES[] = {
    allow("read"),
    allow("write"),
    allow("readv"),
    allow("writev"),
    allow("pread64"),
    allow("pwrite64"),
    allow("preadv"),
    allow("pwritev"),
    allow("preadv2"),
    allow("pwritev2"),
    allow("lseek"),
    allow("close"),
    allow("close_range"),
    allow("dup"),
    allow("dup2"),
    allow("dup3"),
    allow("fcntl"),
    allow("poll"),
    allow("ppoll"),
    allow("select"),
    allow("pselect6"),
    allow("epoll_create"),
    allow("epoll_create1"),
    allow("epoll_ctl"),
    allow("epoll_wait"),
    allow("epoll_pwait"),
    allow("epoll_pwait2"),
    allow("eventfd"),
    allow("eventfd2"),
    allow("pipe"),
    allow("pipe2"),
    allow("fstat"),
    allow("sendfile"),
    // fd flags, like fcntl (KJ sets non-blocking mode this way).
    allowIf("ioctl", 1, LOW32, FIONBIO, "FIONBIO"),
    allowIf("ioctl", 1, LOW32, FIOCLEX, "FIOCLEX"),
    allowIf("ioctl", 1, LOW32, FIONCLEX, "FIONCLEX"),
    // glibc >= 2.33 implements fstat() as newfstatat(fd, "", AT_EMPTY_PATH).
    allowIf("newfstatat", 3, AT_EMPTY_PATH, AT_EMPTY_PATH, "AT_EMPTY_PATH"),
    allowIf("statx", 2, AT_EMPTY_PATH, AT_EMPTY_PATH, "AT_EMPTY_PATH"),
    // I/O on sockets already open (fd 3, or fds passed as capabilities); creating or connecting
    // a socket is UNIX_IPC or NETWORK.
    allow("sendmsg"),
    allow("recvmsg"),
    allow("sendto"),
    allow("recvfrom"),
    allow("shutdown"),
    allow("getsockopt"),
    allow("getsockname"),
    allow("getpeername"),
};

const Rule MEMORY_RULES[] = {
    allow("mmap"),    allow("munmap"), allow("mprotect"), allow("brk"),
    allow("madvise"), allow("mremap"), allow("msync"),    allow("mincore"),
};

const Rule PROCESS_SELF_RULES[] = {
    allow("exit"),
    allow("exit_group"),
    allow("restart_syscall"),
    allow("getpid"),
    allow("gettid"),
    allow("getppid"),
    allow("getuid"),
    allow("geteuid"),
    allow("getgid"),
    allow("getegid"),
    allow("getgroups"),
    allow("getresuid"),
    allow("getresgid"),
    allow("getpgrp"),
    allow("getpgid"),
    allow("getsid"),
    allow("uname"),
    allow("sysinfo"),
    allow("getrusage"),
    allow("times"),
    allow("getcpu"),
    allow("getcwd"),
    allow("rt_sigaction"),
    allow("rt_sigprocmask"),
    allow("rt_sigreturn"),
    allow("rt_sigpending"),
    allow("rt_sigsuspend"),
    allow("rt_sigtimedwait"),
    allow("sigaltstack"),
    allow("signalfd"),
    allow("signalfd4"),
    // raise()/abort(): the pid namespace holds only this sandbox's processes.
    allow("tgkill"),
    allow("tkill"),
    allow("futex"),
    allow("set_robust_list"),
    allow("get_robust_list"),
    allow("set_tid_address"),
    allow("rseq"),
    allow("arch_prctl"),
    allow("getrandom"),
    allow("clock_gettime"),
    allow("clock_getres"),
    allow("gettimeofday"),
    allow("time"),
    allow("sched_getaffinity"),
    allow("sched_yield"),
    allow("getrlimit"),
    allow("setrlimit"),
    allowIf("prlimit64", 0, ALL_BITS, 0, "pid 0"),
    // Stacking a filter can only take permissions away.
    allow("seccomp"),
    allowIf("prctl", 0, ALL_BITS, PR_SET_NO_NEW_PRIVS, "PR_SET_NO_NEW_PRIVS"),
    allowIf("prctl", 0, ALL_BITS, PR_GET_NO_NEW_PRIVS, "PR_GET_NO_NEW_PRIVS"),
    allowIf("prctl", 0, ALL_BITS, PR_SET_SECCOMP, "PR_SET_SECCOMP"),
    allowIf("prctl", 0, ALL_BITS, PR_GET_SECCOMP, "PR_GET_SECCOMP"),
    allowIf("prctl", 0, ALL_BITS, PR_SET_NAME, "PR_SET_NAME"),
    allowIf("prctl", 0, ALL_BITS, PR_GET_NAME, "PR_GET_NAME"),
    allowIf("prctl", 0, ALL_BITS, PR_GET_DUMPABLE, "PR_GET_DUMPABLE"),
    allowIf("prctl", 0, ALL_BITS, PR_SET_PDEATHSIG, "PR_SET_PDEATHSIG"),
    allowIf("prctl", 0, ALL_BITS, PR_CAPBSET_READ, "PR_CAPBSET_READ"),
};

const Rule FILE_READ_RULES[] = {
    allowIf("openat", 2, WRITE_OPEN_FLAGS, 0, "read-only flags"),
    allowIf("open", 1, WRITE_OPEN_FLAGS, 0, "read-only flags"),
    // openat2 passes its flags in memory, where seccomp cannot see them: with it, "read-only"
    // rests on the mounts (ro-bind, or nothing at all), and the flag checks above are a
    // tripwire. The file workers need RESOLVE_BENEATH to stay inside the workspace.
    allow("openat2"),
    allow("newfstatat"),
    allow("statx"),
    allow("stat"),
    allow("lstat"),
    allow("fstatfs"),
    allow("statfs"),
    allow("access"),
    allow("faccessat"),
    allow("faccessat2"),
    allow("readlink"),
    allow("readlinkat"),
    allow("getdents"),
    allow("getdents64"),
    allow("chdir"),
    allow("fchdir"),
    allow("fadvise64"),
    allow("readahead"),
    allow("getxattr"),
    allow("lgetxattr"),
    allow("fgetxattr"),
    allow("listxattr"),
    allow("llistxattr"),
    allow("flistxattr"),
};

const Rule FILE_WRITE_RULES[] = {
    allow("openat"),
    allow("openat2"),
    allow("open"),
    allow("creat"),
    allow("mkdir"),
    allow("mkdirat"),
    allow("rmdir"),
    allow("rename"),
    allow("renameat"),
    allow("renameat2"),
    allow("unlink"),
    allow("unlinkat"),
    allow("truncate"),
    allow("ftruncate"),
    allow("fallocate"),
    allow("fsync"),
    allow("fdatasync"),
    allow("flock"),
    allow("umask"),
    allow("chmod"),
    allow("fchmod"),
    allow("fchmodat"),
    allow("utime"),
    allow("utimes"),
    allow("utimensat"),
    allow("futimesat"),
    allow("symlink"),
    allow("symlinkat"),
    allow("link"),
    allow("linkat"),
    allow("copy_file_range"),
    // Ownership changes: without capabilities the kernel only lets a process "chown" to itself,
    // which `cp -p` and `tar` do routinely.
    allow("chown"),
    allow("fchown"),
    allow("fchownat"),
    allow("lchown"),
};

#define SOCKET_OPS                                                                               \
  allow("connect"), allow("bind"), allow("listen"), allow("accept"), allow("accept4"),           \
      allow("setsockopt"), allow("getsockopt"), allow("getsockname"), allow("getpeername"),      \
      allow("sendmsg"), allow("recvmsg"), allow("sendto"), allow("recvfrom"), allow("sendmmsg"), \
      allow("recvmmsg"), allow("shutdown")

const Rule UNIX_IPC_RULES[] = {
    allowIf("socket", 0, ALL_BITS, AF_UNIX, "family AF_UNIX"),
    allowIf("socketpair", 0, ALL_BITS, AF_UNIX, "family AF_UNIX"),
    SOCKET_OPS,
};

const Rule NETWORK_RULES[] = {
    allowIf("socket", 0, ALL_BITS, AF_UNIX, "family AF_UNIX"),
    allowIf("socket", 0, ALL_BITS, AF_INET, "family AF_INET"),
    allowIf("socket", 0, ALL_BITS, AF_INET6, "family AF_INET6"),
    // glibc's getaddrinfo() asks rtnetlink which address families are configured and carries
    // on without the answer; netlink would show the host's interfaces.
    failIf("socket", 0, AF_NETLINK, EAFNOSUPPORT, "family AF_NETLINK"),
    allowIf("socketpair", 0, ALL_BITS, AF_UNIX, "family AF_UNIX"),
    SOCKET_OPS,
};

#undef SOCKET_OPS

// glibc >= 2.34 tries clone3 first and falls back to clone only on ENOSYS; clone3 passes its
// flags in memory, where seccomp cannot check them for namespace flags.
constexpr Rule CLONE3_ENOSYS = fail("clone3", ENOSYS, "");

const Rule PROCESS_SPAWN_RULES[] = {
    allowIf("clone", 0, NAMESPACE_FLAGS, 0, "no namespace flags"),
    CLONE3_ENOSYS,
    allow("fork"),
    allow("vfork"),
    allow("execve"),
    allow("wait4"),
    allow("waitid"),
    allow("kill"),
    allow("setpgid"),
    allow("setsid"),
    // Watching and stopping its own children (never pidfd_getfd, which steals fds).
    allow("pidfd_open"),
    allow("pidfd_send_signal"),
};

const Rule THREADS_RULES[] = {
    allowIf("clone", 0, NAMESPACE_FLAGS | CLONE_THREAD, CLONE_THREAD,
            "CLONE_THREAD, no namespace flags"),
    CLONE3_ENOSYS,
    allow("set_robust_list"),
    allow("sched_yield"),
    allow("sched_getaffinity"),
    allow("futex"),
    allow("rseq"),
    allow("madvise"),
};

const Rule TERMINAL_RULES[] = {
    // Never TIOCSTI (pushes keystrokes into the terminal's input) or TIOCLINUX.
    allowIf("ioctl", 1, LOW32, TCGETS, "TCGETS"),
    allowIf("ioctl", 1, LOW32, TCSETS, "TCSETS"),
    allowIf("ioctl", 1, LOW32, TCSETSW, "TCSETSW"),
    allowIf("ioctl", 1, LOW32, TCSETSF, "TCSETSF"),
    allowIf("ioctl", 1, LOW32, TIOCGWINSZ, "TIOCGWINSZ"),
    allowIf("ioctl", 1, LOW32, TIOCSWINSZ, "TIOCSWINSZ"),
    allowIf("ioctl", 1, LOW32, TIOCGPGRP, "TIOCGPGRP"),
    allowIf("ioctl", 1, LOW32, TIOCSPGRP, "TIOCSPGRP"),
    allowIf("ioctl", 1, LOW32, FIONREAD, "FIONREAD"),
};

const Rule TIME_RULES[] = {
    allow("nanosleep"),       allow("clock_nanosleep"), allow("timer_create"),
    allow("timer_settime"),   allow("timer_gettime"),   allow("timer_getoverrun"),
    allow("timer_delete"),    allow("timerfd_create"),  allow("timerfd_settime"),
    allow("timerfd_gettime"), allow("alarm"),           allow("setitimer"),
    allow("getitimer"),       allow("pause"),
};

// Headless Chromium (the browser worker's child) beyond the other groups, found by running it
// and reading what it asked for. It runs without its own sandbox (no user namespaces here), so
// this group is what it gets instead of Chromium's own seccomp-bpf policy; nothing in it reaches
// another process or the host.
constexpr uint64_t SIOCGIWNAME_REQUEST = 0x8B01;
constexpr uint64_t SIOCGIWESSID_REQUEST = 0x8B1B;
constexpr uint64_t F2FS_IOC_GET_FEATURES_REQUEST = 0x8004f50c;
const Rule CHROMIUM_RULES[] = {
    // Its shared memory between its own processes (sealed memfds, never files).
    allow("memfd_create"),
    // Names anonymous mappings for its own diagnostics.
    allowIf("prctl", 0, ALL_BITS, PR_SET_VMA, "PR_SET_VMA"),
    // Thread priorities and CPU placement of its own threads; the pid namespace holds only
    // this sandbox's processes, and no capability lets it raise a priority above the default.
    allow("setpriority"),
    allow("getpriority"),
    allow("sched_setaffinity"),
    allow("sched_getscheduler"),
    allow("sched_setscheduler"),
    allow("sched_getparam"),
    allow("sched_setparam"),
    allow("sched_getattr"),
    allow("sched_setattr"),
    allow("sched_get_priority_min"),
    allow("sched_get_priority_max"),
    // Watches its profile directory and /etc files.
    allow("inotify_init"),
    allow("inotify_init1"),
    allow("inotify_add_watch"),
    allow("inotify_rm_watch"),
    // Bytes waiting on its own pipes and sockets.
    allowIf("ioctl", 1, LOW32, FIONREAD, "FIONREAD"),
    // Probes that find nothing in a namespace with only loopback, answered as a plain file
    // would: network interface names and wireless details, SQLite's F2FS feature check.
    {"ioctl", ENOTTY, 1, LOW32, SIOCGIFNAME, "SIOCGIFNAME"},
    {"ioctl", ENOTTY, 1, LOW32, SIOCETHTOOL, "SIOCETHTOOL"},
    {"ioctl", ENOTTY, 1, LOW32, SIOCGIWNAME_REQUEST, "SIOCGIWNAME"},
    {"ioctl", ENOTTY, 1, LOW32, SIOCGIWESSID_REQUEST, "SIOCGIWESSID"},
    {"ioctl", ENOTTY, 1, LOW32, F2FS_IOC_GET_FEATURES_REQUEST, "F2FS_IOC_GET_FEATURES"},
    // Landlock and memory protection keys: it carries on without either.
    fail("landlock_create_ruleset", ENOSYS, ""),
    fail("pkey_alloc", ENOSPC, ""),
};

const Rule BOOTSTRAP_RULES[] = {
    allow("execve"),  // bwrap execs the worker after loading the filter
    allow("exit_group"),
    allow("exit"),
    allow("rt_sigprocmask"),
    allow("rt_sigaction"),
    allow("rt_sigreturn"),
    allow("close"),
    allow("read"),
    allow("write"),
    // The dynamic loader, and NSS/locale files the worker opens before its lockdown.
    allowIf("openat", 2, WRITE_OPEN_FLAGS, 0, "read-only flags"),
    allow("access"),
    allow("newfstatat"),
    allow("fstat"),
    allow("pread64"),
    allow("mmap"),
    allow("mprotect"),
    allow("munmap"),
    allow("brk"),
    allow("arch_prctl"),
    allow("set_tid_address"),
    allow("set_robust_list"),
    allow("rseq"),
    allow("getrandom"),
    allow("futex"),
    // The worker's start-up (common/worker-main.h): rlimits, KJ's event loop, its own filter.
    allowIf("prlimit64", 0, ALL_BITS, 0, "pid 0"),
    allow("epoll_create1"),
    allow("epoll_ctl"),
    allow("eventfd2"),
    allow("signalfd4"),
    allow("fcntl"),
    allowIf("ioctl", 1, LOW32, FIONBIO, "FIONBIO"),
    allow("seccomp"),
    allowIf("prctl", 0, ALL_BITS, PR_SET_NO_NEW_PRIVS, "PR_SET_NO_NEW_PRIVS"),
    // The worker's first step: not dumpable (common/sandbox-child.h). Rules check one argument,
    // so the value is not checked here; no lockdown allows PR_SET_DUMPABLE, and every process
    // that could try it after start-up (the worker, the commands it runs) is under one.
    allowIf("prctl", 0, ALL_BITS, PR_SET_DUMPABLE, "PR_SET_DUMPABLE"),
    allowIf("prctl", 0, ALL_BITS, PR_GET_DUMPABLE, "PR_GET_DUMPABLE"),
};

// The zygote's own filter (common/zygote.h) adds these to its profile's groups and bootstrap:
// the one filter in chitin that allows mount, capset and namespace flags, because each forked
// worker builds its own namespaces with them. No worker keeps them: a forked worker loads its
// profile's filter, which kills on all of them, before it reads a byte from the supervisor.
const Rule ZYGOTE_RULES[] = {
    // Exactly the flags a fork asks for: never CLONE_NEWUSER (the workers share the zygote's
    // user namespace), never CLONE_VM or CLONE_THREAD.
    allowIf("clone", 0, ALL_BITS, ZYGOTE_CLONE_FLAGS, "the zygote's fork flags"),
    allow("mount"),   // the worker's fresh proc, tmpfs and devpts; its read-only root
    allow("capset"),  // the worker drops the zygote's CAP_SYS_ADMIN
    allow("wait4"),   // reaping forked workers
    allow("recvmsg"),
    allow("sendmsg"),
    allow("poll"),
    allow("dup2"),
    allow("close_range"),
    allow("getpid"),
    allow("statfs"),  // the root's mount flags, kept when the worker makes it read-only
    // Exporting the workers' lockdown filter, built once (libseccomp writes it to a memfd).
    allow("memfd_create"),
    allow("lseek"),
    allowIf("prctl", 0, ALL_BITS, PR_SET_PDEATHSIG, "PR_SET_PDEATHSIG"),
    allowIf("prctl", 0, ALL_BITS, PR_GET_NO_NEW_PRIVS, "PR_GET_NO_NEW_PRIVS"),
    allowIf("prctl", 0, ALL_BITS, PR_CAPBSET_READ, "PR_CAPBSET_READ"),
    allowIf("prctl", 0, ALL_BITS, PR_CAPBSET_DROP, "PR_CAPBSET_DROP"),
};

const char* const NEVER_ALLOWED_NAMES[] = {
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "move_mount",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "personality",
    "modify_ldt",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "open_by_handle_at",
    "name_to_handle_at",
    "kcmp",
    "pidfd_getfd",
    "iopl",
    "ioperm",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "quotactl",
    "syslog",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "sethostname",
    "setdomainname",
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setgroups",
    "setfsuid",
    "setfsgid",
    "capset",
    "fanotify_init",
    "uselib",
};

constexpr Group SESSION_GROUPS[] = {Group::BASIC_IO, Group::MEMORY, Group::PROCESS_SELF,
                                    Group::TIME};
constexpr Group MODEL_GROUPS[] = {Group::BASIC_IO, Group::MEMORY,    Group::PROCESS_SELF,
                                  Group::TIME,     Group::FILE_READ, Group::UNIX_IPC,
                                  Group::THREADS};
constexpr Group EXEC_GROUPS[] = {
    Group::BASIC_IO,   Group::MEMORY,   Group::PROCESS_SELF,  Group::TIME,    Group::FILE_READ,
    Group::FILE_WRITE, Group::UNIX_IPC, Group::PROCESS_SPAWN, Group::THREADS, Group::TERMINAL};
constexpr Group READ_GROUPS[] = {Group::BASIC_IO, Group::MEMORY, Group::PROCESS_SELF, Group::TIME,
                                 Group::FILE_READ};
constexpr Group WRITE_GROUPS[] = {Group::BASIC_IO, Group::MEMORY,    Group::PROCESS_SELF,
                                  Group::TIME,     Group::FILE_READ, Group::FILE_WRITE};
// Channel workers (workers/channel/): threads for the receive and outbound loops, AF_UNIX for
// the egress broker's socket (no AF_INET: the broker is their only way out), files read for CA
// certificates, and of file writing only what keeping state in /state takes (create, replace,
// sync, remove) -- no links, no modes, no ownership.
constexpr Group CHANNEL_GROUPS[] = {Group::BASIC_IO, Group::MEMORY,    Group::PROCESS_SELF,
                                    Group::TIME,     Group::FILE_READ, Group::UNIX_IPC,
                                    Group::THREADS};
const Rule CHANNEL_STATE_RULES[] = {
    allow("openat"), allow("rename"),    allow("renameat"),  allow("renameat2"),
    allow("fsync"),  allow("fdatasync"), allow("unlink"),    allow("unlinkat"),
    allow("mkdir"),  allow("mkdirat"),   allow("ftruncate"),
};
// The WhatsApp worker runs Node.js (its bridge) as a child, which inherits this filter: the
// channel set plus starting the bridge (fork, execve, wait), Node's start-up question whether
// its stdio are terminals (TCGETS only), and capget/pkey_alloc answered EPERM, as the profile
// does (sandbox-profiles/channel-whatsapp.textproto says why for each).
constexpr Group WHATSAPP_GROUPS[] = {Group::BASIC_IO, Group::MEMORY,       Group::PROCESS_SELF,
                                     Group::TIME,     Group::FILE_READ,    Group::UNIX_IPC,
                                     Group::THREADS,  Group::PROCESS_SPAWN};
const Rule WHATSAPP_RULES[] = {
    allow("openat"),    allow("rename"),    allow("renameat"),
    allow("renameat2"), allow("fsync"),     allow("fdatasync"),
    allow("unlink"),    allow("unlinkat"),  allow("mkdir"),
    allow("mkdirat"),   allow("ftruncate"), allowIf("ioctl", 1, LOW32, TCGETS, "TCGETS"),
};
const char* const WHATSAPP_ERRNO[] = {"capget", "pkey_alloc"};
// The browser worker (workers/browser/) runs Chromium as its child, which inherits this filter:
// the same groups as its profile (sandbox-profiles/browser.textproto says why for each), so the
// stacked filter takes nothing away from Chromium; what it adds is that the worker's own code
// reached it only after start-up.
constexpr Group BROWSER_GROUPS[] = {Group::BASIC_IO, Group::MEMORY,    Group::PROCESS_SELF,
                                    Group::TIME,     Group::FILE_READ, Group::FILE_WRITE,
                                    Group::UNIX_IPC, Group::NETWORK,   Group::PROCESS_SPAWN,
                                    Group::THREADS,  Group::TERMINAL,  Group::CHROMIUM};
const KindLockdown LOCKDOWNS[] = {
    {"session", SESSION_GROUPS, nullptr, nullptr},
    {"model", MODEL_GROUPS, nullptr, nullptr},
    {"exec", EXEC_GROUPS, nullptr, nullptr},
    {"read", READ_GROUPS, nullptr, nullptr},
    {"write", WRITE_GROUPS, nullptr, nullptr},
    {"edit", WRITE_GROUPS, nullptr, nullptr},
    // web_fetch: the model client's needs (TLS files read, the broker's AF_UNIX socket, libcurl's
    // threads), nothing more.
    {"web-fetch", MODEL_GROUPS, nullptr, nullptr},
    {"web-search", MODEL_GROUPS, nullptr, nullptr},
    // The memory worker: the workspace read (a read-only mount), its SQLite index written in
    // /state.
    {"memory", WRITE_GROUPS, nullptr, nullptr},
    // Test probes (tests/sandbox/) choose a real kind with --probe-kind; bare "probe" gets
    // the strictest set, so a mistaken use cannot widen anything.
    {"probe", SESSION_GROUPS, nullptr, nullptr},
    {"channel-whatsapp", WHATSAPP_GROUPS, WHATSAPP_RULES, WHATSAPP_ERRNO},
    {"browser", BROWSER_GROUPS, nullptr, nullptr},
    // Every "channel-<kind>" without an entry of its own (lockdownFor).
    {"channel-*", CHANNEL_GROUPS, CHANNEL_STATE_RULES, nullptr},
};

}  // namespace

const kj::ArrayPtr<const char* const> NEVER_ALLOWED = NEVER_ALLOWED_NAMES;

kj::StringPtr groupName(Group group) {
  switch (group) {
    case Group::BASIC_IO:
      return "BASIC_IO";
    case Group::MEMORY:
      return "MEMORY";
    case Group::PROCESS_SELF:
      return "PROCESS_SELF";
    case Group::FILE_READ:
      return "FILE_READ";
    case Group::FILE_WRITE:
      return "FILE_WRITE";
    case Group::UNIX_IPC:
      return "UNIX_IPC";
    case Group::NETWORK:
      return "NETWORK";
    case Group::PROCESS_SPAWN:
      return "PROCESS_SPAWN";
    case Group::THREADS:
      return "THREADS";
    case Group::TERMINAL:
      return "TERMINAL";
    case Group::TIME:
      return "TIME";
    case Group::CHROMIUM:
      return "CHROMIUM";
  }
  KJ_FAIL_REQUIRE("unknown syscall group", static_cast<int>(group));
}

kj::ArrayPtr<const Rule> groupRules(Group group) {
  switch (group) {
    case Group::BASIC_IO:
      return BASIC_IO_RULES;
    case Group::MEMORY:
      return MEMORY_RULES;
    case Group::PROCESS_SELF:
      return PROCESS_SELF_RULES;
    case Group::FILE_READ:
      return FILE_READ_RULES;
    case Group::FILE_WRITE:
      return FILE_WRITE_RULES;
    case Group::UNIX_IPC:
      return UNIX_IPC_RULES;
    case Group::NETWORK:
      return NETWORK_RULES;
    case Group::PROCESS_SPAWN:
      return PROCESS_SPAWN_RULES;
    case Group::THREADS:
      return THREADS_RULES;
    case Group::TERMINAL:
      return TERMINAL_RULES;
    case Group::TIME:
      return TIME_RULES;
    case Group::CHROMIUM:
      return CHROMIUM_RULES;
  }
  KJ_FAIL_REQUIRE("unknown syscall group", static_cast<int>(group));
}

kj::ArrayPtr<const Rule> bootstrapRules() { return BOOTSTRAP_RULES; }

kj::ArrayPtr<const Rule> zygoteRules() { return ZYGOTE_RULES; }

kj::Maybe<const KindLockdown&> lockdownFor(kj::StringPtr kind) {
  for (auto& lockdown : LOCKDOWNS) {
    if (kind == lockdown.kind) return lockdown;
  }
  // A kind ending in '*' covers every kind with that prefix and something after it, so each
  // new channel platform starts under the channel lockdown without an entry of its own.
  for (auto& lockdown : LOCKDOWNS) {
    kj::StringPtr pattern = lockdown.kind;
    if (!pattern.endsWith("*")) continue;
    size_t prefix = pattern.size() - 1;
    if (kind.size() > prefix && kind.slice(0, prefix) == pattern.slice(0, prefix)) return lockdown;
  }
  return nullptr;
}

kj::ArrayPtr<const KindLockdown> allLockdowns() { return LOCKDOWNS; }

int resolveSyscall(kj::StringPtr name) {
  int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, name.cStr());
  return nr == __NR_SCMP_ERROR ? -1 : nr;
}

kj::String describeRule(const Rule& rule) {
  std::string text = rule.syscall;
  if (rule.note[0] != '\0') text += std::string("(") + rule.note + ")";
  if (rule.errnoValue != 0) text += std::string(" -> ") + strerrorname_np(rule.errnoValue);
  return kj::heapString(text.data(), text.size());
}

namespace {

scmp_filter_ctx ctxOf(void* p) { return static_cast<scmp_filter_ctx>(p); }

void check(int rc, kj::StringPtr what, kj::StringPtr syscall) {
  if (rc < 0) {
    KJ_FAIL_REQUIRE("libseccomp refused a rule", what, syscall, strerror(-rc));
  }
}

}  // namespace

Filter::Filter(const FilterSpec& spec) {
  // Default: kill the whole process, so the supervisor sees SIGSYS instead of a half-dead
  // worker whose other threads keep running.
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  KJ_REQUIRE(ctx != nullptr, "seccomp_init failed");
  ctx_ = ctx;
  KJ_ON_SCOPE_FAILURE({
    seccomp_release(ctx);
    ctx_ = nullptr;
  });
  // Other ABIs (i386 int 0x80, x32) reach different syscall tables; they kill too.
  check(seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "bad-arch", "");
  check(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize", "");

  // libseccomp rejects an identical rule twice; groups overlap (futex, clone3, ...) on purpose.
  std::set<std::tuple<std::string, int, int, uint64_t, uint64_t>> seen;
  std::set<std::string> allowed;
  auto add = [&](const Rule& rule) {
    if (!seen.emplace(rule.syscall, rule.errnoValue, rule.argIndex, rule.mask, rule.value).second) {
      return;
    }
    int nr = resolveSyscall(rule.syscall);
    KJ_REQUIRE(nr >= 0, "unknown syscall in a seccomp rule", rule.syscall);
    uint32_t action = rule.errnoValue == 0 ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(rule.errnoValue);
    int rc;
    if (rule.argIndex < 0) {
      rc = seccomp_rule_add_exact(ctx, action, nr, 0);
    } else {
      scmp_arg_cmp cmp =
          SCMP_CMP(static_cast<unsigned>(rule.argIndex), SCMP_CMP_MASKED_EQ, rule.mask, rule.value);
      rc = seccomp_rule_add_exact_array(ctx, action, nr, 1, &cmp);
    }
    check(rc, "rule", rule.syscall);
    if (rule.errnoValue == 0) allowed.insert(rule.syscall);
  };
  for (Group group : spec.groups) {
    for (auto& rule : groupRules(group)) add(rule);
  }
  for (auto& rule : spec.extraRules) add(rule);
  if (spec.bootstrap) {
    for (auto& rule : bootstrapRules()) add(rule);
  }
  if (spec.zygote) {
    for (auto& rule : zygoteRules()) add(rule);
  }
  for (auto& name : spec.errnoSyscalls) {
    // An unconditional errno would silently replace every allow rule for the same syscall.
    KJ_REQUIRE(allowed.count(name.cStr()) == 0,
               "errno syscall is already allowed by a group or the bootstrap set", name);
    add(Rule{name.cStr(), EPERM, -1, 0, 0, ""});
  }
}

Filter::~Filter() noexcept {
  if (ctx_ != nullptr) seccomp_release(ctxOf(ctx_));
}

Filter::Filter(Filter&& other) noexcept : ctx_(other.ctx_) { other.ctx_ = nullptr; }

kj::Array<kj::byte> Filter::exportBpf() const {
  // libseccomp only exports to an fd; a memfd keeps it off the filesystem.
  int fd;
  KJ_SYSCALL(fd = memfd_create("chitin-seccomp-export", MFD_CLOEXEC));
  kj::AutoCloseFd owned(fd);
  int rc = seccomp_export_bpf(ctxOf(ctx_), fd);
  KJ_REQUIRE(rc == 0, "seccomp_export_bpf failed", strerror(-rc));
  off_t size;
  KJ_SYSCALL(size = lseek(fd, 0, SEEK_END));
  auto bytes = kj::heapArray<kj::byte>(size);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n;
    KJ_SYSCALL(n = pread(fd, bytes.begin() + done, bytes.size() - done, done));
    KJ_ASSERT(n > 0, "short read of exported seccomp filter");
    done += n;
  }
  return bytes;
}

void Filter::load() const {
  KJ_SYSCALL(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
  int rc = seccomp_load(ctxOf(ctx_));
  KJ_REQUIRE(rc == 0, "seccomp_load failed", strerror(-rc));
}

}  // namespace chitin::seccomp
