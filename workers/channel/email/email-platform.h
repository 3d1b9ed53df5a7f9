// SPDX-License-Identifier: Apache-2.0
// The email channel: one mailbox read over IMAP (IDLE, or NOOP polling where the server has no
// IDLE) and answered over SMTP submission, as a chitin Platform.
// Runs in: worker (sandboxed)
//
// Nothing lost, nothing doubled: the mailbox's UIDVALIDITY and the last UID handed over are kept
// in the state directory and written only after Host::deliver() returned, so a crash in between
// redelivers one message, which the supervisor recognises by its Message-ID. A message is marked
// \Seen after delivery (for the human reading the same mailbox). On the first start, and after
// the server changed UIDVALIDITY, mail already in the mailbox is not delivered -- except, after
// a UIDVALIDITY change, the messages still unseen.
//
// Identity: the sender is the From address, which anyone can write. With `trustedAuthServId`
// set, a sender counts as that address only when the receiving server's topmost
// Authentication-Results header vouches for it (DMARC or aligned DKIM pass); otherwise it is
// "unverified:<address>", a different sender that an approval of the address does not cover.
// Mail that says it is automatic (Auto-Submitted) or comes from our own address is skipped, so
// two assistants, or an assistant and a vacation responder, cannot answer each other forever.

#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "../platform.h"
#include "imap.h"
#include "mime-decode.h"
#include "mime.h"
#include "smtp.h"

namespace chitin::channel::email {

struct EmailConfig {
  std::string address;  // ours: From of replies, and the default login name
  std::string fromName = "chitin";
  std::string username;  // IMAP and SMTP login
  std::string imapHost;
  uint16_t imapPort = 993;
  ImapSession::Tls imapTls = ImapSession::Tls::IMPLICIT;
  std::string mailbox = "INBOX";
  SmtpConfig smtp;
  std::string caFile;
  std::chrono::milliseconds idleTime{25 * 60 * 1000};  // IDLE is re-issued within 29 min (RFC 2177)
  std::chrono::milliseconds pollInterval{60000};       // without IDLE
  uint64_t maxMessageBytes = 32u << 20;                // read of one message
  std::string trustedAuthServId;
  std::string subject = "Message from chitin";  // of a message that answers none
};

// Reads the options (README "Channels" lists them) and calls settings.finish().
EmailConfig emailConfigFromSettings(Settings& settings);

// The PlatformFactory of chitin-worker-channel-email.
std::unique_ptr<Platform> makeEmailPlatform(Settings& settings, Host& host);

class EmailPlatform : public Platform {
 public:
  EmailPlatform(EmailConfig config, std::string credential, std::string egressSocket,
                std::string stateDir, uint64_t maxAttachmentBytes);
  ~EmailPlatform() override;

  Capabilities capabilities() const override;
  void run(Host& host) override;
  void interrupt() override;
  std::vector<std::string> send(const Outbound& message) override;
  void typing(const std::string& chatId, bool on) override;
  void react(const std::string& chatId, const std::string& messageId,
             const std::string& emoji) override;

 private:
  struct Progress {
    uint32_t uidValidity = 0;
    uint32_t lastUid = 0;
  };
  struct ThreadInfo {
    std::string subject;
    std::vector<std::string> references;  // the message's References plus its own id
  };

  void serve(Host& host, Backoff& backoff);
  void catchUp(ImapSession& session, Progress& progress, Host& host,
               const std::vector<uint32_t>& uids);
  // false: skipped (no sender, our own, automatic), not delivered.
  bool deliverOne(ImapSession& session, const Progress& progress, uint32_t uid, Host& host);
  Progress loadProgress() const;
  void saveProgress(const Progress& progress) const;
  void rememberThread(const std::string& messageId, ThreadInfo info);
  bool findThread(const std::string& messageId, ThreadInfo* info);
  void loadThreads();

  EmailConfig config_;
  std::string credential_;
  std::string egressSocket_;
  std::string stateDir_;
  MimeLimits limits_;
  Charsets charsets_;
  SmtpClient smtp_;
  std::atomic<bool> interrupted_{false};

  std::mutex sessionMutex_;
  std::shared_ptr<ImapSession> session_;  // for interrupt()

  std::mutex threadsMutex_;  // receive thread writes, outbound thread reads
  std::map<std::string, ThreadInfo> threads_;
  std::deque<std::string> threadOrder_;
};

}  // namespace chitin::channel::email
