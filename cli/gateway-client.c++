// SPDX-License-Identifier: Apache-2.0
// A blocking RFC 6455 client speaking the gateway's JSON frames; see gateway-client.h for why.
// Runs in: CLI (the invoking user's process, unprivileged)

#include "gateway-client.h"

// SHA-1 and base64 for Sec-WebSocket-Accept come from Nettle: linking libcrypto for them cost
// every command ~2 ms of loading before main (its 17,000 relocations; measured), against a
// 20 ms `chitin status` budget, and OpenSSL 3's SHA1() loads openssl.cnf and providers besides.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <system_error>
#include <utility>

namespace chitin::cli {
namespace {

using Kind = GatewayError::Kind;
using nlohmann::json;

constexpr std::string_view WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
constexpr size_t MAX_HANDSHAKE_BYTES = 16384;
constexpr int SEND_TIMEOUT_MS = 10000;
constexpr int CLOSE_WAIT_MS = 50;  // how long the destructor waits for the server's close

int64_t nowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

int64_t deadlineIn(int timeoutMs) { return timeoutMs < 0 ? -1 : nowMs() + timeoutMs; }

// poll() timeout for a deadline: -1 waits forever.
int remainingMs(int64_t deadline) {
  if (deadline < 0) return -1;
  return int(std::clamp<int64_t>(deadline - nowMs(), 0, 1 << 30));
}

std::string base64(const unsigned char* data, size_t size) {
  std::string out(BASE64_ENCODE_RAW_LENGTH(size), '\0');
  base64_encode_raw(out.data(), size, data);
  return out;
}

// Masking keys and the handshake key must be unpredictable (RFC 6455 §5.3, §10.3). From the
// urandom pool, reads of up to 256 bytes are complete and not interrupted by signals.
void randomBytes(void* buffer, size_t size) {
  if (size > 256 || getrandom(buffer, size, 0) != ssize_t(size))
    throw std::system_error(errno, std::generic_category(), "getrandom");
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

}  // namespace

GatewayUrl GatewayUrl::parse(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return std::invalid_argument("gateway URL \"" + std::string(url) + "\": " + std::string(why) +
                                 " (expected ws://HOST:PORT, e.g. ws://127.0.0.1:18789)");
  };
  GatewayUrl out;
  out.text = std::string(url);
  if (url.substr(0, 6) == "wss://")
    throw bad("wss:// is not supported; the gateway listens on loopback (use an SSH tunnel)");
  if (url.substr(0, 5) != "ws://") throw bad("must start with ws://");
  std::string_view rest = url.substr(5);
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  out.path = slash == std::string_view::npos ? "" : std::string(rest.substr(slash));
  if (out.path.empty() || out.path == "/") out.path = "/ws";
  if (out.path.find_first_of(" \r\n\t") != std::string::npos) throw bad("bad character in path");
  if (authority.find('@') != std::string_view::npos) throw bad("credentials in the URL");
  std::string_view portText;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) throw bad("unterminated [IPv6] address");
    out.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') throw bad("expected :PORT after ]");
      portText = after.substr(1);
    }
  } else {
    size_t colon = authority.rfind(':');
    out.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) portText = authority.substr(colon + 1);
  }
  if (out.host.empty()) throw bad("missing host");
  if (out.host.find_first_of(" \r\n\t/?#") != std::string::npos) throw bad("bad character in host");
  unsigned port = 18789;  // the gateway's default port, not HTTP's 80
  if (!portText.empty()) {
    const char* end = portText.data() + portText.size();
    auto [stop, ec] = std::from_chars(portText.data(), end, port);
    if (ec != std::errc() || stop != end || port == 0 || port > 65535)
      throw bad("port must be a number 1-65535");
  }
  out.port = uint16_t(port);
  return out;
}

GatewayClient::GatewayClient(const GatewayUrl& url, const ClientOptions& options)
    : url_(url), options_(options) {
  int64_t deadline = deadlineIn(options_.connectTimeoutMs);
  try {
    connectSocket(options_.connectTimeoutMs);
    upgrade(deadline);
    authenticate(deadline);
  } catch (...) {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    throw;
  }
}

GatewayClient::~GatewayClient() {
  if (fd_ < 0) return;
  onEvent_ = nullptr;
  wakeFd_ = -1;
  if (!closed_) {
    // 1000 = normal closure. Then give the server a moment to answer so the close is clean on
    // its side too; its close frame (or EOF, or the deadline) ends the wait by throwing.
    sendCloseQuietly(std::string_view("\x03\xe8", 2));
    int64_t deadline = deadlineIn(CLOSE_WAIT_MS);
    try {
      for (;;) readMessage(deadline, false);
    } catch (...) {
    }
  }
  close(fd_);
}

