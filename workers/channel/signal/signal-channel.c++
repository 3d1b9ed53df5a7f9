// SPDX-License-Identifier: Apache-2.0
// The Signal channel over signal-cli's HTTP daemon (see signal-channel.h).
// Runs in: worker (sandboxed)

#include "signal-channel.h"

#include <kj/debug.h>

#include <atomic>
#include <exception>

#include "format.h"
#include "http-client.h"
#include "json-bounds.h"
#include "signal-wire.h"
#include "sse.h"
#include "stream.h"

namespace chitin::channel {

namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// Signal's apps cut a long message into a "long text" attachment past about 2000 characters;
// signal-cli does the same, so 4000 still reads as one message and keeps replies few.
constexpr uint32_t MAX_MESSAGE_CHARS = 4000;
constexpr size_t MAX_EVENT_BYTES = 4u << 20;
// A send waits out signal-cli's rate-limit answers for at most this long in all.
constexpr milliseconds RATE_LIMIT_BUDGET = seconds(60);

struct Options {
  std::string url;  // without a trailing '/'
  SignalSelf self;
  milliseconds idleTimeout{45000};
  uint64_t maxAttachmentBytes = 0;
};

std::string dump(const Json& value) {
  // Invalid UTF-8 from a model or a file name is replaced, never a reason to throw.
  return value.dump(-1, ' ', false, Json::error_handler_t::replace);
}

class SignalPlatform final : public Platform {
 public:
  SignalPlatform(Options options, const std::string& egressSocket, Host& host)
      : options_(std::move(options)),
        host_(host),
        events_(egressSocket),
        fetches_(egressSocket),
        outbound_(egressSocket) {}

  Capabilities capabilities() const override {
    return {MAX_MESSAGE_CHARS, /*reactions=*/true, /*typing=*/true, /*attachments=*/true};
  }

  void run(Host& host) override {
    Backoff backoff;
    while (!host.stopping()) {
      try {
        HttpRequest check;
        check.url = options_.url + "/api/v1/check";
        check.timeout = seconds(10);
        long status = events_.perform(check).status;
        if (status != 200)
          throw ChannelError("signal-cli at " + options_.url +
                             " answered /api/v1/check with HTTP " + std::to_string(status));
        host.status(State::CONNECTED, "", options_.self.number);
        streamEvents(host, backoff);
        throw ChannelError("signal-cli closed the event stream");
      } catch (const StreamInterrupted&) {
        return;
      } catch (const ChannelError& e) {
        if (host.stopping()) return;
        milliseconds wait = backoff.next();
        host.status(State::RECONNECTING, std::string(e.what()) + "; retrying in " +
                                             std::to_string(wait.count()) + " ms");
        if (!host.sleepFor(wait)) return;
      }
    }
  }

  void interrupt() override {
    events_.interrupt();
    fetches_.interrupt();
    outbound_.interrupt();
  }

  std::vector<std::string> send(const Outbound& message) override {
    Json target = signalTarget(message.chatId);
    std::string plain = convertMarkdown(message.text, Format::PLAIN);
    std::vector<std::string> chunks;
    if (!plain.empty()) chunks = chunkText(plain, MAX_MESSAGE_CHARS, Unit::CODE_POINTS);
    if (chunks.empty() && message.attachments.empty())
      throw ChannelError("signal: nothing to send (no text and no attachment)");
    std::vector<std::string> ids;
    for (size_t i = 0; i < std::max<size_t>(chunks.size(), 1); i++) {
      Json params = target;
      if (i < chunks.size()) params["message"] = chunks[i];
      if (i == 0) {  // the first message carries the files and the quote
        if (!message.attachments.empty()) {
          Json files = Json::array();
          for (const auto& a : message.attachments) files.push_back(signalDataUri(a));
          params["attachments"] = std::move(files);
        }
        std::string author;
        int64_t timestamp = 0;
        if (!message.replyTo.empty() && parseSignalMessageId(message.replyTo, author, timestamp)) {
          params["quoteTimestamp"] = timestamp;
          params["quoteAuthor"] = author;
        }
      }
      Json result = rpc(outbound_, "send", std::move(params));
      int64_t timestamp = result.is_object() && result.contains("timestamp") &&
                                  result["timestamp"].is_number_integer()
                              ? result["timestamp"].get<int64_t>()
                              : 0;
      ids.push_back(signalMessageId(options_.self.number, timestamp));
    }
    return ids;
  }

