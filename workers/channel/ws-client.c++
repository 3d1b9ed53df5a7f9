// SPDX-License-Identifier: Apache-2.0
// A WebSocket client (RFC 6455) on Stream: handshake, framing, control frames, close.
// Runs in: worker (sandboxed)

#include "ws-client.h"

#include <openssl/evp.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "platform.h"
#include "utf8.h"

namespace chitin::channel {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr size_t MAX_HANDSHAKE_BYTES = 16384;

enum Opcode : uint8_t {
  CONTINUATION = 0x0,
  TEXT = 0x1,
  BINARY = 0x2,
  CLOSE = 0x8,
  PING = 0x9,
  PONG = 0xA,
};

void randomBytes(uint8_t* out, size_t n) {
  while (n > 0) {
    ssize_t got = getrandom(out, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw ChannelError(std::string("websocket: getrandom: ") + strerror(errno));
    }
    out += got;
    n -= static_cast<size_t>(got);
  }
}

std::string base64(const unsigned char* bytes, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

std::string acceptFor(const std::string& key) {
  std::string joined = key + std::string(ACCEPT_GUID);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(joined.data(), joined.size(), digest, &len, EVP_sha1(), nullptr) != 1) {
    throw ChannelError("websocket: SHA-1 unavailable");
  }
  return base64(digest, len);
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return std::string(s.substr(b, e - b + 1));
}

// Whether a comma-separated header value holds `token` (case-insensitive): "keep-alive, Upgrade".
bool hasToken(std::string_view value, std::string_view token) {
  std::string v = lower(value);
  size_t start = 0;
  while (start <= v.size()) {
    size_t comma = v.find(',', start);
    if (trim(std::string_view(v).substr(start, comma - start)) == token) return true;
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return false;
}

bool validUtf8(std::string_view s) {
  return isValidUtf8(kj::ArrayPtr<const char>(s.data(), s.size()));
}

// Close codes a peer may send (§7.4.1, §7.4.2): 1004-1006 and 1015 are reserved for reporting.
bool validCloseCode(uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

}  // namespace

WebSocketUrl parseWebSocketUrl(std::string_view url) {
  auto bad = [&](const char* why) -> ChannelError {
    return ChannelError("websocket URL \"" + clipUtf8(url, 80) + "\": " + why);
  };
  WebSocketUrl out;
  std::string_view rest;
  if (url.substr(0, 5) == "ws://") {
    rest = url.substr(5);
  } else if (url.substr(0, 6) == "wss://") {
    out.tls = true;
    rest = url.substr(6);
  } else {
    throw bad("expected ws:// or wss://");
  }
  if (rest.find('#') != std::string_view::npos) throw bad("a fragment is not allowed");
  size_t slash = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, slash);
  out.target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.target[0] == '?') out.target.insert(0, "/");
  if (authority.find('@') != std::string_view::npos) throw bad("user info is not allowed");
  std::string_view portText;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) throw bad("unclosed [ in the host");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') throw bad("expected :port after ]");
      portText = after.substr(1);
    }
  } else {
    size_t colon = authority.find(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) portText = authority.substr(colon + 1);
  }
  if (out.host.empty()) throw bad("no host");
  for (char c : out.host) {
    if (static_cast<unsigned char>(c) <= ' ' || c == '/' || c == '\\') throw bad("bad host");
  }
  out.port = out.tls ? 443 : 80;
  if (!portText.empty() || authority.back() == ':') {
    if (portText.empty() || portText.size() > 5) throw bad("bad port");
    unsigned long port = 0;
    for (char c : portText) {
      if (c < '0' || c > '9') throw bad("bad port");
      port = port * 10 + static_cast<unsigned long>(c - '0');
    }
    if (port == 0 || port > 65535) throw bad("port out of range");
    out.port = static_cast<uint16_t>(port);
  }
  for (char c : out.target) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      throw bad("control or space in the path");
  }
  return out;
}

WebSocket::WebSocket(std::unique_ptr<Stream> stream, std::string peer, size_t maxMessageBytes)
    : stream_(std::move(stream)), peer_(std::move(peer)), maxMessageBytes_(maxMessageBytes) {}

WebSocket::~WebSocket() = default;

const std::string& WebSocket::peer() const { return peer_; }

