// SPDX-License-Identifier: Apache-2.0
// The Telegram platform's parts: the receive loop (telegram.c++) and the outbound calls
// (telegram-send.c++) around two BotApi clients, one per thread.
// Runs in: worker (sandboxed)

#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bot-api.h"
#include "platform.h"
#include "updates.h"

namespace chitin::channel::telegram {

// Telegram's limit for one message, counted after entity parsing in UTF-16 code units.
inline constexpr size_t MAX_MESSAGE_UTF16 = 4096;
// How long an outbound call may wait out 429s before it gives up.
inline constexpr std::chrono::seconds MAX_RATE_LIMIT_WAIT{60};

struct TelegramOptions {
  std::string apiRoot;
  std::string token;
  std::string egressSocket;
  std::string stateDir;
  uint64_t maxAttachmentBytes = 0;
  int pollTimeoutSeconds = 50;
};

class TelegramPlatform final : public Platform {
 public:
  TelegramPlatform(TelegramOptions options, Host& host);

  Capabilities capabilities() const override;
  void run(Host& host) override;
  void interrupt() override;
  std::vector<std::string> send(const Outbound& message) override;
  void typing(const std::string& chatId, bool on) override;
  void react(const std::string& chatId, const std::string& messageId,
             const std::string& emoji) override;

 private:
  using Deadline = std::chrono::steady_clock::time_point;

  // Receive thread.
  bool identify(Backoff& backoff);  // false: a fatal error was reported
  bool poll(Backoff& backoff);      // false: a fatal error was reported
  bool handleFailure(const ApiReply& reply, const std::string& method, Backoff& backoff);
  void handleUpdate(const nlohmann::json& update);
  void fetchFiles(ParsedMessage& parsed);
  void setState(State state, const std::string& detail);

  // Both threads: groups that became supergroups.
  void recordMigration(int64_t from, int64_t to);
  int64_t resolveChat(const std::string& chatId);
  void loadMigrations();

  // Outbound thread.
  ApiReply callWaiting(const std::string& method, nlohmann::json& params, Deadline deadline);
  std::string sendAttachment(int64_t& chat, const Attachment& attachment, const Outbound& message,
                             bool reply, Deadline deadline);

  TelegramOptions options_;
  Host& host_;
  BotApi receiveApi_;
  BotApi sendApi_;

  // Receive thread only.
  BotIdentity bot_;
  int64_t offset_ = 0;
  State state_ = State::STARTING;
  std::string detail_;

  std::mutex chatsMutex_;
  std::map<int64_t, int64_t> migrations_;  // guarded by chatsMutex_
};

}  // namespace chitin::channel::telegram
