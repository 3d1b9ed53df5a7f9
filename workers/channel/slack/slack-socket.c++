// SPDX-License-Identifier: Apache-2.0
// Slack Socket Mode: connect, acknowledge, deliver, reconnect (see slack-socket.h).
// Runs in: worker (sandboxed)

#include "slack-socket.h"

#include <kj/debug.h>

#include <thread>

#include "utf8.h"

namespace chitin::channel::slack {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr auto HELLO_TIMEOUT = 15s;
constexpr size_t MAX_SOCKET_MESSAGE = 4u << 20;
constexpr size_t MAX_NAMES = 2048;
constexpr size_t MAX_QUEUED = 256;

}  // namespace

Socket::Socket(SocketConfig config, Host& host)
    : config_(std::move(config)),
      host_(host),
      api_(config_.apiRoot, config_.tokens, config_.egressSocket, host),
      fetchApi_(config_.apiRoot, config_.tokens, config_.egressSocket, host),
      journal_(config_.journalDir) {}

void Socket::interrupt() {
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = true;
  if (ws_ != nullptr) ws_->interrupt();
  api_.interrupt();
  fetchApi_.interrupt();
  queueChanged_.notify_all();
}

bool Socket::stopped() {
  std::lock_guard<std::mutex> lock(mutex_);
  return stopping_ || host_.stopping();
}

void Socket::run() {
  host_.status(State::STARTING, "");
  std::thread delivering;
  // Started once we know who we are (parsing needs it); on the way out the reader is done:
  // the thread delivers what is queued (all of it after FAILED, none once stopping) and ends.
  struct Join {
    Socket& s;
    std::thread& t;
    ~Join() {
      {
        std::lock_guard<std::mutex> lock(s.mutex_);
        s.readerDone_ = true;
      }
      s.queueChanged_.notify_all();
      if (t.joinable()) t.join();
    }
  } join{*this, delivering};
  Backoff backoff;
  while (!stopped()) {
    bool again = false;
    try {
      if (self_.userId.empty()) {
        Json me = api_.call("auth.test", Json::object());
        self_.userId = textField(me, "user_id");
        self_.name = textField(me, "user");
        self_.botId = textField(me, "bot_id");
        if (!isSlackId(self_.userId)) throw ChannelError("Slack auth.test gave no user_id");
      }
      if (!delivering.joinable()) {
        // What a previous run acknowledged but did not deliver goes first.
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& [file, event] : journal_.leftovers()) queue_.push_back({std::move(event), file});
        delivering = std::thread([this] { process(); });
      }
      again = connectOnce();
      if (failed_) return;
    } catch (const StreamInterrupted&) {
      if (stopped()) return;
    } catch (const AuthError& e) {
      host_.status(State::FAILED, e.what());
      return;
    } catch (const ChannelError& e) {
      host_.status(State::RECONNECTING, e.what());
    }
    if (again) {
      backoff.reset();
    } else if (!host_.sleepFor(backoff.next())) {
      return;
    }
  }
}

bool Socket::connectOnce() {
  std::string url =
      textField(api_.call("apps.connections.open", Json::object(), false, true), "url");
  if (url.rfind("wss://", 0) != 0 && !(config_.allowPlainWs && url.rfind("ws://", 0) == 0)) {
    throw ChannelError("Slack apps.connections.open gave no wss:// URL");
  }
  WebSocketOptions options;
  options.egressSocket = config_.egressSocket;
  options.maxMessageBytes = MAX_SOCKET_MESSAGE;
  auto ws = WebSocket::connect(url, options);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ws_ = ws.get();
    if (stopping_) ws->interrupt();
  }
  struct Forget {
    Socket& s;
    ~Forget() {
      std::lock_guard<std::mutex> lock(s.mutex_);
      s.ws_ = nullptr;
    }
  } forget{*this};

  bool hello = false;
  auto helloDeadline = Clock::now() + HELLO_TIMEOUT;
  bool pinged = false;
  for (;;) {
    auto m = ws->receive(hello ? config_.quietBeforePing / 3
                               : std::chrono::duration_cast<std::chrono::milliseconds>(
                                     helloDeadline - Clock::now()));
    if (!m) {
      if (!hello) throw ChannelError("Slack sent no hello on the Socket Mode connection");
      auto quiet = Clock::now() - ws->lastReceived();
      if (quiet > config_.quietBeforeGivingUp) {
        host_.status(State::RECONNECTING, "the Socket Mode connection went silent: reconnecting");
        return true;
      }
      if (quiet > config_.quietBeforePing && !pinged) {
        ws->ping("chitin");  // a live peer answers (a pong counts as received)
        pinged = true;
      } else if (quiet <= config_.quietBeforePing) {
        pinged = false;
      }
      continue;
    }
    if (m->kind == WebSocket::Kind::CLOSED) {
      host_.status(State::RECONNECTING, "Slack closed the Socket Mode connection (" +
                                            std::to_string(m->closeCode) + ")");
      return hello;
    }
    if (m->kind != WebSocket::Kind::TEXT) continue;
    auto message = parsePlatformJson(m->data);
    if (!message || !message->is_object()) {
      KJ_LOG(WARNING, "slack: an unreadable Socket Mode message", clipUtf8(m->data, 120));
      continue;
    }
    std::string type = textField(*message, "type");
    if (type == "hello") {
      hello = true;
      host_.status(State::CONNECTED, "", "@" + self_.name);
      continue;
    }
    if (type == "disconnect") {
      std::string reason = textField(*message, "reason");
      if (reason == "link_disabled") {
        host_.status(State::FAILED,
                     "Slack: Socket Mode is turned off for this app (link_disabled)");
        failed_ = true;
        ws->close(WS_NORMAL, "", 500ms);
        return false;
      }
      host_.status(State::RECONNECTING,
                   "Slack asked for a reconnect (" + clipUtf8(reason, 40) + ")");
      ws->close(WS_NORMAL, "", 500ms);
      return true;
    }
    std::string envelopeId = textField(*message, "envelope_id");
    if (envelopeId.empty()) continue;
    // Acknowledge before delivering: Slack redelivers an envelope left unacknowledged for
    // ~3 s, and a delivery may take longer than that. The journal bridges the gap.
    auto pending = accept(*message);
    ws->sendText(
        Json({{"envelope_id", envelopeId}}).dump(-1, ' ', false, Json::error_handler_t::replace));
    if (pending) enqueue(std::move(*pending));
  }
}

