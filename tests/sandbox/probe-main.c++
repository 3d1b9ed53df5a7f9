// SPDX-License-Identifier: Apache-2.0
// chitin-worker-probe: a worker that tries one thing a sandbox should (or should not) allow.
// Runs in: worker (sandboxed) -- and, for control runs, unsandboxed in the test.
//
// argv: --probe-kind=K --probe=NAME [--probe-arg=X]... plus the spawner's --chitin-limits.
// With a real kind K the probe starts exactly like a worker of kind K (chitin::runWorker:
// limits, RPC on fd 3, K's lockdown) and runs NAME from the event loop, i.e. after lockdown.
// With K = "none" it runs NAME at once without any of that: the control run outside the
// sandbox. It writes one line "result: ..." to stdout and exits 0; a kill shows in its exit.

#include <arpa/inet.h>
#include <capnp/capability.h>
#include <errno.h>
#include <fcntl.h>
#include <kj/async.h>
#include <kj/debug.h>
#include <linux/if_packet.h>
#include <linux/openat2.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "worker-main.h"
#include "zygote.h"

namespace {

struct Probe {
  std::string name;
  std::vector<std::string> args;
};

void writeLine(const std::string& text) {
  std::string line = text + "\n";
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = write(STDOUT_FILENO, line.data() + done, line.size() - done);
    if (n <= 0) return;
    done += n;
  }
}

std::string errnoResult(int err, const std::string& detail = "") {
  const char* name = strerrorname_np(err);
  return std::string("errno=") + (name != nullptr ? name : std::to_string(err)) +
         (detail.empty() ? "" : " " + detail);
}

std::string syscallResult(long rc) { return rc < 0 ? errnoResult(errno) : "ok"; }

std::string escaped(const char* data, size_t size) {
  std::string out;
  for (size_t i = 0; i < size && i < 200; i++) {
    unsigned char c = data[i];
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char hex[5];
      snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    }
  }
  return out;
}

[[noreturn]] void holdForever() {
  for (;;) pause();
}

const std::string& arg(const Probe& probe, size_t i) {
  if (i >= probe.args.size()) {
    writeLine("result: usage: probe " + probe.name + " needs more --probe-arg");
    _exit(2);
  }
  return probe.args[i];
}

