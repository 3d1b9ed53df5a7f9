// SPDX-License-Identifier: Apache-2.0
// The WhatsApp channel: the adapter around the Node bridge (see whatsapp-channel.h).
// Runs in: worker (sandboxed)

#include "whatsapp-channel.h"

#include <dirent.h>
#include <fcntl.h>
#include <kj/debug.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "bridge-process.h"
#include "format.h"
#include "json-bounds.h"
#include "stream.h"

namespace chitin::channel {

namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int PROTOCOL_VERSION = 1;
// WhatsApp takes 65536 characters; a reply that long is unreadable on a phone.
constexpr uint32_t MAX_MESSAGE_CHARS = 4000;
constexpr size_t MAX_LINE = 1u << 20;  // media travels as files, so lines stay small
constexpr JsonBounds LINE_BOUNDS{MAX_LINE, 16};
constexpr auto CALL_TIMEOUT = seconds(60);
// How long send, typing and react wait for the link to WhatsApp when the bridge is being
// restarted (it exits after every lost connection) or a new worker's bridge is still starting:
// a reply in that gap would otherwise be lost, and its message is already marked as answered.
constexpr auto LINK_WAIT = seconds(20);

std::string dump(const Json& value) {
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string str(const Json& object, const char* key, size_t max = 4096) {
  auto it = object.find(key);
  if (it == object.end() || !it->is_string()) return "";
  const auto& s = it->get_ref<const std::string&>();
  return s.size() <= max ? s : "";
}

// "<user>@s.whatsapp.net", "<lid>@lid", "<id>@g.us" (old groups: "<creator>-<time>@g.us").
bool isChatJid(const std::string& jid) {
  size_t at = jid.find('@');
  if (at == 0 || at == std::string::npos || at > 64) return false;
  std::string server = jid.substr(at + 1);
  if (server != "s.whatsapp.net" && server != "lid" && server != "g.us") return false;
  return std::all_of(jid.begin(), jid.begin() + static_cast<long>(at),
                     [](char c) { return (c >= '0' && c <= '9') || c == '-'; });
}

// "+15551234567" from "15551234567:12@s.whatsapp.net".
std::string identityOf(const std::string& jid) {
  std::string user = jid.substr(0, jid.find_first_of(":@"));
  return user.empty() ? "" : "+" + user;
}

class WhatsAppPlatform final : public Platform {
 public:
  WhatsAppPlatform(Settings& settings, std::vector<std::string> command)
      : maxAttachmentBytes_(settings.maxAttachmentBytes) {
    // The media directory: private to this sandbox (its /tmp), shared with the bridge only.
    char dir[] = "/tmp/chitin-whatsapp-XXXXXX";
    if (!mkdtemp(dir)) throw ChannelError("whatsapp: cannot create a media directory in /tmp");
    mediaDir_ = dir;
    command_ = std::move(command);
    command_.insert(command_.end(), {"--state", settings.stateDir + "/whatsapp", "--media",
                                     mediaDir_, "--egress", settings.egressSocket});
  }

  ~WhatsAppPlatform() override {
    // Leftover media (a crash mid-transfer) must not pile up in the sandbox's small /tmp.
    if (DIR* d = opendir(mediaDir_.c_str())) {
      while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') unlink((mediaDir_ + "/" + e->d_name).c_str());
      closedir(d);
    }
    rmdir(mediaDir_.c_str());
  }

  Capabilities capabilities() const override {
    return {MAX_MESSAGE_CHARS, /*reactions=*/true, /*typing=*/true, /*attachments=*/true};
  }

  void run(Host& host) override {
    std::thread delivery([&] { deliveryLoop(host); });
    Backoff backoff;
    while (!host.stopping() && !interrupted_.load()) {
      std::shared_ptr<BridgeProcess> bridge;
      std::string ending;
      try {
        bridge = std::make_shared<BridgeProcess>(command_);
        attach(bridge);
        bridge->writeLine(dump({{"type", "hello"}, {"maxMediaBytes", maxAttachmentBytes_}}));
        readLoop(*bridge, backoff);
        ending = "the WhatsApp bridge " + bridge->finish();
      } catch (const StreamInterrupted&) {
        detach(bridge);
        break;
      } catch (const ChannelError& e) {
        // How the bridge ended says why (a missing node exits 127 before or after our first
        // write fails): the same words whichever of the two came first.
        ending = e.what();
        if (bridge) ending += " (the WhatsApp bridge " + bridge->finish() + ")";
      }
      detach(bridge);
      if (host.stopping() || interrupted_.load()) break;
      milliseconds wait = backoff.next();
      host.status(State::RECONNECTING,
                  ending + "; restarting it in " + std::to_string(wait.count()) + " ms");
      if (!host.sleepFor(wait)) break;
    }
    {
      std::lock_guard lock(mutex_);
      deliveryDone_ = true;
      changed_.notify_all();
    }
    delivery.join();
  }

  void interrupt() override {
    interrupted_.store(true);
    std::lock_guard lock(mutex_);
    if (bridge_) bridge_->interrupt();
    changed_.notify_all();
  }

  std::vector<std::string> send(const Outbound& message) override {
    std::string jid = requireJid(message.chatId);
    std::string plain = convertMarkdown(message.text, Format::PLAIN);
    std::vector<std::string> chunks;
    if (!plain.empty()) chunks = chunkText(plain, MAX_MESSAGE_CHARS, Unit::CODE_POINTS);
    if (chunks.empty() && message.attachments.empty())
      throw ChannelError("whatsapp: nothing to send (no text and no attachment)");
    std::vector<std::string> ids;
    bool first = true;
    auto post = [&](Json command) {
      command["type"] = "send";
      command["jid"] = jid;
      if (first && !message.replyTo.empty()) command["replyTo"] = message.replyTo;
      first = false;
      Json result = call(std::move(command), /*needsLink=*/true);
      if (result.contains("ids") && result["ids"].is_array())
        for (const auto& id : result["ids"])
          if (id.is_string()) ids.push_back(id.get<std::string>());
    };
    for (const auto& chunk : chunks) post({{"text", chunk}});
    for (const auto& attachment : message.attachments) {
      std::string path = writeMedia(attachment);
      try {
        post({{"text", ""},
              {"media",
               {{"path", path}, {"mime", attachment.mimeType}, {"name", attachment.name}}}});
      } catch (...) {
        unlink(path.c_str());
        throw;
      }
      unlink(path.c_str());  // the bridge removed it already, unless it failed first
    }
    return ids;
  }

  void typing(const std::string& chatId, bool on) override {
    call({{"type", "typing"}, {"jid", requireJid(chatId)}, {"on", on}}, /*needsLink=*/true);
  }

  void react(const std::string& chatId, const std::string& messageId,
             const std::string& emoji) override {
    std::string jid = requireJid(chatId);
    if (messageId.empty() || messageId.size() > 128)
      throw ChannelError("whatsapp: react needs the message's id");
    call({{"type", "react"}, {"jid", jid}, {"key", {{"id", messageId}}}, {"emoji", emoji}},
         /*needsLink=*/true);
  }

  void login(const std::string& phoneNumber) override {
    size_t digits = std::count_if(phoneNumber.begin(), phoneNumber.end(),
                                  [](char c) { return c >= '0' && c <= '9'; });
    bool plausible = std::all_of(phoneNumber.begin(), phoneNumber.end(), [](char c) {
      return (c >= '0' && c <= '9') || c == '+' || c == ' ' || c == '-' || c == '(' || c == ')';
    });
    if (!phoneNumber.empty() && (!plausible || digits < 6 || digits > 20))
      throw ChannelError("whatsapp: \"" + phoneNumber.substr(0, 40) +
                         "\" is not a phone number in international form (+15551234567)");
    Json command = {{"type", "login.start"}};
    if (!phoneNumber.empty()) command["phone"] = phoneNumber;
    call(std::move(command), /*needsLink=*/false);
  }

 private:
  void attach(const std::shared_ptr<BridgeProcess>& bridge) {
    std::lock_guard lock(mutex_);
    bridge_ = bridge;
    greeted_ = false;
    generation_++;
    if (interrupted_.load()) bridge->interrupt();
  }

  void detach(const std::shared_ptr<BridgeProcess>& bridge) {
    {
      std::lock_guard lock(mutex_);
      if (bridge_ == bridge) bridge_.reset();
      if (bridge && !greeted_) startFailed_ = true;  // it cannot start: calls fail at once
      open_ = false;
      generation_++;  // calls waiting on this bridge fail now
      results_.clear();
      abandoned_.clear();
      changed_.notify_all();
    }
    if (bridge) bridge->finish();
  }

  void readLoop(BridgeProcess& bridge, Backoff& backoff) {
    bool greeted = false;
    while (auto line = bridge.readLine(MAX_LINE)) {
      Json event = checkJsonBounds(*line, LINE_BOUNDS, "bridge line").empty()
                       ? Json::parse(*line, nullptr, false)
                       : Json();
      if (!event.is_object() || !event.contains("type")) {
        KJ_LOG(WARNING, "whatsapp: the bridge wrote a line that is not an event");
        continue;
      }
      std::string type = str(event, "type", 32);
      if (type == "result") {
        int64_t id = event.value("id", int64_t(0));
        std::lock_guard lock(mutex_);
        if (abandoned_.erase(id) == 0) results_[id] = std::move(event);
        changed_.notify_all();
        continue;
      }
      if (type == "hello") {
        if (event.value("version", 0) != PROTOCOL_VERSION)
          throw ChannelError("whatsapp: the bridge speaks protocol version " +
                             std::to_string(event.value("version", 0)) + ", not " +
                             std::to_string(PROTOCOL_VERSION));
        greeted = true;
        std::lock_guard lock(mutex_);
        greeted_ = true;
        startFailed_ = false;
        continue;
      }
      if (!greeted) throw ChannelError("whatsapp: the bridge did not say hello first");
      std::lock_guard lock(mutex_);
      if (type == "connection") {
        std::string state = str(event, "state", 32);
        if (state == "open") backoff.reset();
        open_ = state == "open";
        if (state == "open" || state == "loginRequired" || state == "loggedOut")
          unlinked_ = state != "open";
      }
      events_.push_back(std::move(event));
      changed_.notify_all();
    }
  }

  // Events in order, on a thread of their own: a deliver() that waits on the supervisor never
  // holds up the results outbound calls are waiting for.
  void deliveryLoop(Host& host) {
    for (;;) {
      Json event;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return !events_.empty() || deliveryDone_; });
        if (events_.empty()) return;
        event = std::move(events_.front());
        events_.pop_front();
      }
      try {
        handle(host, event);
      } catch (const Stopping&) {
        return;
      }
    }
  }

  void handle(Host& host, const Json& event) {
    std::string type = str(event, "type", 32);
    if (type == "connection") {
      std::string state = str(event, "state", 32), reason = str(event, "reason", 300);
      if (state == "open")
        host.status(State::CONNECTED, "", identityOf(str(event, "me", 128)));
      else if (state == "connecting")
        host.status(State::STARTING, "connecting to WhatsApp");
      else if (state == "close")
        host.status(State::RECONNECTING, "connection closed: " + reason);
      else if (state == "loggedOut")
        host.status(State::LOGIN_REQUIRED,
                    reason + "; link again with `chitin channels login whatsapp`");
      else if (state == "loginRequired")
        host.status(State::LOGIN_REQUIRED,
                    "not linked: run `chitin channels login whatsapp` and scan the QR code");
    } else if (type == "qr") {
      std::string data = str(event, "data", 4096);
      if (!data.empty()) host.login(data, "");
    } else if (type == "pairingCode") {
      std::string code = str(event, "code", 64);
      if (!code.empty()) host.login("", code);
    } else if (type == "message") {
      std::optional<Inbound> message = inbound(event);
      if (message) host.deliver(std::move(*message));
    }
  }

  std::optional<Inbound> inbound(const Json& event) {
    if (event.value("fromMe", false)) return std::nullopt;  // ours, from the phone or an echo
    Inbound in;
    in.chatId = str(event, "jid", 128);
    in.messageId = str(event, "id", 128);
    in.senderId = str(event, "sender", 128);
    if (!isChatJid(in.chatId) || in.messageId.empty() || in.senderId.empty()) {
      KJ_LOG(WARNING, "whatsapp: dropped a message event without a valid jid, id or sender");
      std::string path = event.contains("media") && event["media"].is_object()
                             ? str(event["media"], "path", 512)
                             : "";
      if (!path.empty()) readMedia(path, 0);  // removes it
      return std::nullopt;
    }
    in.group = in.chatId.size() > 5 && in.chatId.compare(in.chatId.size() - 5, 5, "@g.us") == 0;
    in.senderName = str(event, "pushName", 256);
    in.text = str(event, "text", 1u << 18);
    in.mentioned = event.value("mentioned", false);
    int64_t ts = event.contains("ts") && event["ts"].is_number() ? event["ts"].get<int64_t>() : 0;
    in.timestampMs = ts > 0 && ts < (int64_t(1) << 40) ? ts * 1000 : 0;
    if (event.contains("quoted") && event["quoted"].is_object())
      in.replyTo = str(event["quoted"], "id", 128);
    if (event.contains("media") && event["media"].is_object()) {
      const Json& media = event["media"];
      Attachment a;
      a.name = str(media, "name", 255);
      a.mimeType = str(media, "mime", 127);
      a.size = media.contains("size") && media["size"].is_number_unsigned()
                   ? media["size"].get<uint64_t>()
                   : 0;
      std::string path = str(media, "path", 512);
      if (!path.empty()) a.data = readMedia(path, maxAttachmentBytes_);
      in.attachments.push_back(std::move(a));
    }
    return in;
  }

  // The bytes of an inbound file the bridge wrote (removed afterwards); "" when it is not a
  // plain file directly in our media directory or is larger than `max`.
  std::string readMedia(const std::string& path, uint64_t max) {
    std::string name = path.substr(path.rfind('/') + 1);
    bool ours = path == mediaDir_ + "/" + name && !name.empty() && name[0] != '.';
    std::string data;
    if (!ours) {
      KJ_LOG(WARNING, "whatsapp: the bridge named a media file outside its directory");
      return data;
    }
    int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st {};
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        static_cast<uint64_t>(st.st_size) <= max) {
      data.resize(static_cast<size_t>(st.st_size));
      size_t at = 0;
      while (at < data.size()) {
        ssize_t n = read(fd, data.data() + at, data.size() - at);
        if (n <= 0) break;
        at += static_cast<size_t>(n);
      }
      data.resize(at);
    }
    if (fd >= 0) close(fd);
    unlink(path.c_str());
    return data;
  }

  std::string writeMedia(const Attachment& attachment) {
    std::string path = mediaDir_ + "/out-" + std::to_string(mediaCounter_.fetch_add(1));
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw ChannelError("whatsapp: cannot stage an attachment in /tmp");
    size_t at = 0;
    while (at < attachment.data.size()) {
      ssize_t n = write(fd, attachment.data.data() + at, attachment.data.size() - at);
      if (n <= 0) {
        close(fd);
        unlink(path.c_str());
        throw ChannelError("whatsapp: cannot stage an attachment in /tmp (full?)");
      }
      at += static_cast<size_t>(n);
    }
    close(fd);
    return path;
  }

  // The jid of a chat id: a jid as it is, a phone number ("15551234567", the form sender ids
  // take and the `message` tool sends to) as "<number>@s.whatsapp.net".
  static std::string requireJid(const std::string& chatId) {
    bool number =
        !chatId.empty() && chatId.size() <= 20 &&
        std::all_of(chatId.begin(), chatId.end(), [](char c) { return c >= '0' && c <= '9'; });
    std::string jid = number ? chatId + "@s.whatsapp.net" : chatId;
    if (!isChatJid(jid))
      throw ChannelError("whatsapp: chat id \"" + chatId.substr(0, 80) +
                         "\" is not a phone number or a WhatsApp jid (<number>@s.whatsapp.net, "
                         "<lid>@lid, <id>@g.us)");
    return jid;
  }

  // One command and its result; throws ChannelError with the bridge's complaint. `needsLink`:
  // the command needs WhatsApp connected, and waits for it (LINK_WAIT) unless the account is
  // not linked or the bridge cannot start at all.
  Json call(Json command, bool needsLink) {
    std::shared_ptr<BridgeProcess> bridge;
    uint64_t generation = 0;
    int64_t id = 0;
    {
      std::unique_lock lock(mutex_);
      if (needsLink) {
        changed_.wait_for(lock, LINK_WAIT, [&] {
          return (open_ && bridge_) || unlinked_ || startFailed_ || interrupted_.load();
        });
        if (unlinked_)
          throw ChannelError(
              "whatsapp: not linked to a phone (run `chitin channels login whatsapp`)");
        if (!startFailed_ && !(open_ && bridge_))
          throw ChannelError("whatsapp: not connected to WhatsApp within 20 s");
      }
      if (!bridge_)
        throw ChannelError(
            "whatsapp: the bridge is not running (it is being restarted); try again shortly");
      bridge = bridge_;
      generation = generation_;
      id = nextId_++;
    }
    command["id"] = id;
    bridge->writeLine(dump(command));
    std::unique_lock lock(mutex_);
    bool answered = changed_.wait_for(lock, CALL_TIMEOUT, [&] {
      return results_.count(id) != 0 || generation_ != generation || interrupted_.load();
    });
    auto it = results_.find(id);
    if (it == results_.end()) {
      if (generation_ == generation) abandoned_.insert(id);
      throw ChannelError(answered ? "whatsapp: the bridge restarted before answering"
                                  : "whatsapp: the bridge did not answer within 60 s");
    }
    Json result = std::move(it->second);
    results_.erase(it);
    if (!result.value("ok", false))
      throw ChannelError("whatsapp: " + (str(result, "error", 300).empty()
                                             ? std::string("the bridge refused the command")
                                             : str(result, "error", 300)));
    return result;
  }

  uint64_t maxAttachmentBytes_;
  std::string mediaDir_;
  std::vector<std::string> command_;
  std::atomic<bool> interrupted_{false};
  std::atomic<uint64_t> mediaCounter_{1};

  std::mutex mutex_;
  std::condition_variable changed_;
  std::shared_ptr<BridgeProcess> bridge_;
  bool greeted_ = false;      // the current bridge said hello
  bool startFailed_ = false;  // the last bridge ended without saying hello
  bool open_ = false;         // the current bridge is connected to WhatsApp
  bool unlinked_ = false;     // the last word on the link was loginRequired or loggedOut
  uint64_t generation_ = 0;
  int64_t nextId_ = 1;
  std::map<int64_t, Json> results_;
  std::set<int64_t> abandoned_;  // timed out: their late results are dropped
  std::deque<Json> events_;
  bool deliveryDone_ = false;
};

}  // namespace

