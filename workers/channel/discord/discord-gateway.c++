// SPDX-License-Identifier: Apache-2.0
// Discord's gateway: connect, heartbeat, identify or resume, dispatches, close codes (see
// discord-gateway.h).
// Runs in: worker (sandboxed)

#include "discord-gateway.h"

#include <kj/debug.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "utf8.h"

namespace chitin::channel::discord {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using namespace std::chrono_literals;

// A close we start to reconnect must not be 1000/1001, which end the session on Discord's
// side; any code in the private range keeps it resumable.
constexpr uint16_t CLOSE_TO_RESUME = 4900;
constexpr size_t MAX_GATEWAY_MESSAGE = 8u << 20;  // READY of a bot in many guilds is large

milliseconds randomBetween(milliseconds lo, milliseconds hi) {
  static thread_local std::mt19937_64 random{std::random_device{}()};
  return milliseconds(std::uniform_int_distribution<int64_t>(lo.count(), hi.count())(random));
}

// What a fatal close code means for the owner, who has to fix it.
std::optional<std::string> fatalCloseText(uint16_t code) {
  switch (code) {
    case 4004:
      return "Discord refused the bot token (close code 4004): reset it in the Developer Portal "
             "and update the credential file";
    case 4010:
      return "Discord: invalid shard (close code 4010)";
    case 4011:
      return "Discord: this bot is in too many guilds for one connection (close code 4011, "
             "sharding required)";
    case 4012:
      return "Discord: invalid gateway version (close code 4012)";
    case 4013:
      return "Discord: invalid intents (close code 4013): check the `intents` option";
    case 4014:
      return "Discord: disallowed intents (close code 4014): enable Message Content Intent in "
             "the Developer Portal (Bot > Privileged Gateway Intents) or remove "
             "message_content from the `intents` option";
    default:
      return std::nullopt;
  }
}

// Beats on its own thread, so a slow delivery or download on the reader never delays a
// heartbeat into a disconnect; and notices a zombie connection (no ACK since the last beat).
class Heartbeat {
 public:
  Heartbeat(WebSocket& ws, milliseconds interval, const std::atomic<int64_t>& seq)
      : ws_(ws), interval_(interval), seq_(seq), thread_([this] { loop(); }) {}
  ~Heartbeat() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  void acked() {
    std::lock_guard<std::mutex> lock(mutex_);
    awaitingAck_ = false;
  }
  void beatNow() { send(); }  // op 1 from the server: beat at once
  bool zombie() const { return zombie_.load(); }

  // While the reader delivers (the supervisor may be slow, an attachment large) it reads
  // nothing, so an ACK can sit unread: beats go on, but a missing ACK proves nothing then.
  class Busy {
   public:
    explicit Busy(Heartbeat& h) : h_(h) { h_.readerBusy_ = true; }
    ~Busy() {
      std::lock_guard<std::mutex> lock(h_.mutex_);
      h_.readerBusy_ = false;
      h_.unreadAckPossible_ = true;
    }

   private:
    Heartbeat& h_;
  };

 private:
  void send() {
    int64_t seq = seq_.load();
    ws_.sendText(seq >= 0 ? "{\"op\":1,\"d\":" + std::to_string(seq) + "}"
                          : std::string("{\"op\":1,\"d\":null}"));
  }
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    // The first beat after interval x jitter (Discord's rule), so reconnecting bots spread out.
    auto next = Clock::now() + randomBetween(0ms, interval_);
    while (!stop_) {
      if (wake_.wait_until(lock, next, [this] { return stop_; })) break;
      if (awaitingAck_ && !readerBusy_ && !unreadAckPossible_) {
        zombie_ = true;
        ws_.interrupt();
        break;
      }
      unreadAckPossible_ = false;  // from here on the reader is reading again
      awaitingAck_ = true;
      lock.unlock();
      try {
        send();
      } catch (...) {
        lock.lock();
        zombie_ = true;  // the socket is dead; the reader learns it from the interrupt
        ws_.interrupt();
        break;
      }
      lock.lock();
      next += interval_;
    }
  }

  WebSocket& ws_;
  milliseconds interval_;
  const std::atomic<int64_t>& seq_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  bool awaitingAck_ = false;
  std::atomic<bool> readerBusy_{false};
  bool unreadAckPossible_ = false;  // the reader was busy since the last beat
  std::atomic<bool> zombie_{false};
  std::thread thread_;
};

}  // namespace

