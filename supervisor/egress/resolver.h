// SPDX-License-Identifier: Apache-2.0
// Name resolution for the egress broker, as an interface so tests can answer for it (a name
// that resolves differently on each lookup, to a private address, to nothing).
// Runs in: supervisor

#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace chitin::egress {

struct Resolved {
  std::vector<sockaddr_storage> addresses;  // port filled in; empty when the lookup failed
  std::string error;                        // why it failed ("unknown host", ...), else ""
};

class Resolver {
 public:
  using Done = std::function<void(Resolved)>;
  virtual ~Resolver() = default;
  // Looks up `host` (normalized) for a TCP connection to `port`. Calls `done` exactly once,
  // later, on the loop's thread (never from inside this call).
  virtual void resolve(const std::string& host, uint16_t port, Done done) = 0;
};

// Calls `done(resolved)` from `loop` on its next turn (never from inside the caller).
void answerLater(uv_loop_t* loop, Resolver::Done done, Resolved resolved);

// uv_getaddrinfo (glibc's resolver on libuv's thread pool): /etc/hosts, then DNS.
class SystemResolver final : public Resolver {
 public:
  explicit SystemResolver(uv_loop_t* loop) : loop_(loop) {}
  void resolve(const std::string& host, uint16_t port, Done done) override;

 private:
  uv_loop_t* loop_;
};

}  // namespace chitin::egress