void GatewayClient::connectSocket(int timeoutMs) {
  addrinfo hints{.ai_flags = AI_NUMERICSERV, .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  addrinfo* found = nullptr;
  int rc = getaddrinfo(url_.host.c_str(), std::to_string(url_.port).c_str(), &hints, &found);
  if (rc != 0)
    throw GatewayError(Kind::UNREACHABLE, "cannot resolve " + url_.host + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  int64_t deadline = deadlineIn(timeoutMs);
  std::string lastError = "no address";
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      lastError = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    int err = 0;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
      err = errno;
      if (err == EINPROGRESS) {
        pollfd p{fd, POLLOUT, 0};
        int n;
        while ((n = poll(&p, 1, remainingMs(deadline))) < 0 && errno == EINTR) {
        }
        if (n == 0) {
          err = ETIMEDOUT;
        } else {
          socklen_t len = sizeof(err);
          getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        }
      }
    }
    if (err == 0) {
      // Frames are small and answered one by one; Nagle would hold each back for an ACK.
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      fd_ = fd;
      return;
    }
    close(fd);
    lastError = std::strerror(err);
  }
  throw GatewayError(Kind::UNREACHABLE, lastError);
}

void GatewayClient::upgrade(int64_t deadline) {
  unsigned char keyBytes[16];
  randomBytes(keyBytes, sizeof(keyBytes));
  std::string key = base64(keyBytes, sizeof(keyBytes));
  bool v6 = url_.host.find(':') != std::string::npos;
  std::string hostHeader =
      (v6 ? "[" + url_.host + "]" : url_.host) + ":" + std::to_string(url_.port);
  // No Origin header: we are not a browser, and the gateway checks Origin only when present.
  writeAll("GET " + url_.path + " HTTP/1.1\r\nHost: " + hostHeader +
               "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
               "\r\nSec-WebSocket-Version: 13\r\nUser-Agent: chitin-cli/" + options_.version +
               "\r\n\r\n",
           deadline);

  size_t end;
  while ((end = in_.find("\r\n\r\n")) == std::string::npos) {
    if (in_.size() > MAX_HANDSHAKE_BYTES)
      throw GatewayError(Kind::PROTOCOL, "the HTTP answer to the WebSocket upgrade is too long");
    try {
      fill(deadline, false);
    } catch (const GatewayError& e) {
      // No answer at all: whatever listens there is not a gateway we can use.
      throw GatewayError(e.kind() == Kind::TIMEOUT ? Kind::TIMEOUT : Kind::UNREACHABLE,
                         std::string("no answer to the WebSocket upgrade: ") + e.what());
    }
  }
  std::string head = in_.substr(0, end);
  in_.erase(0, end + 4);  // bytes after the head are already frames (often the challenge)

  std::string statusLine = head.substr(0, head.find("\r\n"));
  if (statusLine.rfind("HTTP/1.1 101", 0) != 0)
    throw GatewayError(Kind::UNREACHABLE, "the server answered the WebSocket upgrade with \"" +
                                              statusLine + "\" (is this a chitin gateway?)");
  std::string lowerHead = lower(head);
  auto header = [&](const std::string& name) -> std::optional<std::string> {
    size_t at = lowerHead.find("\r\n" + name + ":");
    if (at == std::string::npos) return std::nullopt;
    size_t start = at + name.size() + 3, stop = head.find("\r\n", start);
    return trim(std::string_view(head).substr(start, stop - start));
  };
  for (const char* unasked : {"sec-websocket-extensions", "sec-websocket-protocol"})
    if (auto value = header(unasked))
      throw GatewayError(Kind::PROTOCOL, std::string("the gateway selected ") + unasked + " \"" +
                                             *value + "\", which the client did not offer");
  if (lower(header("upgrade").value_or("")) != "websocket" ||
      lower(header("connection").value_or("")).find("upgrade") == std::string::npos)
    throw GatewayError(Kind::PROTOCOL,
                       "the 101 answer lacks Upgrade: websocket / Connection: Upgrade");
  std::string expected = key + std::string(WS_GUID);
  unsigned char digest[SHA1_DIGEST_SIZE];
  sha1_ctx sha;
  sha1_init(&sha);
  sha1_update(&sha, expected.size(), reinterpret_cast<const uint8_t*>(expected.data()));
  sha1_digest(&sha, sizeof(digest), digest);
  std::string accept = header("sec-websocket-accept").value_or("");
  if (accept != base64(digest, sizeof(digest)))
    throw GatewayError(Kind::PROTOCOL,
                       "the 101 answer carries a wrong Sec-WebSocket-Accept (\"" + accept + "\")");
}

