// SPDX-License-Identifier: Apache-2.0
// One Telegram Bot API client per thread: method calls (JSON or multipart), their answers read
// strictly, and file downloads.
// Runs in: worker (sandboxed)
//
// The bot token is part of every URL (https://api.telegram.org/bot<token>/<method>), so no URL
// is ever logged or put into an error: errors name the method and what Telegram said.

#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "http-client.h"

namespace chitin::channel::telegram {

// What a method call answered. `ok` false carries Telegram's error_code and description (or
// the HTTP status when the body was not the Bot API's JSON).
struct ApiReply {
  bool ok = false;
  int64_t errorCode = 0;
  std::string description;
  nlohmann::json result;
  std::optional<int64_t> retryAfterSeconds;  // parameters.retry_after (429)
  std::optional<int64_t> migrateToChatId;    // parameters.migrate_to_chat_id (400)

  // "sendMessage: 400 Bad Request: chat not found", for people.
  std::string describe(const std::string& method) const;
};

class BotApi {
 public:
  // `apiRoot` is checked by the caller (https, or http to loopback only).
  BotApi(std::string apiRoot, std::string token, std::string egressSocket);

  // POSTs `params` as JSON. Throws ChannelError on a transport failure (naming the method),
  // StreamInterrupted after interrupt().
  ApiReply call(const std::string& method, const nlohmann::json& params,
                std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // multipart/form-data: for uploads (sendDocument, sendPhoto).
  ApiReply upload(const std::string& method, const std::vector<HttpPart>& parts,
                  std::chrono::milliseconds timeout = std::chrono::seconds(120));

  // The bytes of a file getFile described, refusing more than `maxBytes`. Throws ChannelError
  // when the download fails or the file is larger.
  std::string download(const std::string& filePath, size_t maxBytes);

  void interrupt();

 private:
  ApiReply read(const HttpResponse& response, const std::string& method);

  std::string apiRoot_;
  std::string token_;
  HttpClient http_;
};

}  // namespace chitin::channel::telegram
