// SPDX-License-Identifier: Apache-2.0
// Test support for the broker: its loop on a thread of its own, a scripted resolver, local TCP
// servers on 127.0.0.1, and SOCKS5 clients (a raw one, libcurl, Python) for the worker's side.
// Runs in: tests

#pragma once

#include <uv.h>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "audit.pb.h"
#include "resolver.h"

namespace chitin::egress::testing {

// A uv loop running on its own thread; run() executes a function there and waits for it.
class LoopThread {
 public:
  LoopThread();
  ~LoopThread();  // stops once every handle has closed
  void run(std::function<void()> fn);
  uv_loop_t* loop() { return &loop_; }

 private:
  uv_loop_t loop_;
  uv_async_t wake_;
  std::mutex mutex_;
  std::deque<std::function<void()>> tasks_;
  std::thread thread_;
};

// Answers from a script: each lookup of a name takes the next answer (the last one repeats).
// An answer is a list of numeric addresses, "error:<text>", or "never" (no answer at all).
class ScriptedResolver final : public Resolver {
 public:
  explicit ScriptedResolver(uv_loop_t* loop) : loop_(loop) {}
  void script(const std::string& host, std::vector<std::vector<std::string>> answers);
  void resolve(const std::string& host, uint16_t port, Done done) override;
  int lookups(const std::string& host);

 private:
  uv_loop_t* loop_;
  std::mutex mutex_;
  std::map<std::string, std::deque<std::vector<std::string>>> answers_;
  std::map<std::string, int> lookups_;
};

// A TCP server on 127.0.0.1 (ephemeral port), served by a thread.
class TestServer {
 public:
  enum class Mode {
    ECHO_BACK,   // echoes; closes after the client's EOF
    HTTP_HELLO,  // answers one request with "200 hello" and closes
    HOLD,        // accepts and never reads nor writes
    FULL_QUEUE   // listens with a backlog of 0 and never accepts (connects beyond it hang)
  };
  explicit TestServer(Mode mode);
  ~TestServer();
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  void serve();
  Mode mode_;
  int fd_ = -1;
  int stop_[2] = {-1, -1};
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// A raw SOCKS5 client: connect to the unix socket, greeting + CONNECT to host:port (as a
// domain). `reply` is the reply code, or -1 when the broker closed without one.
struct SocksResult {
  int reply = -1;
  int fd = -1;  // the connected socket (the caller closes it)
};
int connectUnix(const std::string& path);
SocksResult socksConnect(const std::string& path, const std::string& host, uint16_t port);
// Reads until EOF or `timeoutMs`; "<timeout>" appended when the timeout struck.
std::string readAll(int fd, int timeoutMs);

struct Fetched {
  int curlCode = -1;
  long status = 0;
  std::string body;
  std::string error;
};
// libcurl exactly as a worker configures it: CURLOPT_PROXY "socks5h://localhost<socketPath>".
Fetched curlGet(const std::string& socketPath, const std::string& url, long timeoutMs = 5000);

// The EGRESS records in the audit log at `dir`.
std::vector<audit::Record> egressRecords(const std::string& dir);

// A private temporary directory, removed with its contents.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "/tmp/chitin-egress-test");
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace chitin::egress::testing