void GatewayClient::authenticate(int64_t deadline) {
  std::string first = *readMessage(deadline, false);
  json challenge = parseFrame(first);
  json payload = challenge.value("payload", json::object());
  std::string nonce = payload.is_object() ? jsonString(payload, "nonce") : "";
  if (jsonString(challenge, "event") != "connect.challenge" || nonce.empty())
    protocolError("expected a connect.challenge event with a nonce first, got: " +
                  first.substr(0, 200));
  json client = {{"id", options_.clientId}, {"version", options_.version}, {"user", options_.user}};
  json params = {{"auth", {{"token", options_.token}}}, {"nonce", nonce}, {"client", client}};
  params["minProtocol"] = params["maxProtocol"] = 1;
  std::string id = send("connect", params);
  std::optional<Response> res;
  while (!res || res->id != id) res = dispatch(*readMessage(deadline, false));
  if (!res->ok) {
    closed_ = true;  // the gateway closes after refusing; no close handshake to do
    throw GatewayError(Kind::REJECTED,
                       res->errorMessage.empty() ? "connect refused" : res->errorMessage,
                       res->errorCode);
  }
  uint64_t protocol = jsonUint(res->payload, "protocol");
  if (protocol != 1)
    protocolError("the gateway speaks protocol " + std::to_string(protocol) +
                  "; this client speaks 1");
  hello_ = std::move(res->payload);
}

std::string GatewayClient::send(std::string_view method, const json& params) {
  std::string id = std::to_string(nextId_++);
  json frame = {{"type", "req"}, {"id", id}, {"method", method}, {"params", params}};
  writeFrame(OP_TEXT, frame.dump(), deadlineIn(SEND_TIMEOUT_MS));
  return id;
}

std::optional<Response> GatewayClient::waitFor(const std::string& id, int timeoutMs) {
  int64_t deadline = deadlineIn(timeoutMs);
  for (;;) {
    std::optional<std::string> message = readMessage(deadline, wakeFd_ >= 0);
    if (!message) return std::nullopt;
    std::optional<Response> res = dispatch(*message);
    if (res && res->id == id) return res;
  }
}

Response GatewayClient::request(std::string_view method, const json& params, int timeoutMs) {
  struct NoWake {  // a plain request is not interruptible; restore the wake fd however we leave
    int& fd;
    int saved;
    ~NoWake() { fd = saved; }
  } noWake{wakeFd_, std::exchange(wakeFd_, -1)};
  return *waitFor(send(method, params), timeoutMs);
}

json GatewayClient::parseFrame(const std::string& message) {
  json frame = json::parse(message, nullptr, false);
  if (frame.is_discarded() || !frame.is_object())
    protocolError("malformed frame from the gateway: " + message.substr(0, 200));
  return frame;
}

std::optional<Response> GatewayClient::dispatch(const std::string& message) {
  json frame = parseFrame(message);
  std::string type = jsonString(frame, "type");
  json payload = frame.value("payload", json::object());
  if (!payload.is_object()) payload = json::object();
  if (type == "res") {
    json error = frame.value("error", json::object());
    if (!error.is_object()) error = json::object();
    return Response{jsonString(frame, "id"), jsonBool(frame, "ok"), std::move(payload),
                    jsonString(error, "code"), jsonString(error, "message")};
  }
  if (type == "event" && onEvent_)
    onEvent_(
        Event{jsonString(frame, "event"), std::move(payload), uint32_t(jsonUint(frame, "seq"))});
  return std::nullopt;  // other frame types are ignored for forward compatibility
}

void GatewayClient::writeFrame(uint8_t opcode, std::string_view payload, int64_t deadline) {
  std::string frame;
  frame.reserve(payload.size() + 14);
  frame.push_back(char(0x80 | opcode));  // FIN: we never fragment what we send
  size_t n = payload.size();
  if (n < 126) {
    frame.push_back(char(0x80 | n));
  } else if (n <= 0xffff) {
    frame.push_back(char(0x80 | 126));
    frame.push_back(char(n >> 8));
    frame.push_back(char(n & 0xff));
  } else {
    frame.push_back(char(0x80 | 127));
    for (int shift = 56; shift >= 0; shift -= 8)
      frame.push_back(char((uint64_t(n) >> shift) & 0xff));
  }
  unsigned char mask[4];
  randomBytes(mask, sizeof(mask));
  frame.append(reinterpret_cast<char*>(mask), 4);
  for (size_t i = 0; i < n; ++i) frame.push_back(char(payload[i] ^ mask[i & 3]));
  writeAll(frame, deadline);
}

void GatewayClient::writeAll(std::string_view bytes, int64_t deadline) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      bytes.remove_prefix(size_t(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) lost(std::strerror(errno));
    pollfd p{fd_, POLLOUT, 0};
    int ready = poll(&p, 1, remainingMs(deadline));
    if (ready == 0) throw GatewayError(Kind::TIMEOUT, "timed out sending to the gateway");
  }
}

