// SPDX-License-Identifier: Apache-2.0
// Discord's gateway (v10, JSON): the receive side of the Discord channel.
// Runs in: worker (sandboxed)
//
// One connection at a time, in this order:
//   1. the URL: `gatewayUrl` if configured, else GET /gateway/bot (cached), or READY's
//      resume_gateway_url when a session can be resumed;
//   2. HELLO gives the heartbeat interval; a heartbeat thread beats after interval x random
//      jitter, then every interval, and declares the connection a zombie when a beat finds the
//      previous one unacknowledged (op 11): it interrupts the socket, and we resume;
//   3. RESUME {session_id, seq} when we have a session (also one persisted in /state by an
//      earlier run of this worker, so a restart loses nothing Discord still holds), else
//      IDENTIFY with the configured intents;
//   4. dispatches: READY (session, resume URL, our user), RESUMED, MESSAGE_CREATE (delivered
//      before its sequence number counts as processed and is persisted);
//   5. op 7 RECONNECT: close with a code that keeps the session, resume; op 9 INVALID SESSION:
//      wait 1-5 s, then resume (d: true) or identify afresh (d: false);
//   6. a close code: 4004 and 4010-4014 are fatal (FAILED, with what the owner must fix);
//      4007/4009 start a new session; any other resumes.
// Transient failures reconnect with jittered backoff; run() returns only when stopping or
// FAILED.

#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "discord-message.h"
#include "discord-rest.h"
#include "platform.h"
#include "ws-client.h"

namespace chitin::channel::discord {

inline constexpr uint32_t INTENT_GUILDS = 1u << 0;
inline constexpr uint32_t INTENT_GUILD_MESSAGES = 1u << 9;
inline constexpr uint32_t INTENT_DIRECT_MESSAGES = 1u << 12;
inline constexpr uint32_t INTENT_MESSAGE_CONTENT = 1u << 15;

struct GatewayConfig {
  std::string token;
  std::string apiRoot;
  std::string gatewayUrl;  // "" = ask GET /gateway/bot
  std::string egressSocket;
  std::string sessionFile;  // "" = no persistence
  uint32_t intents = 0;
  uint64_t maxAttachmentBytes = 0;
  bool allowPlainWs = false;  // ws:// gateways: only when apiRoot itself is http:// (tests)
};

class Gateway {
 public:
  Gateway(GatewayConfig config, Host& host);
  ~Gateway();

  void run();
  void interrupt();  // from any thread

 private:
  enum class Next { RESUME, IDENTIFY, FAILED };
  Next connectOnce(bool& reachedConnected);
  Next onDispatch(const Json& payload, bool& reachedConnected);
  Next onClose(uint16_t code, const std::string& reason);
  void deliverMessage(const Json& d);
  std::string gatewayUrl();
  bool resumable() const;
  bool stopped();  // interrupt() was called or the host is stopping
  void loadSession();
  void saveSession();
  void clearSession();

  GatewayConfig config_;
  Host& host_;
  Rest rest_;  // this thread's: /users/@me, /gateway/bot, attachment downloads
  Self self_;
  std::string cachedGatewayUrl_;
  std::string sessionId_;
  std::string resumeUrl_;
  std::atomic<int64_t> seq_{-1};

  std::mutex mutex_;  // guards ws_ against interrupt() from another thread
  WebSocket* ws_ = nullptr;
  bool stopping_ = false;
};

}  // namespace chitin::channel::discord
