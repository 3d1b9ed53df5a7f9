// SPDX-License-Identifier: Apache-2.0
// A blocking byte stream to host:port through the egress broker (SOCKS5 over the worker's
// unix socket), optionally in TLS: what IRC, IMAP and the WebSocket clients read and write.
// Runs in: worker (sandboxed)
//
// TLS is end to end in the worker (the broker sees host and port only), verified against the
// system CA store with the host name checked, unless the settings give a CA file (tests).
// With no egress socket configured (unit tests outside a sandbox) it connects directly.

#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace chitin::channel {

struct StreamOptions {
  std::string egressSocket;  // "" = direct TCP
  bool tls = false;
  std::string caFile;  // "" = the system store
  std::chrono::milliseconds connectTimeout{15000};
};

class Stream {
 public:
  // Connects (and, with tls, completes the handshake). Throws ChannelError naming host:port and
  // what failed: the broker's refusal ("not allowed", "unreachable"), the connect, the TLS
  // verification.
  static std::unique_ptr<Stream> open(const std::string& host, uint16_t port,
                                      const StreamOptions& options);
  ~Stream();

  // Upgrades a plain connection to TLS (IMAP/SMTP STARTTLS). Throws ChannelError on failure.
  void startTls(const std::string& caFile = "");

  // Up to `max` bytes; 0 = the peer closed. Waits at most `timeout` (then throws
  // StreamTimeout) and returns early with StreamInterrupted after interrupt().
  size_t read(char* buffer, size_t max, std::chrono::milliseconds timeout);
  // A line without its "\r\n" or "\n"; throws ChannelError when longer than `maxLine` bytes or
  // the stream closes mid-line.
  std::string readLine(std::chrono::milliseconds timeout, size_t maxLine = 65536);
  // Waits at most 30 s for the peer to take the bytes. read() on one thread and writeAll() on
  // another may run at once (IRC replies while its reader waits); two of either may not.
  void writeAll(std::string_view bytes);

  // From any thread: wakes a blocked read() (which throws StreamInterrupted) and makes every
  // later call throw. Used by Platform::interrupt().
  void interrupt();

  bool tls() const;
  const std::string& peer() const;  // "host:port", for messages

 private:
  struct Impl;
  explicit Stream(std::unique_ptr<Impl> impl);
  size_t readSocket(char* buffer, size_t max, std::chrono::milliseconds timeout);
  std::unique_ptr<Impl> impl_;
};

struct StreamTimeout {};
struct StreamInterrupted {};

// Once, before threads and before the worker's seccomp lockdown: OpenSSL reads its
// configuration and loads its error strings here, not at the first connection.
void initNetworkGlobal();

}  // namespace chitin::channel
