// SPDX-License-Identifier: Apache-2.0
// Test support for the tool workers: a temporary workspace, and a real worker binary started
// unsandboxed and driven over Cap'n Proto as the supervisor would.
// Runs in: test
//
// The worker gets what the spawner would give it -- its socket on fd 3 and the limits flag --
// plus --workspace-root=DIR, the test-only flag that replaces the sandbox's /workspace mount.

#pragma once

#include <capnp/rpc-twoparty.h>
#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <ftw.h>
#include <kj/async-io.h>
#include <kj/debug.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "common.capnp.h"
#include "tool.capnp.h"

extern char** environ;

namespace chitin::test {

// The limits the spawner passes to every tool worker.
constexpr const char TEST_LIMITS[] =
    "--chitin-limits=as=1073741824,nproc=256,nofile=256,cpu=60,fsize=104857600";

class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/chitin-tools-test-XXXXXX";
    KJ_ASSERT(mkdtemp(pattern) != nullptr, errno);
    path_ = pattern;
  }
  ~TempDir() {
    nftw(
        path_.c_str(),
        [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
        FTW_DEPTH | FTW_PHYS);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

inline void writeHostFile(const std::string& path, const std::string& content, mode_t mode = 0644) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  KJ_ASSERT(fd >= 0, path, errno);
  KJ_ASSERT(write(fd, content.data(), content.size()) == ssize_t(content.size()));
  close(fd);
  chmod(path.c_str(), mode);
}

inline std::string readHostFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<missing>";
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof(buf))) > 0) out.append(buf, size_t(n));
  close(fd);
  return out;
}

inline std::vector<std::string> listDir(const std::string& path) {
  std::vector<std::string> names;
  if (auto* dir = opendir(path.c_str())) {
    while (auto* entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    closedir(dir);
  }
  return names;
}

// Cap'n Proto 0.9.2's generated Server bases have no virtual destructor; kj::heap's disposer
// destroys the concrete type, so -Wnon-virtual-dtor's concern does not arise.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"

// Collects what the worker streams to its `output` sink.
class CollectingSink final : public rpc::ByteSink::Server {
 public:
  std::string* received;
  bool* ended;
  CollectingSink(std::string& received, bool& ended) : received(&received), ended(&ended) {}
  kj::Promise<void> write(WriteContext context) override {
    auto chunk = context.getParams().getChunk();
    received->append(reinterpret_cast<const char*>(chunk.begin()), chunk.size());
    return kj::READY_NOW;
  }
  kj::Promise<void> end(EndContext context) override {
    *ended = true;
    return kj::READY_NOW;
  }
};

#pragma GCC diagnostic pop

// A real worker process and a Cap'n Proto connection to it.
class TestWorker {
 public:
  TestWorker(kj::AsyncIoContext& io, const char* binaryEnvVar, const std::string& workspaceRoot,
             std::vector<std::string> extraArgs = {}) {
    const char* binary = getenv(binaryEnvVar);
    KJ_REQUIRE(binary != nullptr, "set by meson test", binaryEnvVar);
    int fds[2];
    KJ_SYSCALL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds));
    std::vector<std::string> args = {binary, TEST_LIMITS, "--workspace-root=" + workspaceRoot};
    for (auto& arg : extraArgs) args.push_back(arg);
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 3);  // dup2 clears FD_CLOEXEC
    int rc = posix_spawn(&pid, binary, &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    KJ_REQUIRE(rc == 0, "posix_spawn", binary, rc);

    stream =
        io.lowLevelProvider->wrapUnixSocketFd(fds[0], kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
    client = kj::heap<capnp::TwoPartyClient>(*stream, 4);
    worker = client->bootstrap().castAs<rpc::ToolWorker>();
  }

  ~TestWorker() {
    if (pid > 0) {
      disconnect();
      if (!waitForExit(10 * 1000).has_value()) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  }

  void disconnect() {
    worker = nullptr;
    client = nullptr;
    stream = nullptr;
  }

  // The wait status once the worker has exited, or nothing after `timeoutMs`.
  std::optional<int> waitForExit(int timeoutMs) {
    for (int waited = 0; waited <= timeoutMs; waited += 10) {
      int status;
      pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        pid = -1;
        return status;
      }
      usleep(10 * 1000);
    }
    return std::nullopt;
  }

  pid_t pid = -1;
  kj::Own<kj::AsyncCapabilityStream> stream;
  kj::Own<capnp::TwoPartyClient> client;
  rpc::ToolWorker::Client worker = nullptr;
};

// The supervisor's view of one call's result, copied out of the response.
struct CallResult {
  bool failed = false;
  std::string text;
  int32_t exitCode = -1;
  bool truncated = false;
  bool timedOut = false;
};

inline CallResult toCallResult(rpc::ToolResult::Reader result) {
  CallResult out;
  out.failed = result.isFailed();
  auto text = out.failed ? result.getFailed() : result.getOk();
  out.text.assign(text.begin(), text.size());
  out.exitCode = result.getExitCode();
  out.truncated = result.getTruncated();
  out.timedOut = result.getTimedOut();
  return out;
}

}  // namespace chitin::test
