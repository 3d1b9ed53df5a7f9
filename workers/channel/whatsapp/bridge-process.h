// SPDX-License-Identifier: Apache-2.0
// The WhatsApp bridge as a child process: started with pipes on stdin and stdout, lines
// written and read, killed and reaped.
// Runs in: worker (sandboxed)
//
// stdin is one end of a unix socketpair (so a dead bridge means EPIPE, never SIGPIPE), stdout
// a pipe. The child runs in the worker's own sandbox (same mounts, same seccomp filters, same
// rlimits): starting it needs the profile's PROCESS_SPAWN group and nothing else. It gets an
// empty environment, no inherited descriptor but its three standard ones (stderr is the
// worker's, which the supervisor logs), and dies with the worker (PR_SET_PDEATHSIG).

#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace chitin::channel {

class BridgeProcess {
 public:
  // Starts argv[0] (an absolute path) with argv. Throws ChannelError when it cannot.
  explicit BridgeProcess(const std::vector<std::string>& argv);
  ~BridgeProcess();  // SIGKILL and reap, if still running
  BridgeProcess(const BridgeProcess&) = delete;
  BridgeProcess& operator=(const BridgeProcess&) = delete;

  // One line to the child's stdin (a '\n' is added). Thread-safe. Throws ChannelError when the
  // child no longer reads.
  void writeLine(const std::string& line);

  // The next line from the child's stdout, without its '\n'; nullopt at end of file. Throws
  // ChannelError for a line longer than `maxLine`, StreamInterrupted after interrupt().
  std::optional<std::string> readLine(size_t maxLine);

  // From any thread: wakes readLine() (which throws StreamInterrupted), now and later.
  void interrupt();

  // Kills the child (SIGKILL) if running, reaps it, and describes how it ended:
  // "exited with status 3", "killed by signal 31".
  std::string finish();

  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int toChild_ = -1;    // our end of its stdin (a socket)
  int fromChild_ = -1;  // its stdout
  int wakeRead_ = -1, wakeWrite_ = -1;
  std::mutex writeMutex_;
  std::string buffer_;
  bool reaped_ = false;
  std::string ending_;
};

}  // namespace chitin::channel
