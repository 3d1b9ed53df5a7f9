// SPDX-License-Identifier: Apache-2.0
// Telegram Bot API calls over HttpClient (see bot-api.h).
// Runs in: worker (sandboxed)

#include "bot-api.h"

#include "json-bounds.h"
#include "platform.h"

namespace chitin::channel::telegram {

namespace {

using nlohmann::json;

// getUpdates returns at most 100 updates; a message is at most a few KiB of JSON.
constexpr JsonBounds RESPONSE_BOUNDS{8u << 20, 64};

// A file_path from getFile goes into a URL: only the characters Telegram uses, no "..".
bool safeFilePath(const std::string& path) {
  if (path.empty() || path.size() > 512 || path[0] == '/' || path.find("..") != std::string::npos) {
    return false;
  }
  for (char c : path) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '/';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

std::string ApiReply::describe(const std::string& method) const {
  std::string text = method + ": " + std::to_string(errorCode);
  if (!description.empty()) text += " " + description;
  return text;
}

BotApi::BotApi(std::string apiRoot, std::string token, std::string egressSocket)
    : apiRoot_(std::move(apiRoot)), token_(std::move(token)), http_(std::move(egressSocket)) {}

void BotApi::interrupt() { http_.interrupt(); }

ApiReply BotApi::call(const std::string& method, const json& params,
                      std::chrono::milliseconds timeout) {
  HttpRequest request;
  request.method = "POST";
  request.url = apiRoot_ + "/bot" + token_ + "/" + method;
  request.headers = {"Content-Type: application/json"};
  // Text from the model may hold invalid UTF-8; it is replaced rather than refused.
  request.body = params.dump(-1, ' ', false, json::error_handler_t::replace);
  request.timeout = timeout;
  try {
    return read(http_.perform(request), method);
  } catch (const ChannelError& e) {
    throw ChannelError(method + ": " + e.what());
  }
}

ApiReply BotApi::upload(const std::string& method, const std::vector<HttpPart>& parts,
                        std::chrono::milliseconds timeout) {
  HttpRequest request;
  request.method = "POST";
  request.url = apiRoot_ + "/bot" + token_ + "/" + method;
  request.multipart = parts;
  request.timeout = timeout;
  try {
    return read(http_.perform(request), method);
  } catch (const ChannelError& e) {
    throw ChannelError(method + ": " + e.what());
  }
}

std::string BotApi::download(const std::string& filePath, size_t maxBytes) {
  if (!safeFilePath(filePath)) throw ChannelError("getFile: an unexpected file_path");
  HttpRequest request;
  request.url = apiRoot_ + "/file/bot" + token_ + "/" + filePath;
  request.maxResponseBytes = maxBytes;
  request.timeout = std::chrono::seconds(120);
  HttpResponse response;
  try {
    response = http_.perform(request);
  } catch (const ChannelError& e) {
    throw ChannelError(std::string("file download: ") + e.what());
  }
  if (response.status != 200) {
    throw ChannelError("file download: HTTP " + std::to_string(response.status));
  }
  return std::move(response.body);
}

ApiReply BotApi::read(const HttpResponse& response, const std::string& method) {
  ApiReply reply;
  std::string bounds = checkJsonBounds(response.body, RESPONSE_BOUNDS, method + " response");
  json body = bounds.empty() ? json::parse(response.body, nullptr, false) : json();
  if (!body.is_object() || !body.contains("ok") || !body["ok"].is_boolean()) {
    // Not the Bot API talking (a proxy's error page, a cut body): the HTTP status says enough.
    reply.errorCode = response.status;
    reply.description = bounds.empty() ? "(not a Bot API response)" : bounds;
    return reply;
  }
  reply.ok = body["ok"].get<bool>();
  if (reply.ok) {
    reply.result = body.contains("result") ? body["result"] : json();
    return reply;
  }
  auto code = body.find("error_code");
  reply.errorCode =
      code != body.end() && code->is_number_integer() ? code->get<int64_t>() : response.status;
  auto description = body.find("description");
  if (description != body.end() && description->is_string()) {
    reply.description = description->get<std::string>().substr(0, 500);
  }
  auto parameters = body.find("parameters");
  if (parameters != body.end() && parameters->is_object()) {
    auto retry = parameters->find("retry_after");
    if (retry != parameters->end() && retry->is_number_integer()) {
      reply.retryAfterSeconds = retry->get<int64_t>();
    }
    auto migrate = parameters->find("migrate_to_chat_id");
    if (migrate != parameters->end() && migrate->is_number_integer()) {
      reply.migrateToChatId = migrate->get<int64_t>();
    }
  }
  return reply;
}

}  // namespace chitin::channel::telegram