std::unique_ptr<WebSocket> WebSocket::connect(std::string_view url,
                                              const WebSocketOptions& options) {
  WebSocketUrl parsed = parseWebSocketUrl(url);
  StreamOptions streamOptions;
  streamOptions.egressSocket = options.egressSocket;
  streamOptions.tls = parsed.tls;
  streamOptions.caFile = options.caFile;
  streamOptions.connectTimeout = options.connectTimeout;
  auto stream = Stream::open(parsed.host, parsed.port, streamOptions);
  std::string peer = stream->peer();
  std::unique_ptr<WebSocket> ws(new WebSocket(std::move(stream), peer, options.maxMessageBytes));
  ws->handshake(parsed, options);
  return ws;
}

void WebSocket::handshake(const WebSocketUrl& url, const WebSocketOptions& options) {
  uint8_t nonce[16];
  randomBytes(nonce, sizeof nonce);
  std::string key = base64(nonce, sizeof nonce);
  bool ipv6 = url.host.find(':') != std::string::npos;
  std::string host = ipv6 ? "[" + url.host + "]" : url.host;
  if (url.port != (url.tls ? 443 : 80)) host += ":" + std::to_string(url.port);
  std::string request = "GET " + url.target + " HTTP/1.1\r\nHost: " + host +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: " +
                        key + "\r\nSec-WebSocket-Version: 13\r\n";
  for (const auto& header : options.headers) {
    if (header.find_first_of("\r\n") != std::string::npos) {
      throw ChannelError("websocket " + peer_ + ": a handshake header holds a line break");
    }
    request += header + "\r\n";
  }
  request += "\r\n";
  stream_->writeAll(request);

  // Read up to the blank line ourselves: the server may send its first frame in the same
  // packet, and those bytes must stay in in_.
  auto deadline = Clock::now() + options.handshakeTimeout;
  size_t end;
  while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
    if (in_.size() > MAX_HANDSHAKE_BYTES) {
      throw ChannelError("websocket " + peer_ + ": handshake response headers over 16 KiB");
    }
    if (!fill(deadline))
      throw ChannelError("websocket " + peer_ + ": no handshake response in time");
    if (closed_) throw ChannelError("websocket " + peer_ + ": closed during the handshake");
  }
  std::string head = in_.substr(0, end);
  in_.erase(0, end + 4);

  size_t lineEnd = head.find("\r\n");
  std::string status = head.substr(0, lineEnd);
  if (status.rfind("HTTP/1.1 101", 0) != 0) {
    throw ChannelError("websocket " + peer_ + ": the server answered \"" + clipUtf8(status, 80) +
                       "\" instead of switching protocols");
  }
  std::string upgrade, connection, accept, extensions, protocol;
  size_t pos = lineEnd == std::string::npos ? head.size() : lineEnd + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    if (next == std::string::npos) next = head.size();
    std::string_view line(head.data() + pos, next - pos);
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string name = lower(trim(line.substr(0, colon)));
      std::string value = trim(line.substr(colon + 1));
      if (name == "upgrade") upgrade = value;
      if (name == "connection") connection = value;
      if (name == "sec-websocket-accept") accept = value;
      if (name == "sec-websocket-extensions") extensions = value;
      if (name == "sec-websocket-protocol") protocol = value;
    }
    pos = next + 2;
  }
  auto refuse = [&](const char* why) {
    throw ChannelError("websocket " + peer_ + ": handshake refused: " + why);
  };
  if (lower(upgrade) != "websocket") refuse("no \"Upgrade: websocket\"");
  if (!hasToken(connection, "upgrade")) refuse("no \"Connection: Upgrade\"");
  if (accept != acceptFor(key)) refuse("Sec-WebSocket-Accept does not match our key");
  // We asked for no extension and no subprotocol; a server that imposes one would change the
  // framing under us (permessage-deflate sets RSV1).
  if (!extensions.empty()) refuse("the server chose an extension we did not offer");
  if (!protocol.empty()) refuse("the server chose a subprotocol we did not offer");
}

bool WebSocket::fill(Clock::time_point deadline) {
  auto now = Clock::now();
  if (now >= deadline) return false;
  char buffer[16384];
  size_t n;
  try {
    n = stream_->read(buffer, sizeof buffer,
                      std::chrono::duration_cast<milliseconds>(deadline - now) + milliseconds(1));
  } catch (const StreamTimeout&) {
    return false;
  }
  if (n == 0) {
    closed_ = true;  // the TCP stream ended: 1006 unless a close frame told us otherwise
    return true;
  }
  in_.append(buffer, n);
  lastReceived_ = Clock::now();
  return true;
}