Gateway::Gateway(GatewayConfig config, Host& host)
    : config_(std::move(config)),
      host_(host),
      rest_(config_.apiRoot, config_.token, config_.egressSocket, host) {}

Gateway::~Gateway() = default;

void Gateway::interrupt() {
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = true;
  if (ws_ != nullptr) ws_->interrupt();
  rest_.interrupt();
}

bool Gateway::resumable() const { return !sessionId_.empty() && seq_.load() >= 0; }

void Gateway::clearSession() {
  sessionId_.clear();
  resumeUrl_.clear();
  seq_ = -1;
  saveSession();
}

void Gateway::loadSession() {
  if (config_.sessionFile.empty()) return;
  std::ifstream in(config_.sessionFile);
  if (!in) return;
  std::stringstream text;
  text << in.rdbuf();
  auto saved = parsePlatformJson(text.str());
  auto seq = saved ? intField(*saved, "seq") : std::nullopt;
  if (!saved || !seq) {
    KJ_LOG(WARNING, "discord: ignoring an unreadable session file", config_.sessionFile);
    return;
  }
  sessionId_ = textField(*saved, "session_id");
  resumeUrl_ = textField(*saved, "resume_gateway_url");
  seq_ = *seq;
  self_.id = textField(*saved, "user_id");
  self_.name = textField(*saved, "user_name");
}

void Gateway::saveSession() {
  if (config_.sessionFile.empty()) return;
  Json saved = {{"session_id", sessionId_},
                {"resume_gateway_url", resumeUrl_},
                {"seq", seq_.load()},
                {"user_id", self_.id},
                {"user_name", self_.name}};
  std::string tmp = config_.sessionFile + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << saved.dump();
    if (!out.flush()) {
      KJ_LOG(WARNING, "discord: cannot write the session file", tmp);
      return;
    }
  }
  if (std::rename(tmp.c_str(), config_.sessionFile.c_str()) != 0) {
    KJ_LOG(WARNING, "discord: cannot replace the session file", config_.sessionFile);
  }
}

std::string Gateway::gatewayUrl() {
  if (!config_.gatewayUrl.empty()) return config_.gatewayUrl;
  if (!cachedGatewayUrl_.empty()) return cachedGatewayUrl_;
  Json answer = rest_.call("GET", "/gateway/bot", "GET /gateway/bot");
  std::string url = textField(answer, "url");
  if (url.rfind("wss://", 0) != 0 && !(config_.allowPlainWs && url.rfind("ws://", 0) == 0)) {
    throw ChannelError("Discord's /gateway/bot gave no wss:// URL");
  }
  // Identifying is limited per day; when none are left, wait for the reset rather than
  // earning a ban.
  const Json* limit = field(answer, "session_start_limit");
  if (limit != nullptr && intField(*limit, "remaining").value_or(1) == 0) {
    auto resetMs =
        std::clamp<int64_t>(intField(*limit, "reset_after").value_or(60000), 1000, 86400000);
    host_.status(State::RECONNECTING, "Discord's daily identify limit is used up; waiting");
    if (!host_.sleepFor(milliseconds(resetMs))) throw StreamInterrupted{};
  }
  cachedGatewayUrl_ = url;
  return url;
}

bool Gateway::stopped() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stopping_ || host_.stopping();
}

void Gateway::run() {
  host_.status(State::STARTING, "");
  loadSession();
  Backoff backoff;
  while (!stopped()) {
    bool reachedConnected = false;
    Next next = Next::RESUME;
    try {
      if (self_.id.empty()) {
        // Who we are, before any message can be judged ours; a refused token ends here.
        Json me = rest_.call("GET", "/users/@me", "GET /users/@me");
        self_.id = textField(me, "id");
        self_.name = textField(me, "username");
        if (!isSnowflake(self_.id)) throw ChannelError("Discord's /users/@me gave no user id");
      }
      next = connectOnce(reachedConnected);
    } catch (const StreamInterrupted&) {
      if (stopped()) return;
      next = Next::RESUME;
    } catch (const TokenRefused& e) {
      host_.status(State::FAILED, e.what());
      return;
    } catch (const ChannelError& e) {
      cachedGatewayUrl_.clear();  // the next attempt asks Discord again
      host_.status(State::RECONNECTING, e.what());
    }
    if (next == Next::FAILED) return;
    if (next == Next::IDENTIFY) clearSession();
    if (reachedConnected) backoff.reset();
    // Straight back after a working connection (op 7, a zombie); with backoff after one that
    // never got going, so a server that keeps refusing is not hammered.
    if (!reachedConnected && !host_.sleepFor(backoff.next())) return;
  }
}

