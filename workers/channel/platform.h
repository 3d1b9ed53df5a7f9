// SPDX-License-Identifier: Apache-2.0
// What a chat platform implements to become a chitin channel worker, and what the worker
// framework offers it in return.
// Runs in: worker (sandboxed)
//
// A channel worker is one process per configured account (`chitin-worker-channel-<kind>`). The
// framework (channel-worker.c++) serves `ChannelWorker` (proto/channel.capnp) on the RPC thread
// and runs the platform on two threads of its own:
//   - the receive thread calls Platform::run(): connect, read, hand each message to
//     Host::deliver(), reconnect with jittered backoff (Backoff below) on transient failures;
//   - the outbound thread calls send()/typing()/react()/login(), one at a time, in order.
// Both may block (libcurl, Stream). Neither ever touches Cap'n Proto: Host does the crossing.
//
// Everything a platform receives is attacker-controlled bytes from the internet: parse with
// bounds, never trust a size or an id, and drop (with a log line) what does not parse rather
// than failing the whole connection where the platform allows it.

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace chitin::channel {

// Inside the sandbox: the egress broker's SOCKS5 socket and the account's state directory.
inline constexpr const char* EGRESS_SOCKET_IN_SANDBOX = "/run/chitin/egress.sock";
inline constexpr const char* STATE_DIR_IN_SANDBOX = "/state";

struct Attachment {
  std::string name;
  std::string mimeType;
  std::string data;   // bytes; empty when over Settings::maxAttachmentBytes (size says how big)
  uint64_t size = 0;  // the platform's stated size
};

struct Inbound {
  std::string chatId;  // where a reply goes
  bool group = false;  // a group chat / channel, not a direct message
  std::string senderId;
  std::string senderName;
  std::string messageId;
  std::string text;
  std::string replyTo;
  std::string threadId;
  bool mentioned = false;  // group chats: the platform's own mention signal (entities, mentions[])
  std::vector<Attachment> attachments;
  int64_t timestampMs = 0;
};

struct Outbound {
  std::string chatId;
  std::string text;  // Markdown (format.h converts it to the platform's own format)
  std::string replyTo;
  std::string threadId;
  std::vector<Attachment> attachments;
};

enum class State { STARTING, CONNECTED, RECONNECTING, LOGIN_REQUIRED, FAILED, STOPPED };

struct Capabilities {
  uint32_t maxMessageChars = 4000;
  bool reactions = false;
  bool typing = false;
  bool attachments = false;
};

// A platform's error for people: thrown by send/typing/react and by the factory. `what()` is
// shown to the owner (`chitin channels status`, a failed reply): never put the credential in it.
class ChannelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The account's settings, from ChannelWorker.start.
struct Settings {
  std::string kind;
  std::string account;
  std::string credential;  // secret; never logged, never in an error message
  std::string egressSocket = EGRESS_SOCKET_IN_SANDBOX;  // "" = direct TCP (tests outside a sandbox)
  std::string stateDir = STATE_DIR_IN_SANDBOX;
  uint64_t maxAttachmentBytes = 20u << 20;
  std::map<std::string, std::string> options;

  // Reads an option and marks it used. Platforms read every key they know in their factory and
  // then call finish(), which throws ChannelError naming the first unknown key.
  std::string take(const std::string& key, const std::string& fallback = "");
  // A whole number in [min, max]; otherwise ChannelError naming the key and the range.
  int64_t takeInt(const std::string& key, int64_t fallback, int64_t min, int64_t max);
  bool takeBool(const std::string& key, bool fallback);  // "true"/"false"/"1"/"0"/"yes"/"no"
  void finish() const;

 private:
  std::map<std::string, bool> used_;
};

// What a platform calls back. Thread-safe: called from the receive and outbound threads.
class Host {
 public:
  virtual ~Host() = default;

  // Hands one message to the supervisor and waits until it has been recorded. true: new,
  // false: a duplicate the supervisor already has (skip it, but do advance past it). Only after
  // this returns may the platform persist its progress (offset, UID), so that a crash between
  // the two redelivers and nothing is lost. Throws Stopping when the worker shuts down.
  virtual bool deliver(Inbound message) = 0;

  // The connection's state for `chitin channels status`; `identity` is who the account is on
  // the platform ("@chitin_bot"), kept from the last call that gave one.
  virtual void status(State state, const std::string& detail, const std::string& identity = "") = 0;

  // WhatsApp: a QR payload or pairing code for the owner.
  virtual void login(const std::string& qr, const std::string& pairingCode) = 0;

  // Waits up to `d`; returns false at once when the worker is stopping (use for backoff and
  // rate-limit waits so shutdown is never delayed).
  virtual bool sleepFor(std::chrono::milliseconds d) = 0;
  virtual bool stopping() const = 0;
};

// Thrown by Host::deliver once the worker is stopping; run() lets it propagate or returns.
struct Stopping {};

class Platform {
 public:
  virtual ~Platform() = default;

  virtual Capabilities capabilities() const = 0;

  // The receive side, on its own thread: returns when host.stopping() (after interrupt()), or
  // after reporting State::FAILED for an error retrying cannot fix (a revoked token, a fatal
  // close code).
  virtual void run(Host& host) = 0;

  // Called from another thread at shutdown: makes a blocking run() return promptly (close the
  // stream, wake libcurl).
  virtual void interrupt() = 0;

  // Outbound, on the outbound thread. Waits out rate limits (429 retry_after, buckets) up to a
  // minute; throws ChannelError with the platform's complaint otherwise. send() returns the
  // platform ids of what it posted (one per chunk and attachment).
  virtual std::vector<std::string> send(const Outbound& message) = 0;
  virtual void typing(const std::string& chatId, bool on) = 0;
  virtual void react(const std::string& chatId, const std::string& messageId,
                     const std::string& emoji) = 0;
  virtual void login(const std::string& phoneNumber) {
    throw ChannelError("login: this channel has no interactive login");
  }
};

// Builds a platform from its settings (reads its options, then settings.finish()). Throws
// ChannelError for invalid settings.
// (A std::function so that tests can capture; a plain function such as makeTelegram converts.)
using PlatformFactory = std::function<std::unique_ptr<Platform>(Settings& settings, Host& host)>;

// The worker's main(): runWorker() with a ChannelWorker bootstrap that builds the platform on
// `start` and runs it. `kind` is the worker kind ("channel-telegram"). Before any thread and
// before the lockdown it sets up libcurl's and OpenSSL's global state, which every platform
// that reaches its servers itself needs (network-main.c++).
int workerMain(int argc, char** argv, const char* kind, PlatformFactory factory);
// The same for a platform that reaches no network itself (WhatsApp: its bridge child does).
// Its binary then loads neither libcurl nor OpenSSL, nor their two dozen dependencies (an idle
// WhatsApp adapter: ~2.5 MiB less private memory).
int localWorkerMain(int argc, char** argv, const char* kind, PlatformFactory factory);

// Reconnect delays: exponential from `initial` to `max`, each with full jitter (uniformly in
// [d/2, d]) so a fleet of workers does not reconnect in step. reset() after a success.
class Backoff {
 public:
  explicit Backoff(std::chrono::milliseconds initial = std::chrono::milliseconds(500),
                   std::chrono::milliseconds max = std::chrono::seconds(60));
  std::chrono::milliseconds next();
  void reset();

 private:
  std::chrono::milliseconds initial_, max_, current_;
  std::mt19937_64 random_;
};

}  // namespace chitin::channel