std::string run(const Probe& probe) {
  const std::string& name = probe.name;
  if (name == "noop") return "ok";
  if (name == "read") {
    int fd = open(arg(probe, 0).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errnoResult(errno);
    char buffer[65536];
    ssize_t n = read(fd, buffer, sizeof(buffer));
    int err = errno;
    close(fd);
    if (n < 0) return errnoResult(err, "(read)");
    return "ok bytes=" + std::to_string(n) + " text=" + escaped(buffer, n);
  }
  if (name == "find") {
    // Whether the whole file contains the text (binary-safe: environ is NUL-separated).
    int fd = open(arg(probe, 0).c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errnoResult(errno);
    std::string content;
    char buffer[65536];
    ssize_t n;
    while ((n = read(fd, buffer, sizeof(buffer))) > 0) content.append(buffer, n);
    int err = errno;
    close(fd);
    if (n < 0) return errnoResult(err, "(read)");
    return content.find(arg(probe, 1)) == std::string::npos ? "ok absent" : "ok found";
  }
  if (name == "throw") {
    // A KJ exception records a stack trace (glibc backtrace(), which loads libgcc_s once).
    KJ_IF_MAYBE (e, kj::runCatchingExceptions([]() { KJ_FAIL_REQUIRE("probe exception"); })) {
      return "ok caught";
    }
    return "not thrown";
  }
  if (name == "write") {
    int fd = open(arg(probe, 0).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return errnoResult(errno);
    ssize_t n = write(fd, "probe\n", 6);
    int err = errno;
    close(fd);
    return n == 6 ? "ok" : errnoResult(err, "(write)");
  }
  if (name == "openat2-write") {
    // openat2 keeps its flags in memory: seccomp cannot tell a write open from a read.
    open_how how{};
    how.flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    how.mode = 0644;
    long fd = syscall(SYS_openat2, AT_FDCWD, arg(probe, 0).c_str(), &how, sizeof(how));
    if (fd < 0) return errnoResult(errno);
    close(static_cast<int>(fd));
    return "ok";
  }
  if (name == "socket-tcp") return syscallResult(socket(AF_INET, SOCK_STREAM, 0));
  if (name == "socket-udp") return syscallResult(socket(AF_INET, SOCK_DGRAM, 0));
  if (name == "connect") {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errnoResult(errno, "(socket)");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(arg(probe, 1))));
    if (inet_pton(AF_INET, arg(probe, 0).c_str(), &addr.sin_addr) != 1) return "bad address";
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    return rc < 0 ? errnoResult(errno, "(connect)") : "ok";
  }
  if (name == "socket-family") {
    // socket(FAMILY, SOCK_STREAM, or SOCK_RAW for AF_PACKET and AF_NETLINK, 0), FAMILY a number.
    int family = std::stoi(arg(probe, 0));
    int type = family == AF_PACKET || family == AF_NETLINK ? SOCK_RAW : SOCK_STREAM;
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return errnoResult(errno);
    close(fd);
    return "ok";
  }
  if (name == "connect-unix") {
    // Connects to a unix stream socket, sends "ping\n" and reports the first reply.
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errnoResult(errno, "(socket)");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string& path = arg(probe, 0);
    if (path.size() >= sizeof(addr.sun_path)) return "path too long";
    memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
      int err = errno;
      close(fd);
      return errnoResult(err, "(connect)");
    }
    char reply[64];
    ssize_t n = write(fd, "ping\n", 5) == 5 ? read(fd, reply, sizeof(reply)) : -1;
    int err = errno;
    close(fd);
    if (n < 0) return errnoResult(err, "(io)");
    return "ok reply=" + escaped(reply, n);
  }
  if (name == "socks-connect") {
    // A SOCKS5 CONNECT to host:port (as a domain) through the unix socket at arg 0, as a
    // compromised worker would try it; on success sends "ping" and reports the echo.
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errnoResult(errno, "(socket)");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::string& path = arg(probe, 0);
    const std::string& host = arg(probe, 1);
    int port = std::stoi(arg(probe, 2));
    if (path.size() >= sizeof(addr.sun_path) || host.size() > 255) return "bad arguments";
    memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
      int err = errno;
      close(fd);
      return errnoResult(err, "(connect)");
    }
    std::string request = {5, 1, 0, 5, 1, 0, 3, static_cast<char>(host.size())};
    request += host;
    request += static_cast<char>(port >> 8);
    request += static_cast<char>(port & 0xff);
    char reply[12];
    size_t got = 0;
    if (write(fd, request.data(), request.size()) == static_cast<ssize_t>(request.size())) {
      ssize_t n;
      while (got < sizeof(reply) && (n = read(fd, reply + got, sizeof(reply) - got)) > 0) got += n;
    }
    std::string result;
    if (got < sizeof(reply)) {
      result = "closed after " + std::to_string(got) + " bytes";
    } else {
      result = "ok reply=" + std::to_string(static_cast<unsigned char>(reply[3]));
      char echo[16];
      ssize_t n = reply[3] == 0 && write(fd, "ping", 4) == 4 ? read(fd, echo, sizeof(echo)) : 0;
      if (n > 0) result += " echo=" + escaped(echo, n);
    }
    close(fd);
    return result;
  }
  if (name == "resolve") {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* result = nullptr;
    int rc = getaddrinfo(arg(probe, 0).c_str(), "80", &hints, &result);
    if (rc != 0) return std::string("eai=") + gai_strerror(rc);
    char text[INET6_ADDRSTRLEN] = "?";
    if (result->ai_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(result->ai_addr)->sin_addr, text,
                sizeof(text));
    }
    freeaddrinfo(result);
    return std::string("ok addr=") + text;
  }
  // Forbidden calls, each with harmless arguments: unsandboxed they just fail or do nothing.
  if (name == "ptrace") return syscallResult(syscall(SYS_ptrace, -1L, 0L, 0L, 0L));
  if (name == "mount") {
    return syscallResult(syscall(SYS_mount, "none", "/nonexistent-chitin", "tmpfs", 0L, 0L));
  }
  if (name == "unshare") return syscallResult(syscall(SYS_unshare, 0L));
  if (name == "keyctl") return syscallResult(syscall(SYS_keyctl, -1L, 0L, 0L, 0L, 0L));
  if (name == "bpf") return syscallResult(syscall(SYS_bpf, -1L, 0L, 0L));
  if (name == "tiocsti") {
    char c = 'x';
    return syscallResult(ioctl(STDIN_FILENO, TIOCSTI, &c));
  }
  if (name == "clone-newuser") {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0L, 0L, 0L, 0L);
    if (pid == 0) _exit(0);
    if (pid < 0) return errnoResult(errno);
    waitpid(static_cast<pid_t>(pid), nullptr, 0);
    return "ok";
  }
  if (name == "fork") {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0) return errnoResult(errno);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "ok" : "child failed";
  }
  if (name == "bash") {
    // What the exec worker does: a child running bash, under the exec lockdown it inherits.
    pid_t pid = fork();
    if (pid == 0) {
      const char* argv[] = {"/usr/bin/bash", "-c", arg(probe, 0).c_str(), nullptr};
      const char* envp[] = {nullptr};
      execve(argv[0], const_cast<char**>(argv), const_cast<char**>(envp));
      _exit(127);
    }
    if (pid < 0) return errnoResult(errno);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) return "bash killed by signal " + std::to_string(WTERMSIG(status));
    return "ok status=" + std::to_string(WEXITSTATUS(status));
  }
  if (name == "stderr") {
    // What a worker might write to stderr: a plain line and one with a terminal escape
    // (OSC 52, a clipboard write).
    const char text[] = "plain line\nosc \x1b]52;c;ZXZpbA==\x07 end\n";
    if (write(STDERR_FILENO, text, sizeof(text) - 1) < 0) return errnoResult(errno);
    return "ok";
  }
  if (name == "census") {
    // What a sandbox shows of processes and where its writable places are, then stays (so that a
    // sandbox started after it has a sibling to look for): the pids /proc has among 1-64, and
    // the device of each path given.
    std::string pids;
    for (int pid = 1; pid <= 64; pid++) {
      struct stat st;
      if (stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0) {
        pids += (pids.empty() ? "" : ",") + std::to_string(pid);
      }
    }
    std::string line = "result: ok pids=" + pids;
    for (const auto& path : probe.args) {
      struct stat st;
      line += " " + path + "=" +
              (stat(path.c_str(), &st) < 0 ? errnoResult(errno) : std::to_string(st.st_dev));
    }
    writeLine(line);
    holdForever();
  }
  if (name == "malloc") {
    // How this process's malloc keeps a freed chunk (zygote.h, ZYGOTE_MALLOC_TUNABLES): counted in
    // use still (glibc's per-thread cache), in a fast bin, or free and coalesced.
    void* chunk = malloc(100);
    asm volatile("" : : "g"(chunk) : "memory");
    struct mallinfo2 before = mallinfo2();
    free(chunk);
    struct mallinfo2 after = mallinfo2();
    return std::string("ok cached=") + (after.uordblks == before.uordblks ? "1" : "0") +
           " fast=" + (after.fsmblks > before.fsmblks ? "1" : "0");
  }
  if (name == "seal") {
    // zygote::sealHeap() on a heap with holes made on purpose: the free total below the top
    // chunk before and after.
    std::vector<void*> chunks;
    for (int i = 0; i < 256; i++) chunks.push_back(malloc(100 + 16 * (i % 8)));
    for (size_t i = 0; i < chunks.size(); i += 2) free(chunks[i]);
    auto freeBelowTop = []() {
      struct mallinfo2 mi = mallinfo2();
      return mi.fordblks - mi.keepcost;
    };
    size_t before = freeBelowTop();
    chitin::zygote::sealHeap();
    size_t after = freeBelowTop();
    for (size_t i = 1; i < chunks.size(); i += 2) free(chunks[i]);  // holes again, for the check
    return "ok before=" + std::to_string(before) + " after=" + std::to_string(after) +
           " again=" + std::to_string(freeBelowTop());
  }
  if (name == "stat") {
    // Which file system a path is on (a fresh tmpfs per sandbox, or one shared).
    struct stat st;
    if (stat(arg(probe, 0).c_str(), &st) < 0) return errnoResult(errno);
    return "ok dev=" + std::to_string(st.st_dev);
  }
  if (name == "fstat") {
    // Which file an inherited descriptor is: device and inode, comparable with the test's own.
    struct stat st;
    if (fstat(std::stoi(arg(probe, 0)), &st) < 0) return errnoResult(errno);
    return "ok dev=" + std::to_string(st.st_dev) + " ino=" + std::to_string(st.st_ino);
  }
  if (name == "bash-out") {
    // What a command the exec worker runs would see: bash (exec'd, so dumpable again) with its
    // stdout and stderr captured; the result carries all of it, escaped.
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return errnoResult(errno, "(pipe)");
    pid_t pid = fork();
    if (pid == 0) {
      dup2(fds[1], STDOUT_FILENO);
      dup2(fds[1], STDERR_FILENO);
      const char* argv[] = {"/usr/bin/bash", "-c", arg(probe, 0).c_str(), nullptr};
      const char* envp[] = {"PATH=/usr/bin:/bin", nullptr};
      execve(argv[0], const_cast<char**>(argv), const_cast<char**>(envp));
      _exit(127);
    }
    close(fds[1]);
    if (pid < 0) return errnoResult(errno, "(fork)");
    std::string output;
    char buffer[4096];
    ssize_t n;
    while ((n = read(fds[0], buffer, sizeof(buffer))) > 0) output.append(buffer, n);
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    std::string out;
    for (char c : output) out += c == '\n' ? std::string("|") : escaped(&c, 1);
    return "ok status=" + std::to_string(WEXITSTATUS(status)) + " out=" + out;
  }
  if (name == "fill") {
    // Writes up to N MiB into DIR (16 MiB per file, under every profile's RLIMIT_FSIZE) and
    // says where it stopped.
    const std::string& dir = arg(probe, 0);
    int limitMib = std::stoi(arg(probe, 1));
    static char chunk[1 << 20];
    memset(chunk, 'f', sizeof(chunk));
    int mib = 0;
    for (int file = 0; mib < limitMib; file++) {
      std::string path = dir + "/fill-" + std::to_string(file);
      int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd < 0) return errnoResult(errno, "mib=" + std::to_string(mib));
      for (int i = 0; i < 16 && mib < limitMib; i++) {
        ssize_t n = write(fd, chunk, sizeof(chunk));
        if (n != static_cast<ssize_t>(sizeof(chunk))) {
          int err = n < 0 ? errno : ENOSPC;
          close(fd);
          return errnoResult(err, "mib=" + std::to_string(mib));
        }
        mib++;
      }
      close(fd);
    }
    return "ok mib=" + std::to_string(mib);
  }
  if (name == "thread") {
    pthread_t thread;
    int rc = pthread_create(
        &thread, nullptr, [](void*) -> void* { return nullptr; }, nullptr);
    if (rc != 0) return errnoResult(rc);
    pthread_join(thread, nullptr);
    return "ok";
  }
  if (name == "fork-bomb") {
    // Children wait forever; the parent reports when fork fails, then holds the sandbox full.
    int forked = 0;
    for (;;) {
      pid_t pid = fork();
      if (pid == 0) holdForever();
      if (pid < 0) {
        writeLine("result: " + errnoResult(errno, "forked=" + std::to_string(forked)));
        holdForever();
      }
      forked++;
    }
  }
  if (name == "balloon") {
    // Address space only (untouched pages): RLIMIT_AS stops it, not the host's memory.
    constexpr size_t CHUNK = 64u << 20;
    size_t total = 0;
    for (int i = 0; i < 1024; i++) {
      void* p = mmap(nullptr, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) return errnoResult(errno, "mib=" + std::to_string(total >> 20));
      total += CHUNK;
    }
    return "ok mib=" + std::to_string(total >> 20);
  }
  if (name == "spin") {
    writeLine("result: ok spinning");
    volatile unsigned long counter = 0;
    for (;;) counter = counter + 1;
  }
  if (name == "sleep") {
    writeLine("result: ok sleeping");
    holdForever();
  }
  return "unknown probe " + name;
}

}  // namespace

