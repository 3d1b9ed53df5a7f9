// SPDX-License-Identifier: Apache-2.0
// A blocking byte stream through the egress broker, optionally in TLS (see stream.h).
// Runs in: worker (sandboxed)
//
// The socket is non-blocking underneath: every wait is a poll() on the socket and on an
// eventfd that interrupt() signals, so a blocked read returns at once at shutdown, and the
// OpenSSL object is locked only around the (non-blocking) SSL calls themselves, so one thread
// may read while another writes.

#include "stream.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "platform.h"

namespace chitin::channel {

namespace {

using Clock = std::chrono::steady_clock;

std::string sslErrorText() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown TLS error";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

// RFC 1928 reply codes, for people.
const char* socksReplyText(uint8_t code) {
  switch (code) {
    case 0x01:
      return "the broker failed";
    case 0x02:
      return "not allowed for this worker";
    case 0x03:
      return "network unreachable";
    case 0x04:
      return "host unreachable (or it resolves to an address that is not allowed)";
    case 0x05:
      return "connection refused";
    case 0x06:
      return "timed out";
    case 0x07:
      return "command not supported";
    case 0x08:
      return "address type not supported";
    default:
      return "refused";
  }
}

int remainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

struct Stream::Impl {
  int fd = -1;
  int wakeFd = -1;
  std::atomic<bool> interrupted{false};
  std::string host;
  std::string peerName;
  std::string buffered;  // read by readLine beyond the line it returned
  std::mutex sslMutex;   // guards ssl and ctx during SSL calls (never held while polling)
  SSL_CTX* ctx = nullptr;
  SSL* ssl = nullptr;

  ~Impl() {
    if (ssl) SSL_free(ssl);
    if (ctx) SSL_CTX_free(ctx);
    if (fd >= 0) ::close(fd);
    if (wakeFd >= 0) ::close(wakeFd);
  }

  void checkInterrupted() const {
    if (interrupted.load()) throw StreamInterrupted{};
  }

  // Waits until `events` on the socket, the deadline (false) or an interrupt (throws).
  bool waitFor(short events, Clock::time_point deadline) {
    for (;;) {
      checkInterrupted();
      pollfd fds[2] = {{fd, events, 0}, {wakeFd, POLLIN, 0}};
      int ms = remainingMs(deadline);
      int n = ::poll(fds, 2, ms);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw ChannelError(peerName + ": poll failed: " + std::strerror(errno));
      }
      checkInterrupted();
      if (n == 0) return false;
      if (fds[0].revents) return true;
    }
  }

  void sendRaw(const char* data, size_t size, Clock::time_point deadline) {
    while (size > 0) {
      ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
      if (n > 0) {
        data += n;
        size -= static_cast<size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!waitFor(POLLOUT, deadline)) throw StreamTimeout{};
        continue;
      }
      throw ChannelError(peerName + ": write failed: " + std::strerror(errno));
    }
  }