bool GatewayClient::fill(int64_t deadline, bool useWakeFd) {
  for (;;) {
    pollfd fds[2] = {{fd_, POLLIN, 0}, {useWakeFd ? wakeFd_ : -1, POLLIN, 0}};
    int ready = poll(fds, 2, remainingMs(deadline));
    if (ready < 0) {
      if (errno == EINTR) continue;  // a signal; its self-pipe byte shows up on the next poll
      throw std::system_error(errno, std::generic_category(), "poll");
    }
    if (ready == 0) throw GatewayError(Kind::TIMEOUT, "timed out waiting for the gateway");
    if (fds[1].revents != 0) {
      // The wake fd goes first so a busy stream cannot starve an interrupt.
      char drain[64];
      while (read(wakeFd_, drain, sizeof(drain)) > 0) {
      }
      return false;
    }
    char buffer[65536];
    ssize_t n = recv(fd_, buffer, sizeof(buffer), 0);
    if (n > 0) {
      in_.append(buffer, size_t(n));
      return true;
    }
    if (n == 0) lost("the gateway closed the connection");
    if (errno != EINTR && errno != EAGAIN) lost(std::strerror(errno));
  }
}

std::optional<GatewayClient::Frame> GatewayClient::takeFrame() {
  if (in_.size() < 2) return std::nullopt;
  auto byte = [&](size_t i) { return uint8_t(in_[i]); };
  Frame frame{(byte(0) & 0x80) != 0, uint8_t(byte(0) & 0x0f), {}};
  if (byte(0) & 0x70) protocolError("frame with reserved bits set");
  if (byte(1) & 0x80) protocolError("masked frame from the server");
  uint64_t length = byte(1) & 0x7f;
  size_t header = 2;
  if (length == 126) {
    if (in_.size() < 4) return std::nullopt;
    length = (uint64_t(byte(2)) << 8) | byte(3);
    header = 4;
  } else if (length == 127) {
    if (in_.size() < 10) return std::nullopt;
    length = 0;
    for (size_t i = 2; i < 10; ++i) length = (length << 8) | byte(i);
    header = 10;
  }
  if ((frame.opcode & 0x08) && (length > 125 || !frame.fin))
    protocolError("control frame fragmented or longer than 125 bytes");
  if (length > options_.maxMessageBytes - std::min(partial_.size(), options_.maxMessageBytes))
    protocolError("message from the gateway exceeds " + std::to_string(options_.maxMessageBytes) +
                  " bytes");
  if (in_.size() - header < length) return std::nullopt;
  frame.payload = in_.substr(header, size_t(length));
  in_.erase(0, header + size_t(length));
  return frame;
}

std::optional<std::string> GatewayClient::readMessage(int64_t deadline, bool useWakeFd) {
  for (;;) {
    std::optional<Frame> frame = takeFrame();
    if (!frame) {
      if (!fill(deadline, useWakeFd)) return std::nullopt;
      continue;
    }
    switch (frame->opcode) {
      case OP_PING:
        writeFrame(OP_PONG, frame->payload, deadlineIn(SEND_TIMEOUT_MS));
        break;
      case OP_PONG:
        break;
      case OP_CLOSE: {
        std::string why = "the gateway closed the connection";
        if (frame->payload.size() >= 2) {
          int code = (uint8_t(frame->payload[0]) << 8) | uint8_t(frame->payload[1]);
          why += " (code " + std::to_string(code);
          if (frame->payload.size() > 2) why += ": " + frame->payload.substr(2);
          why += ")";
        }
        sendCloseQuietly(std::string_view(frame->payload).substr(0, 2));  // echo the code
        lost(why);
      }
      case OP_TEXT:
        if (inFragmented_) protocolError("new message inside a fragmented one");
        if (frame->fin) return std::move(frame->payload);
        partial_ = std::move(frame->payload);
        inFragmented_ = true;
        break;
      case OP_CONT:
        if (!inFragmented_) protocolError("continuation frame without a start");
        partial_ += frame->payload;
        if (frame->fin) {
          inFragmented_ = false;
          return std::move(partial_);
        }
        break;
      default:
        protocolError("unexpected frame opcode " + std::to_string(frame->opcode) +
                      " (the protocol uses text frames only)");
    }
  }
}

void GatewayClient::sendCloseQuietly(std::string_view codeBytes) {
  if (closed_) return;
  closed_ = true;
  try {
    writeFrame(OP_CLOSE, codeBytes, deadlineIn(CLOSE_WAIT_MS));
  } catch (...) {
    // Best effort: we are leaving this connection either way.
  }
}

void GatewayClient::protocolError(const std::string& why) {
  sendCloseQuietly(std::string_view("\x03\xea", 2));  // 1002 = protocol error
  protocolError(why);
}

void GatewayClient::lost(const std::string& why) {
  closed_ = true;
  throw GatewayError(Kind::CONNECTION_LOST, why);
}

}  // namespace chitin::cli
