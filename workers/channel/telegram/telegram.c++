// SPDX-License-Identifier: Apache-2.0
// The Telegram platform's factory and receive loop: getMe, then long-polled getUpdates, each
// message delivered before its offset is written (see telegram.h).
// Runs in: worker (sandboxed)

#include "telegram.h"

#include <kj/debug.h>

#include <charconv>

#include "state-file.h"
#include "stream.h"
#include "telegram-platform.h"

namespace chitin::channel::telegram {

namespace {

using nlohmann::json;

constexpr const char* OFFSET_FILE = "offset";
constexpr const char* MIGRATIONS_FILE = "migrations";
constexpr int DOWNLOAD_ATTEMPTS = 3;

std::optional<int64_t> parseInt(std::string_view text) {
  int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

std::string trim(std::string s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  size_t e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// "123456:AA..." : the bot's id, a colon, and the secret. Checked so that a pasted token with
// a stray character fails here, clearly, instead of as a 404 from Telegram.
void checkToken(const std::string& token) {
  size_t colon = token.find(':');
  bool ok = colon != std::string::npos && colon > 0 && colon + 1 < token.size();
  for (size_t i = 0; ok && i < token.size(); ++i) {
    char c = token[i];
    if (i < colon) {
      ok = c >= '0' && c <= '9';
    } else if (i > colon) {
      ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
    }
  }
  if (!ok) {
    throw ChannelError(
        "telegram: the bot token is missing or malformed (expected the \"123456:ABC-...\" token "
        "@BotFather gives)");
  }
}

// https://host[:port][/path], or http:// to a loopback host only: the token is in every URL.
std::string checkApiRoot(std::string root) {
  while (!root.empty() && root.back() == '/') root.pop_back();
  auto fail = [&]() {
    return ChannelError(
        "telegram option \"apiRoot\": expected an https:// URL (http:// only to "
        "127.0.0.1, localhost or [::1], since the bot token travels in the URL), "
        "got \"" +
        root + "\"");
  };
  std::string rest;
  bool https = root.rfind("https://", 0) == 0;
  if (https) {
    rest = root.substr(8);
  } else if (root.rfind("http://", 0) == 0) {
    rest = root.substr(7);
  } else {
    throw fail();
  }
  if (rest.empty() || rest.find_first_of("?#@ \t\r\n\\") != std::string::npos) throw fail();
  std::string authority = rest.substr(0, rest.find('/'));
  std::string host = authority;
  if (host.rfind("[::1]", 0) == 0) {
    host = "[::1]";
  } else {
    host = host.substr(0, host.find(':'));
  }
  if (host.empty()) throw fail();
  if (!https && host != "127.0.0.1" && host != "localhost" && host != "[::1]") throw fail();
  return root;
}

}  // namespace

std::unique_ptr<Platform> makeTelegram(Settings& settings, Host& host) {
  TelegramOptions options;
  options.apiRoot = settings.take("apiRoot", "https://api.telegram.org");
  options.pollTimeoutSeconds = static_cast<int>(settings.takeInt("pollTimeout", 50, 0, 50));
  settings.finish();
  options.token = trim(settings.credential);
  checkToken(options.token);
  options.apiRoot = checkApiRoot(options.apiRoot);
  requireStateDir(settings.stateDir);
  options.egressSocket = settings.egressSocket;
  options.stateDir = settings.stateDir;
  options.maxAttachmentBytes = settings.maxAttachmentBytes;
  return std::make_unique<TelegramPlatform>(std::move(options), host);
}

TelegramPlatform::TelegramPlatform(TelegramOptions options, Host& host)
    : options_(std::move(options)),
      host_(host),
      receiveApi_(options_.apiRoot, options_.token, options_.egressSocket),
      sendApi_(options_.apiRoot, options_.token, options_.egressSocket) {
  if (auto saved = readStateFile(options_.stateDir, OFFSET_FILE)) {
    if (auto offset = parseInt(trim(*saved))) {
      offset_ = *offset;
    } else {
      // Asking from the start again only redelivers what the supervisor drops as duplicates.
      KJ_LOG(WARNING, "telegram: the saved offset is unreadable; polling from the start");
    }
  }
  loadMigrations();
}

Capabilities TelegramPlatform::capabilities() const {
  return {static_cast<uint32_t>(MAX_MESSAGE_UTF16), true, true, true};
}

void TelegramPlatform::interrupt() {
  receiveApi_.interrupt();
  sendApi_.interrupt();
}

void TelegramPlatform::setState(State state, const std::string& detail) {
  if (state == state_ && detail == detail_) return;
  state_ = state;
  detail_ = detail;
  host_.status(state, detail, bot_.username.empty() ? "" : "@" + bot_.username);
}

void TelegramPlatform::run(Host& host) {
  Backoff backoff;
  try {
    while (!host.stopping()) {
      try {
        bool goOn = bot_.id == 0 ? identify(backoff) : poll(backoff);
        if (!goOn) return;  // fatal, reported
      } catch (const ChannelError& e) {
        // The network, Telegram's servers, or the supervisor refusing a message: all pass.
        setState(State::RECONNECTING, e.what());
        if (!host.sleepFor(backoff.next())) return;
      }
    }
  } catch (const StreamInterrupted&) {
    // interrupt(): the worker is stopping.
  } catch (const Stopping&) {
    // deliver() while the worker stops: the offset stays where it was.
  }
}

bool TelegramPlatform::identify(Backoff& backoff) {
  ApiReply reply = receiveApi_.call("getMe", json::object());
  if (!reply.ok) return handleFailure(reply, "getMe", backoff);
  const json& me = reply.result;
  auto id = me.is_object() && me.contains("id") && me["id"].is_number_integer()
                ? std::optional<int64_t>(me["id"].get<int64_t>())
                : std::nullopt;
  if (!id || !me.contains("username") || !me["username"].is_string()) {
    throw ChannelError("getMe: the answer has no bot id or username");
  }
  bot_.id = *id;
  bot_.username = me["username"].get<std::string>();
  return true;
}

bool TelegramPlatform::handleFailure(const ApiReply& reply, const std::string& method,
                                     Backoff& backoff) {
  std::chrono::milliseconds wait;
  if (reply.errorCode == 401 || reply.errorCode == 404) {
    // 404 is Telegram's answer to a token of the right shape that names no bot.
    setState(State::FAILED, std::to_string(reply.errorCode) + " " + reply.description +
                                ": Telegram refused the bot token (revoked or mistyped?); get "
                                "a new one from @BotFather");
    return false;
  } else if (reply.errorCode == 409) {
    setState(State::RECONNECTING,
             "409 Conflict: another getUpdates poller or a webhook is using this bot token; "
             "stop the other instance or delete the webhook (" +
                 reply.description + ")");
    wait = backoff.next();
  } else if (reply.errorCode == 429) {
    int64_t seconds = std::clamp<int64_t>(reply.retryAfterSeconds.value_or(5), 1, 3600);
    setState(State::RECONNECTING,
             "429 Too Many Requests: waiting " + std::to_string(seconds) + " s as Telegram asks");
    wait = std::chrono::seconds(seconds);
  } else {
    setState(State::RECONNECTING, reply.describe(method));
    wait = backoff.next();
  }
  host_.sleepFor(wait);
  return true;
}

bool TelegramPlatform::poll(Backoff& backoff) {
  json params = {{"timeout", options_.pollTimeoutSeconds},
                 {"allowed_updates", json::array({"message"})}};
  if (offset_ != 0) params["offset"] = offset_;
  ApiReply reply = receiveApi_.call("getUpdates", params,
                                    std::chrono::seconds(options_.pollTimeoutSeconds + 20));
  if (!reply.ok) return handleFailure(reply, "getUpdates", backoff);
  if (!reply.result.is_array()) throw ChannelError("getUpdates: the result is not a list");
  setState(State::CONNECTED, "");
  backoff.reset();
  for (const json& update : reply.result) {
    auto id = update.is_object() && update.contains("update_id") &&
                      update["update_id"].is_number_integer()
                  ? std::optional<int64_t>(update["update_id"].get<int64_t>())
                  : std::nullopt;
    if (!id) {
      KJ_LOG(WARNING, "telegram: an update without update_id; skipped");
      continue;
    }
    handleUpdate(update);
    // Only now, after the supervisor has the message: a crash before this line redelivers it.
    // Not synced: the next getUpdates confirms the offset to Telegram, which then forgets the
    // update, and an offset lost before that redelivers only what the supervisor's seen-store
    // drops. Syncing it cost every message two journal commits beside the supervisor's own
    // (tests/bench (k): ~1 ms of chitin's part of a reply).
    offset_ = *id + 1;
    writeStateFile(options_.stateDir, OFFSET_FILE, std::to_string(offset_) + "\n", StateSync::LAZY);
  }
  return true;
}

void TelegramPlatform::handleUpdate(const json& update) {
  auto found = update.find("message");
  if (found == update.end() || !found->is_object()) return;  // a type we did not ask for
  if (auto migration = migrationIn(*found)) {
    recordMigration(migration->first, migration->second);
    return;
  }
  std::string why;
  auto parsed = parseMessage(*found, bot_, why);
  if (!parsed) return;  // not for the assistant: joins, pins, bots, channel posts
  fetchFiles(*parsed);
  // Accepted or a duplicate the supervisor already has: either way the update is done.
  host_.deliver(std::move(parsed->message));
}

void TelegramPlatform::fetchFiles(ParsedMessage& parsed) {
  for (const FileRef& file : parsed.files) {
    Attachment attachment{file.name, file.mimeType, "", file.size};
    uint64_t max = options_.maxAttachmentBytes;
    if (file.size <= max) {
      for (int attempt = 1; attempt <= DOWNLOAD_ATTEMPTS; ++attempt) {
        try {
          ApiReply info = receiveApi_.call("getFile", {{"file_id", file.fileId}});
          if (!info.ok && info.errorCode == 429) {
            host_.sleepFor(std::chrono::seconds(
                std::clamp<int64_t>(info.retryAfterSeconds.value_or(1), 1, 60)));
            continue;
          }
          // "file is too big" (over the Bot API's 20 MB) and the like: delivered without data.
          if (!info.ok) break;
          const json& r = info.result;
          if (r.contains("file_size") && r["file_size"].is_number_unsigned()) {
            attachment.size = std::max<uint64_t>(attachment.size, r["file_size"].get<uint64_t>());
          }
          if (attachment.size > max || !r.contains("file_path") || !r["file_path"].is_string()) {
            break;
          }
          attachment.data = receiveApi_.download(r["file_path"].get<std::string>(), max);
          if (attachment.size == 0) attachment.size = attachment.data.size();
          break;
        } catch (const ChannelError& e) {
          // A flaky download is retried; one that keeps failing must not hold up the message
          // (or every later one) for ever, so it arrives without its data.
          KJ_LOG(WARNING, "telegram: file download failed", e.what(), attempt);
          if (attempt == DOWNLOAD_ATTEMPTS || !host_.sleepFor(std::chrono::seconds(attempt))) {
            break;
          }
        }
      }
    }
    parsed.message.attachments.push_back(std::move(attachment));
  }
}

void TelegramPlatform::loadMigrations() {
  auto saved = readStateFile(options_.stateDir, MIGRATIONS_FILE);
  if (!saved) return;
  size_t start = 0;
  while (start < saved->size()) {
    size_t end = saved->find('\n', start);
    if (end == std::string::npos) end = saved->size();
    std::string line = saved->substr(start, end - start);
    size_t space = line.find(' ');
    if (space != std::string::npos) {
      auto from = parseInt(line.substr(0, space)), to = parseInt(line.substr(space + 1));
      if (from && to) migrations_[*from] = *to;
    }
    start = end + 1;
  }
}

void TelegramPlatform::recordMigration(int64_t from, int64_t to) {
  std::string content;
  {
    std::lock_guard<std::mutex> lock(chatsMutex_);
    if (from == to || migrations_[from] == to) return;
    migrations_[from] = to;
    for (auto& [a, b] : migrations_) content += std::to_string(a) + " " + std::to_string(b) + "\n";
  }
  writeStateFile(options_.stateDir, MIGRATIONS_FILE, content);
}

int64_t TelegramPlatform::resolveChat(const std::string& chatId) {
  auto id = parseInt(chatId);
  if (!id) throw ChannelError("\"" + chatId + "\" is not a Telegram chat id");
  std::lock_guard<std::mutex> lock(chatsMutex_);
  // A group that became a supergroup is reached under its new id (bounded: no cycles).
  for (int hops = 0; hops < 8; ++hops) {
    auto it = migrations_.find(*id);
    if (it == migrations_.end()) break;
    *id = it->second;
  }
  return *id;
}

}  // namespace chitin::channel::telegram