  // Exactly `size` bytes (the SOCKS handshake); the peer closing first is an error.
  void recvRaw(char* data, size_t size, Clock::time_point deadline) {
    while (size > 0) {
      ssize_t n = ::recv(fd, data, size, 0);
      if (n > 0) {
        data += n;
        size -= static_cast<size_t>(n);
        continue;
      }
      if (n == 0) throw ChannelError(peerName + ": the egress broker closed the connection");
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (!waitFor(POLLIN, deadline)) throw StreamTimeout{};
        continue;
      }
      throw ChannelError(peerName + ": read failed: " + std::strerror(errno));
    }
  }

  void connectUnix(const std::string& path, Clock::time_point deadline) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof(address.sun_path))
      throw ChannelError("egress socket path too long: " + path);
    std::memcpy(address.sun_path, path.data(), path.size());
    fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) throw ChannelError(std::string("egress socket: ") + std::strerror(errno));
    if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 &&
        errno != EINPROGRESS && errno != EAGAIN)
      throw ChannelError("cannot reach the egress broker at " + path + ": " + std::strerror(errno));
    if (!waitFor(POLLOUT, deadline)) throw StreamTimeout{};
  }

  // SOCKS5, no authentication, CONNECT to the host *name*: the broker resolves it and decides.
  void socksConnect(const std::string& name, uint16_t port, Clock::time_point deadline) {
    if (name.empty() || name.size() > 255)
      throw ChannelError("host name must be 1-255 bytes: " + peerName);
    const char greeting[] = {0x05, 0x01, 0x00};
    sendRaw(greeting, sizeof(greeting), deadline);
    char choice[2];
    recvRaw(choice, 2, deadline);
    if (choice[0] != 0x05 || choice[1] != 0x00)
      throw ChannelError(peerName + ": the egress broker does not speak SOCKS5 without auth");
    std::string request = {0x05, 0x01, 0x00, 0x03, static_cast<char>(name.size())};
    request += name;
    request += static_cast<char>(port >> 8);
    request += static_cast<char>(port & 0xff);
    sendRaw(request.data(), request.size(), deadline);
    unsigned char head[4];
    recvRaw(reinterpret_cast<char*>(head), 4, deadline);
    if (head[0] != 0x05) throw ChannelError(peerName + ": bad reply from the egress broker");
    if (head[1] != 0x00)
      throw ChannelError("egress to " + peerName + " refused: " + socksReplyText(head[1]));
    size_t rest = 0;
    if (head[3] == 0x01) {
      rest = 4 + 2;
    } else if (head[3] == 0x04) {
      rest = 16 + 2;
    } else if (head[3] == 0x03) {
      char length;
      recvRaw(&length, 1, deadline);
      rest = static_cast<unsigned char>(length) + 2u;
    } else {
      throw ChannelError(peerName + ": bad address type in the egress broker's reply");
    }
    char bound[260];
    recvRaw(bound, rest, deadline);
  }

  void connectDirect(const std::string& name, uint16_t port, Clock::time_point deadline) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    addrinfo* found = nullptr;
    std::string service = std::to_string(port);
    int rc = ::getaddrinfo(name.c_str(), service.c_str(), &hints, &found);
    if (rc != 0) throw ChannelError("cannot resolve " + peerName + ": " + gai_strerror(rc));
    std::string lastError = "no address";
    for (addrinfo* a = found; a; a = a->ai_next) {
      int s = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (s < 0) continue;
      if (::connect(s, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS) {
        fd = s;
        if (waitFor(POLLOUT, deadline)) {
          int error = 0;
          socklen_t length = sizeof(error);
          ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
          if (error == 0) break;
          lastError = std::strerror(error);
        } else {
          lastError = "timed out";
        }
        ::close(fd);
        fd = -1;
        continue;
      }
      lastError = std::strerror(errno);
      ::close(s);
    }
    ::freeaddrinfo(found);
    if (fd < 0) throw ChannelError("cannot connect to " + peerName + ": " + lastError);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }

  void handshake(const std::string& caFile, Clock::time_point deadline) {
    std::lock_guard<std::mutex> lock(sslMutex);
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) throw ChannelError(peerName + ": TLS setup failed: " + sslErrorText());
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    // The system store as Debian's hashed directory, looked up per chain, not the bundle parsed
    // whole into every connection (as http-client.c++ does; it costs an idle worker ~650 kB).
    int loaded = !caFile.empty() ? SSL_CTX_load_verify_file(ctx, caFile.c_str())
                 : ::access("/etc/ssl/certs", X_OK) == 0
                     ? SSL_CTX_load_verify_dir(ctx, "/etc/ssl/certs")
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (loaded != 1)
      throw ChannelError(peerName + ": cannot load CA certificates: " + sslErrorText());
    ssl = SSL_new(ctx);
    if (!ssl) throw ChannelError(peerName + ": TLS setup failed: " + sslErrorText());
    SSL_set_fd(ssl, fd);
    // The name is checked against the certificate: an IP literal as an IP SAN, else a DNS name
    // (which also goes out as SNI).
    in6_addr scratch;
    bool literal = ::inet_pton(AF_INET, host.c_str(), &scratch) == 1 ||
                   ::inet_pton(AF_INET6, host.c_str(), &scratch) == 1;
    if (literal) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl, host.c_str());
      SSL_set1_host(ssl, host.c_str());
    }
    for (;;) {
      int rc = SSL_connect(ssl);
      if (rc == 1) return;
      int error = SSL_get_error(ssl, rc);
      short events = error == SSL_ERROR_WANT_READ    ? POLLIN
                     : error == SSL_ERROR_WANT_WRITE ? POLLOUT
                                                     : 0;
      if (events == 0) {
        long verify = SSL_get_verify_result(ssl);
        std::string why =
            verify != X509_V_OK ? X509_verify_cert_error_string(verify) : sslErrorText();
        throw ChannelError("TLS with " + peerName + " failed: " + why);
      }
      if (!waitFor(events, deadline)) throw StreamTimeout{};
    }
  }
};

std::unique_ptr<Stream> Stream::open(const std::string& host, uint16_t port,
                                     const StreamOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->host = host;
  impl->peerName = host + ":" + std::to_string(port);
  impl->wakeFd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (impl->wakeFd < 0) throw ChannelError(std::string("eventfd: ") + std::strerror(errno));
  if (host.empty() || port == 0) throw ChannelError("no host:port to connect to");
  auto deadline = Clock::now() + options.connectTimeout;
  try {
    if (options.egressSocket.empty()) {
      impl->connectDirect(host, port, deadline);
    } else {
      impl->connectUnix(options.egressSocket, deadline);
      impl->socksConnect(host, port, deadline);
    }
    if (options.tls) impl->handshake(options.caFile, deadline);
  } catch (const StreamTimeout&) {
    throw ChannelError("connecting to " + impl->peerName + " timed out");
  }
  return std::unique_ptr<Stream>(new Stream(std::move(impl)));
}

Stream::Stream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Stream::~Stream() = default;