std::optional<Socket::Pending> Socket::accept(const Json& envelope) {
  if (textField(envelope, "type") != "events_api") return std::nullopt;  // commands, buttons
  const Json* payload = field(envelope, "payload");
  const Json* event = payload != nullptr ? field(*payload, "event") : nullptr;
  if (event == nullptr) return std::nullopt;
  // A redelivery (retry_attempt > 0) repeats the event_id under a new envelope_id.
  std::string eventId = textField(*payload, "event_id");
  if (!eventId.empty() && !events_.insert(eventId)) return std::nullopt;
  return Pending{*event, journal_.keep(*event)};
}

void Socket::enqueue(Pending pending) {
  std::unique_lock<std::mutex> lock(mutex_);
  // A delivering thread far behind stops the reading (and so the acknowledging): Slack then
  // redelivers later instead of this worker holding an unbounded backlog.
  queueChanged_.wait(lock, [this] { return queue_.size() < MAX_QUEUED || stopping_; });
  if (stopping_) throw StreamInterrupted{};
  queue_.push_back(std::move(pending));
  queueChanged_.notify_all();
}

void Socket::process() {
  for (;;) {
    Pending pending;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      queueChanged_.wait(lock, [this] { return !queue_.empty() || readerDone_ || stopping_; });
      if (stopping_ || queue_.empty()) return;
      pending = std::move(queue_.front());
      queue_.pop_front();
      queueChanged_.notify_all();
    }
    try {
      deliverEvent(pending.event);
    } catch (const Stopping&) {
      return;  // still in the journal: the next run delivers it
    } catch (const StreamInterrupted&) {
      return;
    } catch (const ChannelError& e) {
      KJ_LOG(WARNING, "slack: an event could not be delivered", e.what());
    }
    journal_.done(pending.file);
  }
}

void Socket::deliverEvent(const Json& event) {
  std::string skipped;
  auto parsed = parseEvent(event, self_, skipped);
  if (!parsed) return;
  // A mention in a channel arrives twice, as `message` and as `app_mention`, with one ts.
  if (!messages_.insert(parsed->inbound.chatId + "/" + parsed->inbound.messageId)) return;
  parsed->inbound.senderName = nameOf(parsed->inbound.senderId);
  for (const auto& ref : parsed->files) {
    Attachment a;
    a.name = ref.name;
    a.mimeType = ref.mimeType;
    a.size = ref.size;
    // The stated size decides first; the download is capped again in case it was false.
    if (ref.size <= config_.maxAttachmentBytes && !ref.url.empty()) {
      try {
        a.data = fetchApi_.download(ref.url, config_.maxAttachmentBytes);
      } catch (const ChannelError& e) {
        KJ_LOG(WARNING, "slack: file download failed", e.what());
      }
    }
    parsed->inbound.attachments.push_back(std::move(a));
  }
  host_.deliver(std::move(parsed->inbound));
}

// The display name for people; the id stays the sender id. Without users:read the id is used.
std::string Socket::nameOf(const std::string& userId) {
  auto it = names_.find(userId);
  if (it != names_.end()) return it->second;
  if (namesUnavailable_) return userId;
  std::string name = userId;
  try {
    Json answer = fetchApi_.call("users.info", {{"user", userId}}, true);
    const Json* user = field(answer, "user");
    const Json* profile = user != nullptr ? field(*user, "profile") : nullptr;
    std::string display = profile != nullptr ? textField(*profile, "display_name") : "";
    if (display.empty() && user != nullptr) display = textField(*user, "real_name");
    if (display.empty() && user != nullptr) display = textField(*user, "name");
    if (!display.empty()) name = clipUtf8(display, 80);
  } catch (const AuthError& e) {
    KJ_LOG(WARNING, "slack: no user names (add the users:read scope)", e.what());
    namesUnavailable_ = true;
  } catch (const ApiError& e) {
    KJ_LOG(WARNING, "slack: users.info refused", e.what());  // Slack's answer: kept
  } catch (const ChannelError& e) {
    KJ_LOG(WARNING, "slack: users.info failed", e.what());
    return name;  // a transport failure, not cached: the next message tries again
  }
  if (names_.size() >= MAX_NAMES) names_.clear();
  names_[userId] = name;
  return name;
}

}  // namespace chitin::channel::slack
