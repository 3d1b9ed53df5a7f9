// SPDX-License-Identifier: Apache-2.0
// Mail submission (RFC 6409) with libcurl: implicit TLS, STARTTLS or plain text, AUTH with the
// account's password, through the egress broker like every other connection of the worker.
// Runs in: worker (sandboxed)
//
// libcurl speaks SMTP through a SOCKS5 proxy like any protocol it has; "socks5h" makes the
// broker resolve the name. It also dot-stuffs the message. One message per connection: replies
// are rare enough that a kept-open session would cost more than it saves.

#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace chitin::channel::email {

struct SmtpConfig {
  enum class Tls { IMPLICIT, STARTTLS, NONE };
  std::string host;
  uint16_t port = 587;
  Tls tls = Tls::STARTTLS;
  std::string caFile;
  std::string username;  // "" = no AUTH
  std::string egressSocket;
  std::string heloDomain = "localhost";
};

class SmtpClient {
 public:
  SmtpClient(SmtpConfig config, std::string password);
  ~SmtpClient();

  // Submits `message` (CRLF lines) from `from` to `to`. Throws ChannelError with the server's
  // reply (never the password) when the server refuses it or the connection fails; throws
  // StreamInterrupted after interrupt().
  void send(const std::string& from, const std::string& to, const std::string& message);

  void interrupt();  // from any thread

 private:
  SmtpConfig config_;
  std::string password_;
  std::atomic<bool> interrupted_{false};
};

}  // namespace chitin::channel::email
