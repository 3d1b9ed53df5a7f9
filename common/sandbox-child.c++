// SPDX-License-Identifier: Apache-2.0
// The last sandbox steps, applied by the worker itself: rlimits and the kind's stacked filter.
// Runs in: worker (sandboxed)

#include "sandbox-child.h"

#include <execinfo.h>
#include <kj/debug.h>
#include <kj/string.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "seccomp-groups.h"

namespace chitin {

namespace {

struct LimitKey {
  const char* key;
  int resource;
};

// Every key is required: a limit the spawner forgot must stop the worker, not default to
// "unlimited".
constexpr LimitKey LIMIT_KEYS[] = {
    {"as", RLIMIT_AS},   {"nproc", RLIMIT_NPROC}, {"nofile", RLIMIT_NOFILE},
    {"cpu", RLIMIT_CPU}, {"fsize", RLIMIT_FSIZE},
};

uint64_t parsePositive(kj::StringPtr key, kj::StringPtr text) {
  KJ_REQUIRE(text.size() > 0 && text.size() <= 20, "limit value is not a positive integer", key,
             text);
  uint64_t value = 0;
  for (char c : text) {
    KJ_REQUIRE(c >= '0' && c <= '9', "limit value is not a positive integer", key, text);
    uint64_t next = value * 10 + static_cast<uint64_t>(c - '0');
    KJ_REQUIRE(next / 10 == value, "limit value overflows", key, text);
    value = next;
  }
  KJ_REQUIRE(value > 0, "limit value is not a positive integer", key, text);
  return value;
}

}  // namespace

void applyLimitsInChild(int argc, char** argv) {
  kj::Maybe<kj::StringPtr> spec;
  for (int i = 1; i < argc; i++) {
    kj::StringPtr arg = argv[i];
    if (arg.startsWith(LIMITS_FLAG)) {
      KJ_REQUIRE(spec == nullptr, "limits flag given twice", arg);
      spec = arg.slice(sizeof(LIMITS_FLAG) - 1);
    }
  }
  KJ_IF_MAYBE (text, spec) {
    bool seen[kj::size(LIMIT_KEYS)] = {};
    rlimit values[kj::size(LIMIT_KEYS)] = {};
    kj::StringPtr rest = *text;
    while (rest.size() > 0) {
      kj::String item;
      KJ_IF_MAYBE (comma, rest.findFirst(',')) {
        item = kj::heapString(rest.slice(0, *comma));
        rest = rest.slice(*comma + 1);
        KJ_REQUIRE(rest.size() > 0, "limits flag ends with a comma", *text);
      } else {
        item = kj::heapString(rest);
        rest = "";
      }
      size_t eq = KJ_REQUIRE_NONNULL(item.findFirst('='), "limit is not key=value", item);
      kj::String key = kj::heapString(item.slice(0, eq));
      bool known = false;
      for (size_t k = 0; k < kj::size(LIMIT_KEYS); k++) {
        if (key == LIMIT_KEYS[k].key) {
          KJ_REQUIRE(!seen[k], "limit given twice", key);
          seen[k] = true;
          uint64_t value = parsePositive(key, item.slice(eq + 1));
          values[k] = rlimit{value, value};
          known = true;
        }
      }
      KJ_REQUIRE(known, "unknown limit key (expected as, nproc, nofile, cpu, fsize)", key);
    }
    for (size_t k = 0; k < kj::size(LIMIT_KEYS); k++) {
      KJ_REQUIRE(seen[k], "limits flag is missing a key", LIMIT_KEYS[k].key, *text);
    }
    // Set only after everything parsed, so a bad flag leaves nothing half-applied.
    for (size_t k = 0; k < kj::size(LIMIT_KEYS); k++) {
      KJ_SYSCALL(setrlimit(LIMIT_KEYS[k].resource, &values[k]), LIMIT_KEYS[k].key);
    }
    // No core files: a crashing worker must not write its memory (which may hold a session's
    // transcript) anywhere, nor hand it to a host core handler.
    rlimit noCore{0, 0};
    KJ_SYSCALL(setrlimit(RLIMIT_CORE, &noCore));
  } else {
    KJ_FAIL_REQUIRE("missing limits flag; workers are started by the spawner", LIMITS_FLAG);
  }
}

void makeUndumpableInChild() {
  KJ_SYSCALL(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0));
  int dumpable;
  KJ_SYSCALL(dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
  KJ_REQUIRE(dumpable == 0, "the worker is still dumpable");
}

void checkHiddenInChild(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    kj::StringPtr arg = argv[i];
    if (!arg.startsWith(HIDDEN_FLAG)) continue;
    kj::StringPtr path = arg.slice(sizeof(HIDDEN_FLAG) - 1);
    KJ_REQUIRE(path.startsWith("/"), "hidden path is not absolute", path);
    int fd = open(path.cStr(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) KJ_FAIL_SYSCALL("open(hidden directory)", errno, path);
    KJ_DEFER(close(fd));
    struct statfs fs;
    KJ_SYSCALL(fstatfs(fd, &fs), path);
    KJ_REQUIRE(fs.f_type == TMPFS_MAGIC, "hidden directory is not covered by a tmpfs", path);
    KJ_REQUIRE((fs.f_flags & ST_RDONLY) != 0, "hidden directory's cover is not read-only", path);
    char entries[256];
    long n;
    KJ_SYSCALL(n = syscall(SYS_getdents64, fd, entries, sizeof(entries)), path);
    // An empty directory lists exactly "." and "..".
    size_t count = 0;
    for (long offset = 0; offset < n;) {
      auto* entry = reinterpret_cast<dirent64*>(entries + offset);
      count++;
      offset += entry->d_reclen;
    }
    KJ_REQUIRE(count == 2, "hidden directory's cover is not empty", path);
  }
}

namespace {

seccomp::Filter lockdownFilter(kj::StringPtr kind) {
  auto& lockdown = KJ_REQUIRE_NONNULL(seccomp::lockdownFor(kind), "unknown worker kind", kind);
  auto errnoNames = KJ_MAP(name, lockdown.errnoSyscalls) { return kj::StringPtr(name); };
  seccomp::FilterSpec spec;
  spec.groups = lockdown.groups;
  spec.extraRules = lockdown.extraRules;
  spec.errnoSyscalls = errnoNames;
  return seccomp::Filter(spec);
}

// KJ records a stack trace in every exception, and glibc's backtrace() dlopens libgcc_s on first
// use. Make that first use before the lockdown, while the worker may still open files; otherwise
// the first exception after it (even a normal disconnect) would kill a session worker.
void loadLibgccNow() {
  void* frames[4];
  backtrace(frames, 4);
}

}  // namespace

void lockDownInWorker(kj::StringPtr kind) {
  // Build before loading: building allocates, which the filter itself allows anyway, but a
  // failure here must leave a clear error rather than a half-locked process.
  seccomp::Filter filter = lockdownFilter(kind);
  loadLibgccNow();
  filter.load();  // sets PR_SET_NO_NEW_PRIVS first
}

kj::Array<kj::byte> lockdownProgramFor(kj::StringPtr kind) {
  return lockdownFilter(kind).exportBpf();
}

void lockDownWithProgram(kj::ArrayPtr<const kj::byte> program) {
  KJ_REQUIRE(program.size() > 0 && program.size() % sizeof(sock_filter) == 0 &&
                 program.size() / sizeof(sock_filter) <= BPF_MAXINSNS,
             "not a seccomp program", program.size());
  loadLibgccNow();
  KJ_SYSCALL(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
  if (int error = loadSeccompProgram(program); error != 0) {
    KJ_FAIL_SYSCALL("seccomp(SECCOMP_SET_MODE_FILTER)", error);
  }
}

int loadSeccompProgram(kj::ArrayPtr<const kj::byte> program) {
  sock_fprog fprog{static_cast<unsigned short>(program.size() / sizeof(sock_filter)),
                   reinterpret_cast<sock_filter*>(const_cast<kj::byte*>(program.begin()))};
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0 ? errno : 0;
}

}  // namespace chitin
