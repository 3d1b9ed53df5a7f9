// SPDX-License-Identifier: Apache-2.0
// Slack Socket Mode: the receive side of the Slack channel.
// Runs in: worker (sandboxed)
//
// One connection at a time, in this order:
//   1. auth.test (bot token) once: who we are, so our own messages and mentions are known;
//   2. apps.connections.open (app token) gives a single-use wss:// URL: every connection,
//      including each reconnect, asks for a fresh one;
//   3. `hello`, then envelopes: each event is written to the journal in /state
//      (event-journal.h), acknowledged with {"envelope_id"} at once, before it is processed
//      (Slack redelivers what is not acknowledged within ~3 s), and queued for a second thread
//      that fetches names and files, delivers, and then removes it from the journal, so a slow
//      delivery or a large download never delays the next acknowledgement and a crash loses
//      nothing; a redelivered envelope (retry_attempt > 0, same event_id) and the second of a
//      message/app_mention pair (same channel and ts) are dropped;
//   4. `disconnect` (refresh_requested, warning): reconnect with a fresh URL; link_disabled
//      (Socket Mode turned off for the app) is FAILED;
//   5. a silent connection (nothing received, not even Slack's pings, for 30 s after our own
//      ping) is dropped and replaced.
// Auth errors (a revoked token, a missing scope) are FAILED; anything else reconnects with
// jittered backoff.

#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "event-journal.h"
#include "platform.h"
#include "slack-api.h"
#include "slack-event.h"
#include "ws-client.h"

namespace chitin::channel::slack {

struct SocketConfig {
  std::string apiRoot;
  Tokens tokens;
  std::string egressSocket;
  uint64_t maxAttachmentBytes = 0;
  bool allowPlainWs = false;  // ws:// URLs only when apiRoot is http:// (tests)
  // Slack pings every few seconds on a live link: this long without a byte, we ping; this
  // long, the connection is given up for a fresh one.
  std::chrono::milliseconds quietBeforePing{15000};
  std::chrono::milliseconds quietBeforeGivingUp{30000};
  std::string journalDir;  // "" = no journal (events acknowledged but undelivered die with us)
};

class Socket {
 public:
  Socket(SocketConfig config, Host& host);
  void run();
  void interrupt();  // from any thread

 private:
  // true: reconnect at once (Slack asked, or the connection worked); false: back off first.
  struct Pending {
    Json event;
    std::string file;  // its journal file, "" when none
  };
  bool connectOnce();
  std::optional<Pending> accept(const Json& envelope);  // dedupe and journal, before the ack
  void enqueue(Pending pending);
  void process();  // the delivering thread
  void deliverEvent(const Json& event);
  std::string nameOf(const std::string& userId);
  bool stopped();  // interrupt() was called or the host is stopping

  SocketConfig config_;
  Host& host_;
  Api api_;       // the reading thread's: auth.test, apps.connections.open
  Api fetchApi_;  // the delivering thread's: users.info, file downloads
  Self self_;     // written before the delivering thread starts
  RecentSet events_, messages_;
  std::map<std::string, std::string> names_;
  bool namesUnavailable_ = false;
  std::mutex mutex_;  // guards ws_, stopping_ and the queue
  std::condition_variable queueChanged_;
  std::deque<Pending> queue_;  // events acknowledged, not yet delivered
  EventJournal journal_;
  bool readerDone_ = false;
  WebSocket* ws_ = nullptr;
  bool stopping_ = false;
  bool failed_ = false;
};

}  // namespace chitin::channel::slack
