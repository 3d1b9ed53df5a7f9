// SPDX-License-Identifier: Apache-2.0
// The IRC channel: one client connection (RFC 1459/2812 with IRCv3 CAP, SASL PLAIN,
// message-tags, server-time and account-tag) as a chitin Platform.
// Runs in: worker (sandboxed)
//
// The receive thread owns the connection: registration (CAP LS 302 -> REQ -> SASL -> CAP END,
// NICK/USER with a fallback nick), JOIN of the configured channels, PING/PONG both ways (our own
// PING finds a dead server), and PRIVMSG to Inbound. The outbound thread only writes PRIVMSG
// lines, paced by a token bucket, on the connection the receive thread set up.
//
// Identity: a sender is "account:<name>" when the server vouches for it (account-tag, i.e. the
// sender logged in to services) and "nick:<nick>" otherwise. A nick is only a name someone is
// using right now: on a network without enforced nick registration anyone can take it while its
// owner is away, so approve "nick:" senders only where that is acceptable (README "Channels").
//
// Message ids: the IRCv3 msgid tag when the server sends one; else, with server-time, a hash
// of (time, sender, target, text) so a bouncer's replay of the same line keeps its id; else a
// receipt-time id. IRC never replays history, so a reconnect cannot double a message -- and a
// message sent while we were disconnected is lost: IRC has no offline delivery.

#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../platform.h"
#include "../stream.h"
#include "irc-message.h"

namespace chitin::channel::irc {

struct IrcConfig {
  std::string server;
  uint16_t port = 6697;
  bool tls = true;
  std::string caFile;  // "" = the system store
  std::string nick;
  std::string username;
  std::string realname = "chitin";
  std::vector<std::string> channels;
  bool sasl = true;  // a credential is a SASL PLAIN password; false: it is the server PASS
  std::string saslUser;
  size_t floodBurst = 4;
  std::chrono::milliseconds floodInterval{2000};
  size_t maxLines = 20;  // per reply; the rest is replaced by one "[N more lines not sent]"
  std::chrono::milliseconds pingInterval{120000};  // silence before we PING the server
  std::chrono::milliseconds pingTimeout{60000};    // then, without an answer, reconnect
  std::chrono::milliseconds registrationTimeout{60000};
};

// Reads the options (README "Channels" lists them) and calls settings.finish().
IrcConfig ircConfigFromSettings(Settings& settings);

// The PlatformFactory of chitin-worker-channel-irc.
std::unique_ptr<Platform> makeIrcPlatform(Settings& settings, Host& host);

class IrcPlatform : public Platform {
 public:
  IrcPlatform(IrcConfig config, std::string credential, std::string egressSocket, Host& host);
  ~IrcPlatform() override;

  Capabilities capabilities() const override;
  void run(Host& host) override;
  void interrupt() override;
  std::vector<std::string> send(const Outbound& message) override;
  void typing(const std::string& chatId, bool on) override;
  void react(const std::string& chatId, const std::string& messageId,
             const std::string& emoji) override;

 private:
  struct Session;  // one connection's registration state
  struct Fatal {   // an error reconnecting cannot fix (bad password, invalid nick)
    std::string detail;
  };

  void serve(Host& host, Backoff& backoff);
  void handle(Session& s, const Message& m, Host& host, Backoff& backoff);
  void handleCap(Session& s, const Message& m);
  void handlePrivmsg(Session& s, const Message& m, Host& host);
  void finishCaps(Session& s);
  void registered(Session& s, const Message& welcome, Host& host, Backoff& backoff);
  void writeLine(Stream& stream, const std::string& line);
  bool tryTakeToken();
  std::string nextMessageId(const Message& m, const std::string& text);

  IrcConfig config_;
  std::string credential_;
  std::string egressSocket_;
  Host& host_;
  std::atomic<bool> interrupted_{false};

  // Shared with the outbound thread.
  std::mutex mutex_;
  std::shared_ptr<Stream> stream_;  // set while registered
  std::string nick_;
  size_t prefixBytes_ = 0;

  std::mutex writeMutex_;  // one line at a time on the wire
  std::mutex bucketMutex_;
  TokenBucket bucket_;
  uint64_t counter_ = 0;  // receive thread: local message ids
  std::atomic<uint64_t> sentCounter_{0};
};

}  // namespace chitin::channel::irc