void WebSocket::fail(uint16_t code, const std::string& why) {
  // The offending bytes stay unparsed: nothing more is read from this connection.
  in_.clear();
  closed_ = true;
  closedCode_ = code;
  if (!closeSent_) {
    closeSent_ = true;
    std::string body{static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
    try {
      sendFrame(CLOSE, body);
    } catch (...) {
      // Already broken; the error below says why we gave up.
    }
  }
  throw ChannelError("websocket " + peer_ + ": " + why);
}

bool WebSocket::readFrame(Clock::time_point deadline, uint8_t& opcode, bool& fin,
                          std::string& payload) {
  for (;;) {
    if (in_.size() >= 2) {
      auto byte = [&](size_t i) { return static_cast<uint8_t>(in_[i]); };
      uint8_t b0 = byte(0), b1 = byte(1);
      if (b0 & 0x70) fail(WS_PROTOCOL_ERROR, "a frame with RSV bits set (no extension was agreed)");
      if (b1 & 0x80) fail(WS_PROTOCOL_ERROR, "a masked frame from the server");
      fin = (b0 & 0x80) != 0;
      opcode = b0 & 0x0F;
      uint64_t length = b1 & 0x7F;
      size_t header = 2;
      if (length == 126) {
        header = 4;
        if (in_.size() < header) goto more;
        length = (uint64_t{byte(2)} << 8) | byte(3);
      } else if (length == 127) {
        header = 10;
        if (in_.size() < header) goto more;
        length = 0;
        for (size_t i = 2; i < 10; ++i) length = (length << 8) | byte(i);
        if (length >> 63) fail(WS_PROTOCOL_ERROR, "a frame length with the top bit set");
      }
      bool control = opcode & 0x08;
      if (control && (length > 125 || !fin)) {
        fail(WS_PROTOCOL_ERROR, "a control frame longer than 125 bytes or fragmented");
      }
      // Refuse an oversized message from its header, before buffering the payload.
      uint64_t soFar = control ? 0 : partial_.size();
      if (length > maxMessageBytes_ || soFar + length > maxMessageBytes_) {
        fail(WS_TOO_BIG, "a message over the " + std::to_string(maxMessageBytes_) + "-byte bound");
      }
      if (in_.size() >= header + length) {
        payload.assign(in_, header, static_cast<size_t>(length));
        in_.erase(0, header + static_cast<size_t>(length));
        return true;
      }
    }
  more:
    if (closed_) return true;  // caller sees closed_ and reports 1006
    if (!fill(deadline)) return false;
  }
}

std::optional<WebSocket::Message> WebSocket::receive(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    if (closed_) {
      Message m;
      m.kind = Kind::CLOSED;
      m.closeCode = closedCode_;
      m.closeReason = closedReason_;
      return m;
    }
    uint8_t opcode = 0;
    bool fin = false;
    std::string payload;
    if (!readFrame(deadline, opcode, fin, payload)) return std::nullopt;
    if (closed_) continue;  // the stream ended mid-frame or between frames
    switch (opcode) {
      case PING:
        sendFrame(PONG, payload);
        continue;
      case PONG:
        continue;
      case CLOSE: {
        uint16_t code = WS_NO_STATUS;
        std::string reason;
        if (payload.size() == 1) fail(WS_PROTOCOL_ERROR, "a close frame with a 1-byte body");
        if (payload.size() >= 2) {
          code = static_cast<uint16_t>((static_cast<uint8_t>(payload[0]) << 8) |
                                       static_cast<uint8_t>(payload[1]));
          reason = payload.substr(2);
          if (!validCloseCode(code)) {
            fail(WS_PROTOCOL_ERROR, "a close frame with code " + std::to_string(code));
          }
          if (!validUtf8(reason)) fail(WS_INVALID_DATA, "a close reason that is not UTF-8");
        }
        // Answer with the same code (§5.5.1) unless we started the close; then the TCP
        // connection is the server's to end.
        if (!closeSent_) {
          std::string body;
          if (code != WS_NO_STATUS) {
            body.push_back(static_cast<char>(code >> 8));
            body.push_back(static_cast<char>(code & 0xFF));
          }
          try {
            sendFrame(CLOSE, body);
          } catch (const ChannelError&) {
            // The peer may already be gone; its close has been read either way.
          }
          closeSent_ = true;
        }
        closed_ = true;
        closedCode_ = code;
        closedReason_ = reason;
        continue;
      }
      case TEXT:
      case BINARY:
        if (partialOpcode_ != 0) fail(WS_PROTOCOL_ERROR, "a new message inside a fragmented one");
        if (fin) {
          if (opcode == TEXT && !validUtf8(payload))
            fail(WS_INVALID_DATA, "a text message that is not UTF-8");
          Message m;
          m.kind = opcode == TEXT ? Kind::TEXT : Kind::BINARY;
          m.data = std::move(payload);
          return m;
        }
        partialOpcode_ = opcode;
        partial_ = std::move(payload);
        continue;
      case CONTINUATION: {
        if (partialOpcode_ == 0)
          fail(WS_PROTOCOL_ERROR, "a continuation frame with no message to continue");
        partial_ += payload;
        if (!fin) continue;
        if (partialOpcode_ == TEXT && !validUtf8(partial_)) {
          fail(WS_INVALID_DATA, "a text message that is not UTF-8");
        }
        Message m;
        m.kind = partialOpcode_ == TEXT ? Kind::TEXT : Kind::BINARY;
        m.data = std::move(partial_);
        partial_.clear();
        partialOpcode_ = 0;
        return m;
      }
      default:
        fail(WS_PROTOCOL_ERROR, "unknown opcode " + std::to_string(opcode));
    }
  }
}