  void typing(const std::string& chatId, bool on) override {
    Json params = signalTarget(chatId);
    if (!on) params["stop"] = true;
    rpc(outbound_, "sendTyping", std::move(params));
  }

  void react(const std::string& chatId, const std::string& messageId,
             const std::string& emoji) override {
    std::string author;
    int64_t timestamp = 0;
    if (!parseSignalMessageId(messageId, author, timestamp))
      throw ChannelError("signal: message id \"" + messageId.substr(0, 80) +
                         "\" is not <author>:<timestamp>");
    Json params = signalTarget(chatId);
    params["emoji"] = emoji;
    params["targetAuthor"] = author;
    params["targetTimestamp"] = timestamp;
    rpc(outbound_, "sendReaction", std::move(params));
  }

 private:
  // One JSON-RPC call; its result. Waits out rate limits (error -5) within RATE_LIMIT_BUDGET.
  Json rpc(HttpClient& client, const char* method, Json params, size_t maxResponse = 1u << 20) {
    params["account"] = options_.self.number;  // names the account to a multi-account daemon
    HttpRequest request;
    request.method = "POST";
    request.url = options_.url + "/api/v1/rpc";
    request.headers = {"Content-Type: application/json"};
    request.timeout = seconds(60);
    request.maxResponseBytes = maxResponse;
    milliseconds waited{0};
    for (;;) {
      request.body = dump({{"jsonrpc", "2.0"},
                           {"method", method},
                           {"params", params},
                           {"id", nextId_.fetch_add(1)}});
      HttpResponse response = client.perform(request);
      if (response.status == 421)
        throw ChannelError(
            "signal-cli refused the Host header: `url` must name the address the "
            "daemon listens on (" +
            options_.url + ")");
      if (response.status != 200)
        throw ChannelError("signal-cli " + std::string(method) + ": HTTP " +
                           std::to_string(response.status));
      if (!checkJsonBounds(response.body, {maxResponse, 32}, "reply").empty())
        throw ChannelError("signal-cli " + std::string(method) + ": reply nested too deeply");
      Json reply = Json::parse(response.body, nullptr, false);
      if (!reply.is_object())
        throw ChannelError("signal-cli " + std::string(method) + ": not a JSON-RPC reply");
      auto error = reply.find("error");
      if (error == reply.end() || error->is_null()) return reply.value("result", Json());
      int64_t retry = signalRetryAfterSeconds(*error);
      bool rateLimited = error->is_object() && error->value("code", 0) == -5;
      milliseconds wait = seconds(std::max<int64_t>(retry, 1));
      if (!rateLimited || waited + wait > RATE_LIMIT_BUDGET)
        throw ChannelError(signalRpcError(method, *error));
      if (!host_.sleepFor(wait)) throw Stopping{};
      waited += wait;
    }
  }

  void streamEvents(Host& host, Backoff& backoff) {
    SseParser parser(MAX_EVENT_BYTES);
    std::exception_ptr failure;  // exceptions must not cross libcurl's C callback
    bool tooLarge = false;
    HttpRequest request;
    // Our number in the query: a multi-account daemon streams only this account's envelopes.
    request.url = options_.url + "/api/v1/events?account=%2B" + options_.self.number.substr(1);
    request.headers = {"Accept: text/event-stream"};
    request.timeout = options_.idleTimeout;
    request.onBody = [&](std::string_view bytes) {
      backoff.reset();  // the stream is up: the next drop reconnects quickly
      try {
        auto status = parser.feed(bytes, [&](const SseEvent& event) {
          if (event.event == "receive") receive(host, event.data);
          return true;
        });
        if (status == SseParser::Status::tooLarge) tooLarge = true;
        return status == SseParser::Status::ok;
      } catch (...) {
        failure = std::current_exception();
        return false;
      }
    };
    HttpResponse response = events_.perform(request);
    if (failure) std::rethrow_exception(failure);
    if (tooLarge) throw ChannelError("an event from signal-cli is larger than 4 MiB");
    if (response.status == 400)
      throw ChannelError("signal-cli does not know the account " + options_.self.number);
    if (response.status != 200)
      throw ChannelError("signal-cli /api/v1/events: HTTP " + std::to_string(response.status));
  }