std::unique_ptr<Platform> makeWhatsAppWithBridge(Settings& settings, Host& host,
                                                 std::vector<std::string> bridgeCommand) {
  std::string wsUrl = settings.take("wsUrl");
  settings.finish();
  if (!wsUrl.empty()) {
    if (wsUrl.rfind("wss://", 0) != 0 && wsUrl.rfind("ws://", 0) != 0)
      throw ChannelError("whatsapp: option wsUrl must be a ws:// or wss:// URL");
    bridgeCommand.insert(bridgeCommand.end(), {"--ws-url", wsUrl});
  }
  return std::make_unique<WhatsAppPlatform>(settings, std::move(bridgeCommand));
}

std::unique_ptr<Platform> makeWhatsApp(Settings& settings, Host& host) {
  if (access(WHATSAPP_BRIDGE, R_OK) != 0)
    throw ChannelError(std::string("whatsapp: the bridge is not installed at ") + WHATSAPP_BRIDGE +
                       " (it needs Node.js >= 20 and npm at build time: README \"Channels\")");
  // V8's heap capped (the sandbox's RLIMIT_AS cannot be tight: see the profile), and
  // WebAssembly bounds-checked instead of guarded by ~10 GiB reservations per instance.
  return makeWhatsAppWithBridge(
      settings, host,
      {WHATSAPP_NODE, "--max-old-space-size=256", "--max-semi-space-size=2",
       "--disable-wasm-trap-handler", WHATSAPP_BRIDGE});
}

}  // namespace chitin::channel