Gateway::Next Gateway::connectOnce(bool& reachedConnected) {
  bool resuming = resumable() && !resumeUrl_.empty();
  std::string base = resuming ? resumeUrl_ : gatewayUrl();
  // "wss://gateway.discord.gg" gets "/?v=10&encoding=json"; a URL with a path keeps it.
  size_t authority = base.find("://");
  bool hasPath =
      authority != std::string::npos && base.find('/', authority + 3) != std::string::npos;
  std::string url = base +
                    (base.find('?') != std::string::npos ? "&"
                     : hasPath                           ? "?"
                                                         : "/?") +
                    "v=10&encoding=json";

  WebSocketOptions options;
  options.egressSocket = config_.egressSocket;
  options.maxMessageBytes = MAX_GATEWAY_MESSAGE;
  auto ws = WebSocket::connect(url, options);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ws_ = ws.get();
    if (stopping_) ws->interrupt();
  }
  struct Forget {
    Gateway& g;
    ~Forget() {
      std::lock_guard<std::mutex> lock(g.mutex_);
      g.ws_ = nullptr;
    }
  } forget{*this};

  auto hello = ws->receive(20s);
  std::optional<Json> helloJson;
  if (hello && hello->kind == WebSocket::Kind::TEXT) helloJson = parsePlatformJson(hello->data);
  if (hello && hello->kind == WebSocket::Kind::CLOSED) {
    return onClose(hello->closeCode, hello->closeReason);
  }
  const Json* d = helloJson ? field(*helloJson, "d") : nullptr;
  auto interval = d != nullptr ? intField(*d, "heartbeat_interval") : std::nullopt;
  if (!helloJson || intField(*helloJson, "op") != 10 || !interval || *interval < 100 ||
      *interval > 600000) {
    throw ChannelError("Discord's gateway sent no usable HELLO");
  }
  Heartbeat heartbeat(*ws, milliseconds(*interval), seq_);

  if (resuming) {
    Json resume = {
        {"op", 6},
        {"d", {{"token", config_.token}, {"session_id", sessionId_}, {"seq", seq_.load()}}}};
    ws->sendText(resume.dump());
  } else {
    Json identify = {
        {"op", 2},
        {"d",
         {{"token", config_.token},
          {"intents", config_.intents},
          {"properties", {{"os", "linux"}, {"browser", "chitin"}, {"device", "chitin"}}}}}};
    ws->sendText(identify.dump());
  }

  for (;;) {
    std::optional<WebSocket::Message> m;
    try {
      m = ws->receive(1h);  // heartbeats run on their own thread
    } catch (const StreamInterrupted&) {
      if (heartbeat.zombie() && !stopped()) {
        host_.status(State::RECONNECTING, "no heartbeat ACK from Discord: reconnecting to resume");
        return Next::RESUME;
      }
      throw;
    }
    if (!m) continue;
    if (m->kind == WebSocket::Kind::CLOSED) return onClose(m->closeCode, m->closeReason);
    if (m->kind == WebSocket::Kind::BINARY) {
      KJ_LOG(WARNING, "discord: a binary gateway message (compression was not asked for)");
      continue;
    }
    auto payload = parsePlatformJson(m->data);
    auto op = payload ? intField(*payload, "op") : std::nullopt;
    if (!op) {
      KJ_LOG(WARNING, "discord: an unreadable gateway message", clipUtf8(m->data, 120));
      continue;
    }
    switch (*op) {
      case 0: {
        Heartbeat::Busy busy(heartbeat);
        Next next = onDispatch(*payload, reachedConnected);
        if (next != Next::RESUME) return next;
        break;
      }
      case 1:
        heartbeat.beatNow();
        break;
      case 7:
        host_.status(State::RECONNECTING, "Discord asked us to reconnect (op 7)");
        ws->close(CLOSE_TO_RESUME, "reconnect", 500ms);
        return Next::RESUME;
      case 9: {
        bool canResume = field(*payload, "d") != nullptr && boolField(*payload, "d");
        host_.status(State::RECONNECTING,
                     canResume ? "Discord invalidated the session (op 9): resuming"
                               : "Discord invalidated the session (op 9): identifying anew");
        ws->close(CLOSE_TO_RESUME, "invalid session", 500ms);
        // Discord asks for a random 1-5 s pause before the next RESUME or IDENTIFY.
        if (!host_.sleepFor(randomBetween(1000ms, 5000ms))) throw StreamInterrupted{};
        if (!canResume) clearSession();
        return canResume ? Next::RESUME : Next::IDENTIFY;
      }
      case 11:
        heartbeat.acked();
        break;
      default:
        break;  // op 10 again, or one we do not use
    }
  }
}