void Stream::startTls(const std::string& caFile) {
  impl_->checkInterrupted();
  if (impl_->ssl) throw ChannelError(impl_->peerName + ": already in TLS");
  // Bytes that arrived after the STARTTLS reply but before the handshake were sent in the
  // clear by whoever sits in the path: never let them pass as protected (CVE-2011-0411 class).
  if (!impl_->buffered.empty())
    throw ChannelError(impl_->peerName + ": unexpected data before the TLS handshake");
  try {
    impl_->handshake(caFile, Clock::now() + std::chrono::seconds(15));
  } catch (const StreamTimeout&) {
    throw ChannelError("TLS handshake with " + impl_->peerName + " timed out");
  }
}

size_t Stream::read(char* buffer, size_t max, std::chrono::milliseconds timeout) {
  if (max == 0) return 0;
  if (!impl_->buffered.empty()) {
    size_t n = std::min(max, impl_->buffered.size());
    std::memcpy(buffer, impl_->buffered.data(), n);
    impl_->buffered.erase(0, n);
    return n;
  }
  return readSocket(buffer, max, timeout);
}

size_t Stream::readSocket(char* buffer, size_t max, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    impl_->checkInterrupted();
    short events = POLLIN;
    if (impl_->ssl) {
      std::unique_lock<std::mutex> lock(impl_->sslMutex);
      ERR_clear_error();
      int n = SSL_read(impl_->ssl, buffer, static_cast<int>(std::min<size_t>(max, 1 << 30)));
      if (n > 0) return static_cast<size_t>(n);
      int error = SSL_get_error(impl_->ssl, n);
      if (error == SSL_ERROR_ZERO_RETURN) return 0;
      if (error == SSL_ERROR_WANT_WRITE) {
        events = POLLOUT;
      } else if (error != SSL_ERROR_WANT_READ) {
        // An unexpected EOF (no close_notify) is still the peer going away.
        if (error == SSL_ERROR_SYSCALL && errno == 0) return 0;
        unsigned long code = ERR_peek_error();
        if (ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
          ERR_clear_error();
          return 0;
        }
        throw ChannelError(impl_->peerName + ": TLS read failed: " + sslErrorText());
      }
    } else {
      ssize_t n = ::recv(impl_->fd, buffer, max, 0);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) return 0;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        throw ChannelError(impl_->peerName + ": read failed: " + std::strerror(errno));
    }
    if (!impl_->waitFor(events, deadline)) throw StreamTimeout{};
  }
}

std::string Stream::readLine(std::chrono::milliseconds timeout, size_t maxLine) {
  auto deadline = Clock::now() + timeout;
  std::string& pending = impl_->buffered;
  size_t scanned = 0;
  for (;;) {
    size_t newline = pending.find('\n', scanned);
    if (newline != std::string::npos) {
      if (newline > maxLine)
        throw ChannelError(impl_->peerName + ": a line longer than " + std::to_string(maxLine) +
                           " bytes");
      std::string line = pending.substr(0, newline);
      pending.erase(0, newline + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    scanned = pending.size();
    if (pending.size() > maxLine)
      throw ChannelError(impl_->peerName + ": a line longer than " + std::to_string(maxLine) +
                         " bytes");
    char chunk[4096];
    size_t n = readSocket(chunk, sizeof(chunk), std::chrono::milliseconds(remainingMs(deadline)));
    if (n == 0)
      throw ChannelError(impl_->peerName + (pending.empty() ? ": connection closed"
                                                            : ": connection closed mid-line"));
    pending.append(chunk, n);
  }
}

void Stream::writeAll(std::string_view bytes) {
  impl_->checkInterrupted();
  auto deadline = Clock::now() + std::chrono::seconds(30);
  try {
    if (!impl_->ssl) {
      impl_->sendRaw(bytes.data(), bytes.size(), deadline);
      return;
    }
    while (!bytes.empty()) {
      short events;
      {
        std::lock_guard<std::mutex> lock(impl_->sslMutex);
        ERR_clear_error();
        int n = SSL_write(impl_->ssl, bytes.data(),
                          static_cast<int>(std::min<size_t>(bytes.size(), 1 << 30)));
        if (n > 0) {
          bytes.remove_prefix(static_cast<size_t>(n));
          continue;
        }
        int error = SSL_get_error(impl_->ssl, n);
        if (error == SSL_ERROR_WANT_WRITE) {
          events = POLLOUT;
        } else if (error == SSL_ERROR_WANT_READ) {
          events = POLLIN;
        } else {
          throw ChannelError(impl_->peerName + ": TLS write failed: " + sslErrorText());
        }
      }
      if (!impl_->waitFor(events, deadline)) throw StreamTimeout{};
    }
  } catch (const StreamTimeout&) {
    throw ChannelError(impl_->peerName + ": write timed out");
  }
}

void Stream::interrupt() {
  impl_->interrupted.store(true);
  uint64_t one = 1;
  ssize_t ignored = ::write(impl_->wakeFd, &one, sizeof(one));
  (void)ignored;
}

bool Stream::tls() const { return impl_->ssl != nullptr; }
const std::string& Stream::peer() const { return impl_->peerName; }

void initNetworkGlobal() {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  OPENSSL_init_ssl(
      OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS | OPENSSL_INIT_LOAD_CONFIG,
      nullptr);
}

}  // namespace chitin::channel
