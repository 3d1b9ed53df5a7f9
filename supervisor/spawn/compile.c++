// SPDX-License-Identifier: Apache-2.0
// Compiling a profile into a bwrap command line, a seccomp program and worker limits; and the
// reviewer's view of all three (`chitin sandbox explain`).
// Runs in: supervisor

#include <kj/debug.h>

#include <string.h>

#include <sstream>

#include "profile.h"
#include "sandbox-child.h"
#include "seccomp-groups.h"
#include "spawner.h"
#include "zygote.h"

namespace chitin::spawn {

// The profile schema and the shared group tables must agree number for number.
static_assert(static_cast<int>(seccomp::Group::BASIC_IO) == config::BASIC_IO);
static_assert(static_cast<int>(seccomp::Group::MEMORY) == config::MEMORY);
static_assert(static_cast<int>(seccomp::Group::PROCESS_SELF) == config::PROCESS_SELF);
static_assert(static_cast<int>(seccomp::Group::FILE_READ) == config::FILE_READ);
static_assert(static_cast<int>(seccomp::Group::FILE_WRITE) == config::FILE_WRITE);
static_assert(static_cast<int>(seccomp::Group::UNIX_IPC) == config::UNIX_IPC);
static_assert(static_cast<int>(seccomp::Group::NETWORK) == config::NETWORK);
static_assert(static_cast<int>(seccomp::Group::PROCESS_SPAWN) == config::PROCESS_SPAWN);
static_assert(static_cast<int>(seccomp::Group::THREADS) == config::THREADS);
static_assert(static_cast<int>(seccomp::Group::TERMINAL) == config::TERMINAL);
static_assert(static_cast<int>(seccomp::Group::TIME) == config::TIME);
static_assert(static_cast<int>(seccomp::Group::CHROMIUM) == config::CHROMIUM);
static_assert(config::SyscallGroup_MAX == config::CHROMIUM, "a new SyscallGroup needs a table");

namespace {

std::vector<seccomp::Group> groupsOf(const config::SandboxProfile& profile) {
  std::vector<seccomp::Group> groups;
  for (int g : profile.syscalls()) groups.push_back(static_cast<seccomp::Group>(g));
  return groups;
}

bool isCleanValue(const std::string& value) {
  if (value.size() < 2 || value[0] != '/' || value.back() == '/') return false;
  if (value.find('\0') != std::string::npos || value.find("//") != std::string::npos) return false;
  return value.find("/../") == std::string::npos && value.find("/./") == std::string::npos &&
         value.compare(value.size() - 3, 3, "/..") != 0 &&
         value.compare(value.size() - 2, 2, "/.") != 0;
}

std::string expandSrc(const config::SandboxProfile& profile, const std::string& src,
                      const std::map<std::string, std::string>& vars, bool forExplain) {
  std::string error;
  std::string out = src;
  for (auto& name : variablesIn(src, error)) {
    auto it = vars.find(name);
    if (it == vars.end()) {
      if (forExplain) continue;  // shown as ${NAME}
      throw SandboxUnavailable("sandbox profile \"" + profile.name() + "\" mounts ${" + name +
                               "} but the spawn request gives no value for it");
    }
    if (!isCleanValue(it->second)) {
      throw SandboxUnavailable("${" + name +
                               "} must be an absolute path other than / without "
                               "'.', '..' or '//', got \"" +
                               it->second + "\"");
    }
    out = substitute(out, name, it->second);
  }
  KJ_REQUIRE(error.empty(), "profile was validated at load", error);
  return out;
}

bool allVariablesGiven(const std::string& src, const std::map<std::string, std::string>& vars) {
  std::string error;
  for (auto& name : variablesIn(src, error)) {
    if (vars.count(name) == 0) return false;
  }
  return true;
}

bool isShellSafe(const std::string& arg) {
  if (arg.empty()) return false;
  for (char c : arg) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string("_./=:,+-@%").find(c) != std::string::npos;
    if (!ok) return false;
  }
  return true;
}

std::string shellQuote(const std::string& arg) {
  if (isShellSafe(arg)) return arg;
  std::string out = "'";
  for (char c : arg) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// What a hidden directory's cover may hold: nothing (it is read-only), but tmpfs wants a size.
constexpr uint64_t HIDE_TMPFS_BYTES = 4096;

const char* describeHideError(int error) {
  switch (error) {
    case ENOENT:
      return "it does not exist (create it first; nothing is created on the host)";
    case ENOTDIR:
      return "it is not a directory";
    case ELOOP:
      return "it is a symlink or lies behind one";
    case EXDEV:
      return "it lies on another mount";
    case EACCES:
      return "permission denied";
    default:
      return strerror(error);
  }
}

std::string humanBytes(uint64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  uint64_t value = bytes;
  while (unit < 4 && value >= 1024 && value % 1024 == 0) {
    value /= 1024;
    unit++;
  }
  return std::to_string(value) + " " + units[unit];
}

}  // namespace

std::string limitsFlag(const config::Limits& limits) {
  return std::string(LIMITS_FLAG) + "as=" + std::to_string(limits.memory_bytes()) +
         ",nproc=" + std::to_string(limits.max_processes()) +
         ",nofile=" + std::to_string(limits.max_open_files()) +
         ",cpu=" + std::to_string(limits.cpu_seconds()) +
         ",fsize=" + std::to_string(limits.max_file_bytes());
}

namespace {

std::string compileFilter(const config::SandboxProfile& profile, bool zygote) {
  auto groups = groupsOf(profile);
  std::vector<kj::StringPtr> errnoNames;
  for (auto& name : profile.errno_syscalls()) errnoNames.push_back(name.c_str());
  seccomp::FilterSpec spec;
  spec.groups = kj::arrayPtr(groups.data(), groups.size());
  spec.bootstrap = true;
  spec.zygote = zygote;
  spec.errnoSyscalls = kj::arrayPtr(errnoNames.data(), errnoNames.size());
  auto bpf = seccomp::Filter(spec).exportBpf();
  return std::string(bpf.asChars().begin(), bpf.size());
}

}  // namespace

std::string compileSeccomp(const config::SandboxProfile& profile) {
  return compileFilter(profile, false);
}

std::string compileZygoteSeccomp(const config::SandboxProfile& profile) {
  return compileFilter(profile, true);
}

std::string Spawner::findWorker(const config::SandboxProfile& profile, const SpawnRequest& request,
                                bool forExplain) {
  if (request.workerOverride) {
    const std::string& path = *request.workerOverride;
    if (path.empty() || path[0] != '/' || !os_.isExecutable(path)) {
      throw SandboxUnavailable("worker override \"" + path +
                               "\" is not an executable file "
                               "given by absolute path");
    }
    return path;
  }
  std::string file = "chitin-worker-" + profile.worker();
  std::string direct = settings_.workerDir + "/" + file;
  if (os_.isExecutable(direct)) return direct;
  // The meson build tree keeps each worker in build/workers/<folder>/: listed once, then the
  // file found is checked again at each spawn (and looked for anew once it has gone).
  auto known = nestedWorkers_.find(file);
  if (known != nestedWorkers_.end()) {
    if (os_.isExecutable(known->second)) return known->second;
    nestedWorkers_.erase(known);
  }
  for (auto& sub : os_.subdirectories(settings_.workerDir)) {
    std::string nested = settings_.workerDir + "/" + sub + "/" + file;
    if (os_.isExecutable(nested)) return nestedWorkers_[file] = nested;
  }
  if (forExplain) return direct + " (not found)";
  throw SandboxUnavailable("worker executable " + file + " not found in " + settings_.workerDir +
                           " or the folders directly inside it (is it built and installed?)");
}

std::vector<std::string> Spawner::compileArgv(const config::SandboxProfile& profile,
                                              const SpawnRequest& request, int seccompFd) {
  return compileArgvImpl(profile, request, seccompFd, false);
}

std::vector<std::string> Spawner::compileArgvImpl(const config::SandboxProfile& profile,
                                                  const SpawnRequest& request, int seccompFd,
                                                  bool forExplain, bool zygote) {
  for (auto& [name, value] : request.vars) {
    if (KNOWN_VARIABLES.count(name) == 0) {
      throw SandboxUnavailable("unknown sandbox variable \"" + name +
                               "\" (known: WORKSPACE, STATE_DIR, SKILLS)");
    }
  }
  for (auto& arg : request.workerArgs) {
    KJ_REQUIRE(arg.rfind(LIMITS_FLAG, 0) != 0, "worker args must not carry limits", arg);
    KJ_REQUIRE(arg.rfind(HIDDEN_FLAG, 0) != 0, "worker args must not name hidden paths", arg);
    KJ_REQUIRE(arg.rfind(EGRESS_FLAG, 0) != 0, "worker args must not name an egress socket", arg);
    KJ_REQUIRE(arg.find('\0') == std::string::npos, "worker arg contains NUL");
    KJ_REQUIRE(arg != zygote::ZYGOTE_FLAG, "worker args must not ask for a zygote", arg);
  }
  KJ_REQUIRE(seccompFd > 3, "fd 0-2 are stdio and fd 3 is the worker's socket", seccompFd);

  std::vector<std::string> argv{settings_.bwrapPath};
  auto add = [&](std::initializer_list<std::string> args) {
    argv.insert(argv.end(), args.begin(), args.end());
  };
  // Every namespace. The user namespace is named explicitly: bwrap then fails instead of
  // running without one. The network namespace is kept only when the profile grants it.
  add({"--unshare-all", "--unshare-user"});
  if (profile.network()) add({"--share-net"});
  // No nested user namespaces (they would re-open the kernel surface the filter closes), die
  // with the supervisor, no controlling terminal (TIOCSTI), no capabilities, no environment.
  add({"--disable-userns", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv",
       "--hostname", "chitin-sandbox"});
  // A zygote keeps two capabilities, inside this sandbox's user namespace only: each worker it
  // forks mounts its own proc and tmpfs with the first, then takes both out of its bounding set
  // with the second and drops them (common/zygote.h).
  if (zygote) add({"--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETPCAP"});
  // A fork_server profile's workers stay alive idle, a thousand of them on one host (forked by
  // its zygote, or each by bwrap): glibc's malloc keeps no freed chunk in its per-thread cache
  // or fast bins there, where malloc_trim could not give back the pages under them, but
  // coalesces them at once. Measured per idle forked session worker, heap pages of its own:
  // 56 -> 28 KiB (with the zygote's sealed heap, common/zygote.h). A fixed value of ours, read by
  // the loader as any variable bwrap sets; nothing of the request reaches it.
  if (profile.fork_server()) add({"--setenv", "GLIBC_TUNABLES", zygote::ZYGOTE_MALLOC_TUNABLES});
  // The one variable every worker gets: GnuTLS (loaded only as a dependency of libcurl's
  // dependencies; chitin's TLS is OpenSSL) otherwise initialises itself in a library
  // constructor, loading p11-kit's trust module: ~100 KiB of heap in each worker that links libcurl, for nothing.
  add({"--setenv", "GNUTLS_NO_IMPLICIT_INIT", "1"});
  // The worker itself is pid 1: bwrap's reaper would otherwise sit in the sandbox under the
  // profile filter only, and a worker allowed to open /proc/1/mem could write into it and shed
  // its own stricter lockdown.
  add({"--as-pid-1"});
  add({"--seccomp", std::to_string(seccompFd)});
  // ${WORKER_DIR} comes from where the worker was found, never from the request (the check
  // above refuses it there as unknown).
  std::string workerPath = findWorker(profile, request, forExplain);
  std::map<std::string, std::string> vars = request.vars;
  if (!forExplain || os_.isExecutable(workerPath))
    vars[WORKER_DIR_VARIABLE] = workerPath.substr(0, workerPath.rfind('/'));
  for (auto& mount : profile.mount()) {
    const std::string& dst = mount.dst();
    switch (mount.kind()) {
      case config::Mount::RO_BIND:
        add({"--ro-bind", expandSrc(profile, mount.src(), vars, forExplain), dst});
        break;
      case config::Mount::RO_BIND_TRY:
        // Optional: a spawn that names no value for its variable goes without it.
        if (!forExplain && !allVariablesGiven(mount.src(), vars)) break;
        add({"--ro-bind-try", expandSrc(profile, mount.src(), vars, forExplain), dst});
        break;
      case config::Mount::BIND:
        add({"--bind", expandSrc(profile, mount.src(), vars, forExplain), dst});
        break;
      case config::Mount::TMPFS:
        // RLIMIT_AS does not count tmpfs pages: every tmpfs gets the profile's cap (and, where
        // cgroups are delegated, counts against the sandbox's memory.max too).
        add({"--size", std::to_string(profile.limits().tmpfs_bytes()), "--tmpfs", dst});
        break;
      case config::Mount::PROC:
        add({"--proc", dst});
        break;
      case config::Mount::DEV:
        // bwrap's /dev is itself an uncapped tmpfs, writable by the worker, with /dev/shm a
        // plain directory in it. So: a capped tmpfs on /dev/shm, then /dev read-only (not
        // recursive: the device nodes, /dev/pts and /dev/shm are mounts of their own).
        add({"--dev", dst});
        add({"--size", std::to_string(profile.limits().tmpfs_bytes()), "--tmpfs", dst + "/shm"});
        add({"--remount-ro", dst});
        break;
      case config::Mount::SYMLINK:
        add({"--symlink", mount.src(), dst});
        break;
      case config::Mount::DIR:
        add({"--dir", dst});
        break;
      default:
        throw SandboxUnavailable("sandbox profile \"" + profile.name() +
                                 "\" has a mount of an "
                                 "unknown kind");
    }
  }
  auto hides = compileHides(profile, request, forExplain);
  argv.insert(argv.end(), hides.begin(), hides.end());
  auto egress = compileEgress(profile, request, forExplain);
  argv.insert(argv.end(), egress.begin(), egress.end());
  add({"--ro-bind", workerPath, WORKER_PATH_INSIDE});
  add({"--chdir", profile.workdir().empty() ? std::string("/") : profile.workdir()});
  if (zygote) {
    // The zygote's own limits: the profile's, but room for its workers in RLIMIT_NPROC (they
    // share its user namespace; each sets the profile's own after the fork).
    config::Limits limits = profile.limits();
    limits.set_max_processes(ZYGOTE_MAX_WORKERS + 1);
    add({"--", WORKER_PATH_INSIDE, limitsFlag(limits), zygote::ZYGOTE_FLAG});
  } else {
    add({"--", WORKER_PATH_INSIDE, limitsFlag(profile.limits())});
  }
  for (auto& path : request.hide) add({HIDDEN_FLAG + path});
  if (!egress.empty()) add({std::string(EGRESS_FLAG) + EGRESS_SOCKET_INSIDE});
  argv.insert(argv.end(), request.workerArgs.begin(), request.workerArgs.end());
  return argv;
}

std::vector<std::string> Spawner::compileEgress(const config::SandboxProfile& profile,
                                                const SpawnRequest& request, bool forExplain) {
  const std::string& socket = request.egressSocket;
  if (!profile.egress()) {
    // A socket the profile does not ask for would be a way out nobody reviewed.
    if (!socket.empty()) {
      throw SandboxUnavailable("sandbox profile \"" + profile.name() +
                               "\" has no egress: true, but the spawn request gives it an "
                               "egress socket (" +
                               socket + ")");
    }
    return {};
  }
  if (socket.empty()) {
    if (forExplain) return {"--ro-bind", "${EGRESS_SOCKET}", EGRESS_SOCKET_INSIDE};
    throw SandboxUnavailable("sandbox profile \"" + profile.name() +
                             "\" has egress: true, but the spawn request gives no egress "
                             "socket (the worker would have no way to the network)");
  }
  if (!isCleanValue(socket)) {
    throw SandboxUnavailable(
        "egress socket must be an absolute path without '.', '..' or '//', "
        "got \"" +
        socket + "\"");
  }
  if (!os_.isSocket(socket)) {
    throw SandboxUnavailable("egress socket " + socket +
                             " is not a unix socket (missing, a symlink, or another file)");
  }
  // Read-only is enough: connect() needs write permission on the socket inode, which a
  // read-only mount does not take away (the kernel's read-only check covers regular files,
  // directories and symlinks only). tests/sandbox/egress-test.c++ proves it.
  return {"--ro-bind", socket, EGRESS_SOCKET_INSIDE};
}

std::vector<std::string> Spawner::compileHides(const config::SandboxProfile& profile,
                                               const SpawnRequest& request, bool forExplain,
                                               std::vector<std::string>* identities) {
  std::vector<std::string> args;
  std::vector<std::string> done;
  for (auto& path : request.hide) {
    auto refuse = [&](const std::string& why) -> SandboxUnavailable {
      return SandboxUnavailable("cannot hide \"" + path + "\" from the " + profile.name() +
                                " worker: " + why);
    };
    if (!isCleanValue(path)) {
      throw refuse("expected an absolute path inside the sandbox without '.', '..' or '//'");
    }
    // The innermost mount the path lies beneath must be a bind of a host directory.
    const config::Mount* under = nullptr;
    for (auto& mount : profile.mount()) {
      const std::string& dst = mount.dst();
      bool beneath = path.size() > dst.size() && path.compare(0, dst.size(), dst) == 0 &&
                     (dst == "/" || path[dst.size()] == '/');
      if (beneath && (under == nullptr || dst.size() >= under->dst().size())) under = &mount;
    }
    if (under == nullptr ||
        (under->kind() != config::Mount::BIND && under->kind() != config::Mount::RO_BIND)) {
      throw refuse("it is not beneath a BIND or RO_BIND mount of the profile");
    }
    for (auto& other : done) {
      bool nested = (path.rfind(other + "/", 0) == 0) || (other.rfind(path + "/", 0) == 0);
      if (path == other || nested) throw refuse("it is named twice or nested in \"" + other + "\"");
    }
    std::string relative = path.substr(under->dst() == "/" ? 1 : under->dst().size() + 1);
    // The host side, when the variables are known (explain may show the lines without them).
    std::string error;
    bool known = true;
    for (auto& name : variablesIn(under->src(), error)) known = known && request.vars.count(name);
    if (known || !forExplain) {
      std::string src = expandSrc(profile, under->src(), request.vars, forExplain);
      int problem = os_.checkPlainDirectory(src, relative);
      if (problem != 0) throw refuse(describeHideError(problem));
      if (identities != nullptr) identities->push_back(os_.directoryIdentity(src, relative));
    }
    done.push_back(path);
    args.insert(args.end(), {"--perms", "0555", "--size", std::to_string(HIDE_TMPFS_BYTES),
                             "--tmpfs", path, "--remount-ro", path});
  }
  return args;
}

std::string Spawner::explain(const std::string& name,
                             const std::map<std::string, std::string>& vars,
                             const std::vector<std::string>& hide) {
  auto profile = loadProfile(os_, settings_.profileDir, name);
  SpawnRequest request;
  request.profile = name;
  request.vars = vars;
  request.hide = hide;
  auto argv = compileArgvImpl(profile, request, SECCOMP_FD, true);

  std::ostringstream out;
  out << "sandbox profile \"" << profile.name() << "\": " << profile.description() << "\n";
  out << "worker kind: " << profile.worker() << "\n";
  out << "network: "
      << (profile.network() ? "shared with the host" : "none (own namespace, loopback only)")
      << "\negress: "
      << (profile.egress() ? std::string("through the supervisor's broker only: the worker's own "
                                         "socket at ") +
                                 EGRESS_SOCKET_INSIDE + " (SOCKS5, its allowlist)"
                           : std::string("none"))
      << "\n\nbwrap command line (fd 3: the worker's socket; fd " << SECCOMP_FD
      << ": the seccomp program; empty environment):\n ";
  for (size_t i = 0; i < argv.size(); i++) {
    bool breakLine = i > 0 && argv[i].rfind("--", 0) == 0;
    out << (breakLine ? " \\\n    " : " ") << shellQuote(argv[i]);
  }
  out << "\n\nseccomp filter (x86_64 only; i386/x32 entry points and every syscall not listed "
         "kill the process: SIGSYS):\n";
  auto listRules = [&](const std::string& title, kj::ArrayPtr<const seccomp::Rule> rules) {
    out << "  " << title << ":\n   ";
    size_t column = 3;
    for (size_t i = 0; i < rules.size(); i++) {
      std::string item = seccomp::describeRule(rules[i]).cStr();
      if (i + 1 < rules.size()) item += ",";
      if (column + 1 + item.size() > 96) {
        out << "\n   ";
        column = 3;
      }
      out << " " << item;
      column += 1 + item.size();
    }
    out << "\n";
  };
  for (int g : profile.syscalls()) {
    auto group = static_cast<seccomp::Group>(g);
    listRules(seccomp::groupName(group).cStr(), seccomp::groupRules(group));
  }
  listRules(
      "bootstrap (bwrap's exec of the worker, the dynamic loader and the worker's "
      "start-up, before the worker's own filter)",
      seccomp::bootstrapRules());
  out << "  errno EPERM instead of kill:";
  if (profile.errno_syscalls_size() == 0) out << " (none)";
  for (auto& syscall : profile.errno_syscalls()) out << " " << syscall;
  out << "\n\nworker lockdown after start-up (a second, stacked filter):";
  KJ_IF_MAYBE (lockdown, seccomp::lockdownFor(profile.worker())) {
    for (auto group : lockdown->groups) out << " " << seccomp::groupName(group).cStr();
    for (auto& rule : lockdown->extraRules) out << " " << seccomp::describeRule(rule).cStr();
    for (auto syscall : lockdown->errnoSyscalls) out << " errno:" << syscall;
  } else {
    out << " none known for kind \"" << profile.worker() << "\": the worker refuses to start";
  }
  if (profile.fork_server()) {
    out << "\n\nfork server: one zygote, the command line above with --cap-add CAP_SYS_ADMIN "
           "and CAP_SETPCAP (inside its own\nuser namespace only), "
        << zygote::ZYGOTE_FLAG << " and RLIMIT_NPROC " << ZYGOTE_MAX_WORKERS + 1
        << ", under the filter above plus:\n";
    listRules("zygote (forking workers into namespaces of their own)", seccomp::zygoteRules());
    out << "forks each worker (where cgroup limits are not in force; else bwrap spawns it as "
           "above)\ninto fresh pid, mount, network (nothing up), IPC, UTS and cgroup "
           "namespaces; before it serves, the worker\nmounts its own /proc, each tmpfs, "
           "/dev/shm and devpts, makes the root read-only, drops every capability\n(bounding "
           "set included) and loads the filter above; then its limits and lockdown as below.";
  }
  out << "\n\nhidden directories (each an empty read-only tmpfs; the worker checks them before "
         "it serves):";
  if (hide.empty()) out << " none in this request (the supervisor may hide some per call)";
  for (auto& path : hide) out << " " << shellQuote(path);
  const auto& limits = profile.limits();
  out << "\n\nlimits (rlimits set by the worker inside its own user namespace):\n"
      << "  address space: " << humanBytes(limits.memory_bytes()) << "\n"
      << "  processes and threads: " << limits.max_processes() << "\n"
      << "  open files: " << limits.max_open_files() << "\n"
      << "  cpu time: " << limits.cpu_seconds() << " s\n"
      << "  file size: " << humanBytes(limits.max_file_bytes()) << "\n"
      << "  each tmpfs (and /dev/shm; /dev itself is read-only): "
      << humanBytes(limits.tmpfs_bytes()) << "\n"
      << "  wall clock: "
      << (limits.wall_clock_seconds() == 0 ? std::string("none")
                                           : std::to_string(limits.wall_clock_seconds()) +
                                                 " s (the supervisor kills the sandbox)")
      << "\n"
      << "cgroup v2 limits for the whole sandbox, where the host delegates cgroups (`chitin "
         "doctor` says whether it does):\n"
      << "  memory.max: " << humanBytes(limits.sandbox_memory_bytes())
      << " (all processes, page cache and tmpfs), no swap\n"
      << "  pids.max: " << limits.max_processes() + 1 << " (bwrap itself, and the processes)\n"
      << "  cpu.max: " << limits.cpu_percent() << "% of one CPU ("
      << Cgroups::cpuMax(limits.cpu_percent()) << ")\n";
  return out.str();
}

}  // namespace chitin::spawn