// Returns RESUME to keep reading (the connection goes on).
Gateway::Next Gateway::onDispatch(const Json& payload, bool& reachedConnected) {
  std::string type = textField(payload, "t");
  auto seq = intField(payload, "s");
  const Json* d = field(payload, "d");
  if (type == "READY" && d != nullptr) {
    sessionId_ = textField(*d, "session_id");
    resumeUrl_ = textField(*d, "resume_gateway_url");
    if (resumeUrl_.rfind("wss://", 0) != 0 &&
        !(config_.allowPlainWs && resumeUrl_.rfind("ws://", 0) == 0)) {
      resumeUrl_.clear();  // resume through the ordinary gateway URL instead
    }
    const Json* user = field(*d, "user");
    if (user != nullptr && isSnowflake(textField(*user, "id"))) {
      self_.id = textField(*user, "id");
      self_.name = textField(*user, "username");
    }
    reachedConnected = true;
    host_.status(State::CONNECTED, "", self_.name);
  } else if (type == "RESUMED") {
    reachedConnected = true;
    host_.status(State::CONNECTED, "", self_.name);
  } else if (type == "MESSAGE_CREATE" && d != nullptr) {
    deliverMessage(*d);  // before the sequence number counts: a crash here means a replay
  }
  if (seq && *seq > seq_.load()) seq_ = *seq;
  if (type == "READY" || type == "MESSAGE_CREATE") saveSession();
  return Next::RESUME;
}

void Gateway::deliverMessage(const Json& d) {
  std::string skipped;
  auto message = parseMessageCreate(d, self_, skipped);
  if (!message) return;  // ours, a bot's, a system notice: nothing to log per message
  for (const auto& ref : message->files) {
    Attachment a;
    a.name = ref.name;
    a.mimeType = ref.mimeType;
    a.size = ref.size;
    // The stated size decides first, so an oversized file is not even requested; the
    // download is capped again in case the statement was false.
    bool http = ref.url.rfind("https://", 0) == 0 ||
                (config_.allowPlainWs && ref.url.rfind("http://", 0) == 0);
    if (http && ref.size <= config_.maxAttachmentBytes) {
      try {
        HttpResponse r = rest_.download(ref.url, config_.maxAttachmentBytes);
        if (r.status == 200) {
          a.data = std::move(r.body);
        } else {
          KJ_LOG(WARNING, "discord: attachment download failed", r.status);
        }
      } catch (const ChannelError& e) {
        KJ_LOG(WARNING, "discord: attachment download failed", e.what());
      }
    }
    message->inbound.attachments.push_back(std::move(a));
  }
  host_.deliver(std::move(message->inbound));
}

Gateway::Next Gateway::onClose(uint16_t code, const std::string& reason) {
  if (auto fatal = fatalCloseText(code)) {
    host_.status(State::FAILED, *fatal);
    return Next::FAILED;
  }
  std::string detail = "Discord closed the gateway (" + std::to_string(code) +
                       (reason.empty() ? "" : " " + clipUtf8(reason, 100)) + ")";
  host_.status(State::RECONNECTING, detail);
  // 4007 (invalid seq) and 4009 (session timed out): the session is gone; start a new one.
  if (code == 4007 || code == 4009) return Next::IDENTIFY;
  return Next::RESUME;
}

}  // namespace chitin::channel::discord