int main(int argc, char** argv) {
  std::string kind;
  Probe probe;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (a.rfind("--probe-kind=", 0) == 0) kind = a.substr(13);
    if (a.rfind("--probe=", 0) == 0) probe.name = a.substr(8);
    if (a.rfind("--probe-arg=", 0) == 0) probe.args.push_back(a.substr(12));
  }
  if (kind.empty() || probe.name.empty()) {
    writeLine("result: usage: --probe-kind=K --probe=NAME [--probe-arg=X]...");
    return 2;
  }
  if (kind == "none") {
    writeLine("result: " + run(probe));
    return 0;
  }
  int status = chitin::runWorker(argc, argv, kind.c_str(), [&](chitin::WorkerContext&) {
    // Runs once the event loop turns, i.e. after runWorker's lockdown.
    kj::evalLater([&probe]() {
      writeLine("result: " + run(probe));
      _exit(0);
    }).detach([](kj::Exception&& e) {
      writeLine("result: exception " + std::string(e.getDescription().cStr()));
      _exit(70);
    });
    return capnp::Capability::Client(KJ_EXCEPTION(UNIMPLEMENTED, "a probe serves nothing"));
  });
  // Only reached when start-up failed before the probe ran.
  writeLine("result: worker start-up failed with status " + std::to_string(status));
  _exit(status);
}