void WebSocket::sendFrame(uint8_t opcode, std::string_view payload) {
  std::string frame;
  frame.reserve(payload.size() + 14);
  frame.push_back(static_cast<char>(0x80 | opcode));
  if (payload.size() < 126) {
    frame.push_back(static_cast<char>(0x80 | payload.size()));
  } else if (payload.size() <= 0xFFFF) {
    frame.push_back(static_cast<char>(0x80 | 126));
    frame.push_back(static_cast<char>(payload.size() >> 8));
    frame.push_back(static_cast<char>(payload.size() & 0xFF));
  } else {
    frame.push_back(static_cast<char>(0x80 | 127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      frame.push_back(static_cast<char>((static_cast<uint64_t>(payload.size()) >> shift) & 0xFF));
    }
  }
  // Every client frame is masked with a fresh unpredictable key (§5.3), so a script cannot
  // choose the bytes an intermediary sees.
  uint8_t mask[4];
  randomBytes(mask, sizeof mask);
  frame.append(reinterpret_cast<const char*>(mask), 4);
  size_t start = frame.size();
  frame.append(payload);
  for (size_t i = 0; i < payload.size(); ++i) frame[start + i] ^= static_cast<char>(mask[i & 3]);
  std::lock_guard<std::mutex> lock(writeMutex_);
  try {
    stream_->writeAll(frame);
  } catch (const StreamTimeout&) {
    throw ChannelError("websocket " + peer_ + ": the peer took no data for 30 s");
  }
}

void WebSocket::sendText(std::string_view text) {
  if (closeSent_) throw ChannelError("websocket " + peer_ + ": send after close");
  sendFrame(TEXT, text);
}

void WebSocket::sendBinary(std::string_view bytes) {
  if (closeSent_) throw ChannelError("websocket " + peer_ + ": send after close");
  sendFrame(BINARY, bytes);
}

void WebSocket::ping(std::string_view payload) {
  if (payload.size() > 125) throw ChannelError("websocket: a ping payload over 125 bytes");
  sendFrame(PING, payload);
}

void WebSocket::close(uint16_t code, std::string_view reason, milliseconds wait) {
  if (!closeSent_) {
    closeSent_ = true;
    std::string body;
    body.push_back(static_cast<char>(code >> 8));
    body.push_back(static_cast<char>(code & 0xFF));
    body.append(reason.substr(0, 123));
    try {
      sendFrame(CLOSE, body);
    } catch (...) {
      return;  // the stream is already gone
    }
  }
  auto deadline = Clock::now() + wait;
  try {
    while (!closed_ && Clock::now() < deadline) {
      uint8_t opcode = 0;
      bool fin = false;
      std::string payload;
      if (!readFrame(deadline, opcode, fin, payload)) break;
      if (opcode == CLOSE) closed_ = true;
    }
  } catch (...) {
    // A broken or interrupted stream while closing: nothing more to wait for.
  }
  closed_ = true;
}

void WebSocket::interrupt() { stream_->interrupt(); }

}  // namespace chitin::channel
