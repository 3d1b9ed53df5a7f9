// SPDX-License-Identifier: Apache-2.0
// A WebSocket client (RFC 6455) on Stream: what the Discord gateway and Slack Socket Mode
// speak.
// Runs in: worker (sandboxed)
//
// One thread reads (receive() answers pings and the peer's close on the way); sends may come
// from any thread (they are serialized). No extension is asked for, so frames are never
// compressed and every RSV bit must be zero. Everything the server sends is checked: frames
// are unmasked, control frames short and whole, fragments in order, text valid UTF-8, and a
// message no longer than maxMessageBytes. A violation closes the connection with the RFC's
// code (1002, 1007, 1009) and throws ChannelError naming the peer and the rule.

#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stream.h"

namespace chitin::channel {

struct WebSocketUrl {
  bool tls = false;  // wss
  std::string host;  // without brackets for an IPv6 literal
  uint16_t port = 0;
  std::string target;  // path and query, "/" at least
};

// Parses "ws://host[:port][/path][?query]" or "wss://…"; throws ChannelError naming the text
// (clipped) and what is wrong. Userinfo and fragments are refused.
WebSocketUrl parseWebSocketUrl(std::string_view url);

struct WebSocketOptions {
  std::string egressSocket;           // "" = direct TCP (tests)
  std::string caFile;                 // "" = the system store
  std::vector<std::string> headers;   // extra handshake headers, "Name: value"
  size_t maxMessageBytes = 4u << 20;  // a longer message closes the connection with 1009
  std::chrono::milliseconds connectTimeout{15000};
  std::chrono::milliseconds handshakeTimeout{15000};
};

// The close codes a client may use (RFC 6455 §7.4).
inline constexpr uint16_t WS_NORMAL = 1000;
inline constexpr uint16_t WS_PROTOCOL_ERROR = 1002;
inline constexpr uint16_t WS_NO_STATUS = 1005;  // received only: a close frame without a code
inline constexpr uint16_t WS_ABNORMAL = 1006;   // received only: the TCP stream just ended
inline constexpr uint16_t WS_INVALID_DATA = 1007;
inline constexpr uint16_t WS_TOO_BIG = 1009;

class WebSocket {
 public:
  enum class Kind { TEXT, BINARY, CLOSED };
  struct Message {
    Kind kind = Kind::TEXT;
    std::string data;
    uint16_t closeCode = 0;  // CLOSED: the peer's code, WS_NO_STATUS or WS_ABNORMAL
    std::string closeReason;
  };

  // Connects, upgrades and checks Sec-WebSocket-Accept. Throws ChannelError naming the host
  // and what failed (the HTTP status line when the server did not switch protocols).
  static std::unique_ptr<WebSocket> connect(std::string_view url, const WebSocketOptions& options);
  ~WebSocket();

  // The next whole message; nullopt when `timeout` passes first (a partly read frame stays
  // buffered for the next call). CLOSED once the peer closed (its close was answered) or the
  // stream ended; every later call returns CLOSED again. Throws StreamInterrupted after
  // interrupt().
  std::optional<Message> receive(std::chrono::milliseconds timeout);

  void sendText(std::string_view text);
  void sendBinary(std::string_view bytes);
  void ping(std::string_view payload = {});

  // Sends a close frame (once) and waits up to `wait` for the peer's, discarding data that
  // arrives meanwhile. Never throws: a connection being dropped may already be dead.
  void close(uint16_t code, std::string_view reason,
             std::chrono::milliseconds wait = std::chrono::milliseconds(1000));

  // From any thread: wakes a blocked receive() (StreamInterrupted) and ends the connection.
  void interrupt();

  const std::string& peer() const;
  // When bytes last arrived (pings included, which receive() answers without returning):
  // a reader that wants to notice a silent, half-dead connection compares this with now.
  std::chrono::steady_clock::time_point lastReceived() const { return lastReceived_; }

 private:
  WebSocket(std::unique_ptr<Stream> stream, std::string peer, size_t maxMessageBytes);
  void handshake(const WebSocketUrl& url, const WebSocketOptions& options);
  void sendFrame(uint8_t opcode, std::string_view payload);
  // A frame from the buffer, reading more until `deadline`; false when it passed first.
  bool readFrame(std::chrono::steady_clock::time_point deadline, uint8_t& opcode, bool& fin,
                 std::string& payload);
  bool fill(std::chrono::steady_clock::time_point deadline);
  [[noreturn]] void fail(uint16_t code, const std::string& why);

  std::unique_ptr<Stream> stream_;
  std::string peer_;
  size_t maxMessageBytes_;
  std::string in_;       // received bytes not yet parsed
  std::string partial_;  // a fragmented message so far
  uint8_t partialOpcode_ = 0;
  bool closeSent_ = false;
  bool closed_ = false;
  uint16_t closedCode_ = WS_ABNORMAL;
  std::string closedReason_;
  std::chrono::steady_clock::time_point lastReceived_ = std::chrono::steady_clock::now();
  std::mutex writeMutex_;
};

}  // namespace chitin::channel