  void receive(Host& host, const std::string& data) {
    std::string why;
    auto received = parseReceiveEvent(data, options_.self, why);
    if (!received) {
      if (!why.empty()) KJ_LOG(WARNING, "signal: dropped an event", why);
      return;
    }
    for (const auto& ref : received->attachments) {
      Attachment attachment{ref.name, ref.mimeType, "", ref.size};
      if (ref.size <= options_.maxAttachmentBytes)
        attachment.data = fetchAttachment(*received, ref);
      received->message.attachments.push_back(std::move(attachment));
    }
    host.deliver(std::move(received->message));
  }

  // The bytes of one inbound attachment, "" when the daemon does not have them (started with
  // --ignore-attachments) or they exceed the cap after all.
  std::string fetchAttachment(const SignalReceived& received, const SignalAttachmentRef& ref) {
    Json params = {{"id", ref.id}};
    if (received.groupId.empty())
      params["recipient"] = received.senderAddress;
    else
      params["groupId"] = received.groupId;
    try {
      Json result = rpc(fetches_, "getAttachment", std::move(params),
                        options_.maxAttachmentBytes / 3 * 4 + 4096);
      auto data = result.is_object() && result.contains("data") && result["data"].is_string()
                      ? signalBase64Decode(result["data"].get_ref<const std::string&>())
                      : std::nullopt;
      if (data && data->size() <= options_.maxAttachmentBytes) return std::move(*data);
      KJ_LOG(WARNING, "signal: getAttachment returned no usable data", ref.id);
    } catch (const ChannelError& e) {
      KJ_LOG(WARNING, "signal: attachment not fetched", ref.id, e.what());
    }
    return "";
  }

  Options options_;
  Host& host_;
  HttpClient events_;    // the receive thread's event stream
  HttpClient fetches_;   // the receive thread's getAttachment calls (the stream is busy)
  HttpClient outbound_;  // the outbound thread's send/typing/react
  std::atomic<int64_t> nextId_{1};
};

std::vector<std::string> splitNames(const std::string& list) {
  std::vector<std::string> names;
  size_t at = 0;
  while (at <= list.size()) {
    size_t comma = list.find(',', at);
    if (comma == std::string::npos) comma = list.size();
    std::string name = list.substr(at, comma - at);
    name.erase(0, name.find_first_not_of(" @"));
    name.erase(name.find_last_not_of(' ') + 1);
    if (!name.empty()) names.push_back(name);
    at = comma + 1;
  }
  return names;
}

}  // namespace

std::unique_ptr<Platform> makeSignal(Settings& settings, Host& host) {
  Options options;
  options.url = settings.take("url");
  options.self.number = settings.take("account");
  options.self.uuid = settings.take("accountUuid");
  options.self.mentionNames = splitNames(settings.take("mentionNames"));
  options.idleTimeout = seconds(settings.takeInt("idleTimeoutSeconds", 45, 20, 3600));
  options.maxAttachmentBytes = settings.maxAttachmentBytes;
  settings.finish();
  if (options.url.rfind("http://", 0) != 0 && options.url.rfind("https://", 0) != 0)
    throw ChannelError(
        "signal: option url must be the signal-cli daemon's http:// or https:// "
        "address, e.g. http://127.0.0.1:8080");
  while (!options.url.empty() && options.url.back() == '/') options.url.pop_back();
  if (!isSignalNumber(options.self.number))
    throw ChannelError(
        "signal: option account must be the account's number in international "
        "form, e.g. +15551234567");
  if (!options.self.uuid.empty() && !isSignalUuid(options.self.uuid))
    throw ChannelError("signal: option accountUuid must be the account's ACI, a UUID");
  return std::make_unique<SignalPlatform>(std::move(options), settings.egressSocket, host);
}

}  // namespace chitin::channel
