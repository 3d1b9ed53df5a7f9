// SPDX-License-Identifier: Apache-2.0
// Tests of the channel transport: Stream (direct, through a SOCKS5 unix socket, TLS, STARTTLS,
// interrupt, timeouts) and HttpClient (status, headers, bounds, multipart, interrupt, proxy).
// Runs in: tests
//
// The servers are independent of the code under test: tests/fakes/tls_echo.py (Python's ssl)
// for streams, and here a minimal SOCKS5 relay and canned HTTP responders on raw sockets.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "http-client.h"
#include "platform.h"
#include "stream.h"

namespace chitin::channel {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

std::string tempDir() {
  char pattern[] = "/tmp/chitin-net-test-XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  return pattern;
}

// tests/fakes/tls_echo.py in one mode, with a fresh self-signed certificate for the name
// "localhost" only.
class EchoServer {
 public:
  explicit EchoServer(const std::string& mode) {
    dir_ = tempDir();
    cert_ = dir_ + "/cert.pem";
    std::string command =
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
        "-addext subjectAltName=DNS:localhost -keyout " +
        dir_ + "/key.pem -out " + cert_ + " 2>/dev/null";
    REQUIRE(std::system(command.c_str()) == 0);
    int out[2];
    REQUIRE(::pipe(out) == 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(out[1], 1);
      const char* python = std::getenv("CHITIN_PYTHON");
      const char* script = std::getenv("CHITIN_TLS_ECHO");
      std::string key = dir_ + "/key.pem";
      ::execl(python, python, script, cert_.c_str(), key.c_str(), mode.c_str(), nullptr);
      ::_exit(127);
    }
    ::close(out[1]);
    char buffer[32] = {};
    ssize_t n = ::read(out[0], buffer, sizeof(buffer) - 1);
    ::close(out[0]);
    REQUIRE(n > 0);
    port_ = static_cast<uint16_t>(std::atoi(buffer));
    REQUIRE(port_ != 0);
  }
  ~EchoServer() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    fs::remove_all(dir_);
  }
  uint16_t port() const { return port_; }
  const std::string& cert() const { return cert_; }

 private:
  std::string dir_, cert_;
  pid_t pid_ = -1;
  uint16_t port_ = 0;
};

int listenTcp(uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  REQUIRE(::listen(fd, 16) == 0);
  socklen_t length = sizeof(address);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  port = ntohs(address.sin_port);
  return fd;
}

void writeAll(int fd, const void* data, size_t size) {
  auto* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n <= 0) return;
    p += n;
    size -= static_cast<size_t>(n);
  }
}

bool readExactly(int fd, void* data, size_t size) {
  auto* p = static_cast<char*>(data);
  while (size > 0) {
    ssize_t n = ::read(fd, p, size);
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// A SOCKS5 relay on a unix socket, standing in for the egress broker: it records each name
// asked for, refuses "forbidden.test" with reply 0x02, and connects everything else to
// 127.0.0.1 at the requested port.
class SocksRelay {
 public:
  SocksRelay() {
    dir_ = tempDir();
    path_ = dir_ + "/egress.sock";
    listener_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strcpy(address.sun_path, path_.c_str());
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
    REQUIRE(::listen(listener_, 16) == 0);
    thread_ = std::thread([this] { acceptLoop(); });
  }
  ~SocksRelay() {
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
    for (auto& t : relays_) t.join();
    fs::remove_all(dir_);
  }
  const std::string& path() const { return path_; }
  std::vector<std::string> names() {
    std::lock_guard<std::mutex> lock(mutex_);
    return names_;
  }

 private:
  void acceptLoop() {
    for (;;) {
      int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;
      relays_.emplace_back([this, client] { serve(client); });
    }
  }
  void serve(int client) {
    unsigned char greeting[2], methods[255];
    if (!readExactly(client, greeting, 2) || greeting[0] != 5 ||
        !readExactly(client, methods, greeting[1]))
      return (void)::close(client);
    writeAll(client, "\x05\x00", 2);
    unsigned char head[5];
    if (!readExactly(client, head, 5) || head[1] != 1 || head[3] != 3) return (void)::close(client);
    std::string name(head[4], '\0');
    unsigned char portBytes[2];
    readExactly(client, name.data(), name.size());
    readExactly(client, portBytes, 2);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      names_.push_back(name);
    }
    if (name == "forbidden.test") {
      writeAll(client, "\x05\x02\x00\x01\0\0\0\0\0\0", 10);
      return (void)::close(client);
    }
    int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::memcpy(&address.sin_port, portBytes, 2);
    if (::connect(upstream, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
      writeAll(client, "\x05\x05\x00\x01\0\0\0\0\0\0", 10);
      ::close(upstream);
      return (void)::close(client);
    }
    writeAll(client, "\x05\x00\x00\x01\x7f\0\0\x01\0\0", 10);
    pollfd fds[2] = {{client, POLLIN, 0}, {upstream, POLLIN, 0}};
    char buffer[16384];
    for (bool open = true; open;) {
      if (::poll(fds, 2, -1) <= 0) break;
      for (int i = 0; i < 2; ++i) {
        if (!fds[i].revents) continue;
        ssize_t n = ::read(fds[i].fd, buffer, sizeof(buffer));
        if (n <= 0) {
          open = false;
          continue;
        }
        writeAll(fds[1 - i].fd, buffer, static_cast<size_t>(n));
      }
    }
    ::close(upstream);
    ::close(client);
  }

  std::string dir_, path_;
  int listener_ = -1;
  std::thread thread_;
  std::vector<std::thread> relays_;
  std::mutex mutex_;
  std::vector<std::string> names_;
};

// Answers each connection's first request with `reply` (after reading its headers and the
// body its Content-Length announces), recording the request.
class CannedHttp {
 public:
  explicit CannedHttp(std::string reply, std::chrono::milliseconds delay = 0ms)
      : reply_(std::move(reply)), delay_(delay) {
    listener_ = listenTcp(port_);
    thread_ = std::thread([this] {
      for (;;) {
        int client = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) return;
        std::string request;
        char buffer[4096];
        size_t expected = std::string::npos;
        while (expected == std::string::npos || request.size() < expected) {
          ssize_t n = ::read(client, buffer, sizeof(buffer));
          if (n <= 0) break;
          request.append(buffer, static_cast<size_t>(n));
          size_t end = request.find("\r\n\r\n");
          if (end != std::string::npos && expected == std::string::npos) {
            size_t at = request.find("Content-Length: ");
            size_t body =
                at == std::string::npos || at > end ? 0 : std::stoul(request.substr(at + 16));
            expected = end + 4 + body;
          }
        }
        {
          std::lock_guard<std::mutex> lock(mutex_);
          requests_.push_back(request);
        }
        std::this_thread::sleep_for(delay_);
        writeAll(client, reply_.data(), reply_.size());
        ::close(client);
      }
    });
  }
  ~CannedHttp() {
    ::shutdown(listener_, SHUT_RDWR);
    thread_.join();
    ::close(listener_);
  }
  uint16_t port() const { return port_; }
  std::string url(const std::string& path = "/") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  std::string reply_;
  std::chrono::milliseconds delay_;
  int listener_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<std::string> requests_;
};

std::string exceptionText(const std::function<void()>& f) {
  try {
    f();
  } catch (const ChannelError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST_CASE("stream: direct plain connection reads lines and bytes") {
  initNetworkGlobal();
  EchoServer server("plain");
  auto stream = Stream::open("127.0.0.1", server.port(), {});
  stream->writeAll("hello\r\nworld\n");
  CHECK(stream->readLine(5s) == "echo hello");  // "\r\n" and "\n" both end a line
  CHECK(stream->readLine(5s) == "echo world");
  CHECK_FALSE(stream->tls());
}

TEST_CASE("stream: through the SOCKS5 socket, by name, and a refusal names the reason") {
  EchoServer server("plain");
  SocksRelay relay;
  StreamOptions options;
  options.egressSocket = relay.path();
  auto stream = Stream::open("echo.test", server.port(), options);
  stream->writeAll("via broker\n");
  CHECK(stream->readLine(5s) == "echo via broker");
  CHECK(relay.names() == std::vector<std::string>{"echo.test"});

  std::string error = exceptionText([&] { Stream::open("forbidden.test", 443, options); });
  CHECK(error.find("forbidden.test:443") != std::string::npos);
  CHECK(error.find("not allowed") != std::string::npos);

  options.egressSocket = relay.path() + ".missing";
  CHECK(exceptionText([&] { Stream::open("echo.test", 1, options); }).find("egress broker") !=
        std::string::npos);
}

TEST_CASE("stream: TLS is verified against the CA and the host name") {
  EchoServer server("tls");
  StreamOptions options;
  options.tls = true;
  // The system store does not know the test's self-signed certificate.
  CHECK(exceptionText([&] {
          Stream::open("localhost", server.port(), options);
        }).find("TLS with localhost") != std::string::npos);
  options.caFile = server.cert();
  auto stream = Stream::open("localhost", server.port(), options);
  CHECK(stream->tls());
  stream->writeAll("secret\n");
  CHECK(stream->readLine(5s) == "echo secret");
  // The certificate names localhost, not the address: the host check refuses it.
  CHECK(exceptionText([&] {
          Stream::open("127.0.0.1", server.port(), options);
        }).find("TLS with 127.0.0.1") != std::string::npos);
}

TEST_CASE("stream: STARTTLS upgrades, and refuses bytes injected before the handshake") {
  EchoServer server("starttls");
  auto stream = Stream::open("localhost", server.port(), {});
  stream->writeAll("STARTTLS\r\n");
  CHECK(stream->readLine(5s) == "OK");
  stream->startTls(server.cert());
  stream->writeAll("after\n");
  CHECK(stream->readLine(5s) == "echo after");

  EchoServer injecting("inject");
  auto victim = Stream::open("localhost", injecting.port(), {});
  victim->writeAll("STARTTLS\r\n");
  std::this_thread::sleep_for(200ms);  // both lines arrive before the reply is read
  CHECK(victim->readLine(5s) == "OK");
  CHECK(exceptionText([&] { victim->startTls(injecting.cert()); }).find("unexpected data") !=
        std::string::npos);
}

TEST_CASE("stream: a read times out, and interrupt() wakes a blocked read at once") {
  EchoServer server("plain");
  auto stream = Stream::open("127.0.0.1", server.port(), {});
  char buffer[16];
  CHECK_THROWS_AS(stream->read(buffer, sizeof(buffer), 50ms), StreamTimeout);
  auto started = std::chrono::steady_clock::now();
  std::thread waker([&] {
    std::this_thread::sleep_for(100ms);
    stream->interrupt();
  });
  CHECK_THROWS_AS(stream->read(buffer, sizeof(buffer), 10s), StreamInterrupted);
  waker.join();
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  CHECK_THROWS_AS(stream->writeAll("x"), StreamInterrupted);
}

TEST_CASE("stream: an overlong line is an error, not a buffer that grows") {
  EchoServer server("plain");
  auto stream = Stream::open("127.0.0.1", server.port(), {});
  stream->writeAll(std::string(5000, 'a') + "\n");
  CHECK(exceptionText([&] { stream->readLine(5s, 1024); }).find("longer than 1024") !=
        std::string::npos);
}

TEST_CASE("http: status, headers and body; redirects are not followed") {
  initNetworkGlobal();
  CannedHttp server(
      "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nX-Thing: One\r\n"
      "Content-Length: 5\r\nConnection: close\r\n\r\nmoved");
  HttpClient client("");
  HttpRequest request;
  request.url = server.url("/path?q=1");
  HttpResponse response = client.perform(request);
  CHECK(response.status == 302);
  CHECK(response.header("x-thing") == "One");
  CHECK(response.header("location") == "http://169.254.169.254/");
  CHECK(response.body == "moved");
  REQUIRE(server.requests().size() == 1);
  CHECK(server.requests()[0].rfind("GET /path?q=1 HTTP/1.1", 0) == 0);
}

TEST_CASE("http: JSON POST and multipart bodies arrive as sent") {
  CannedHttp server("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
  HttpClient client("");
  HttpRequest post;
  post.method = "POST";
  post.url = server.url("/json");
  post.headers = {"Content-Type: application/json"};
  post.body = R"({"a":1})";
  CHECK(client.perform(post).body == "ok");
  HttpRequest upload;
  upload.method = "POST";
  upload.url = server.url("/upload");
  upload.multipart = {{"chat_id", "42", "", ""}, {"document", "BYTES", "a.txt", "text/plain"}};
  CHECK(client.perform(upload).status == 200);
  auto requests = server.requests();
  REQUIRE(requests.size() == 2);
  CHECK(requests[0].find("\r\n\r\n{\"a\":1}") != std::string::npos);
  CHECK(requests[1].find("multipart/form-data; boundary=") != std::string::npos);
  CHECK(requests[1].find("filename=\"a.txt\"") != std::string::npos);
  CHECK(requests[1].find("BYTES") != std::string::npos);
}

TEST_CASE("http: a body past the bound fails the request, naming the host only") {
  CannedHttp server("HTTP/1.1 200 OK\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n" +
                    std::string(4096, 'x'));
  HttpClient client("");
  HttpRequest request;
  request.url = server.url("/botSECRET-TOKEN/getUpdates");
  request.maxResponseBytes = 1000;
  std::string error = exceptionText([&] { client.perform(request); });
  CHECK(error.find("larger than 1000") != std::string::npos);
  CHECK(error.find("127.0.0.1") != std::string::npos);
  CHECK(error.find("SECRET") == std::string::npos);
}

TEST_CASE("http: through the SOCKS5 socket; the proxy sees the name, not an address") {
  CannedHttp server("HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
  SocksRelay relay;
  HttpClient client(relay.path());
  HttpRequest request;
  request.url = "http://api.example.test:" + std::to_string(server.port()) + "/x";
  CHECK(client.perform(request).status == 204);
  CHECK(relay.names() == std::vector<std::string>{"api.example.test"});
  request.url = "http://forbidden.test:" + std::to_string(server.port()) + "/x";
  CHECK(exceptionText([&] { client.perform(request); }).find("forbidden.test") !=
        std::string::npos);
}

TEST_CASE("http: interrupt() aborts a waiting request promptly; timeouts are errors") {
  CannedHttp slow("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 3s);
  HttpClient client("");
  HttpRequest request;
  request.url = slow.url();
  request.timeout = 200ms;
  CHECK(exceptionText([&] { client.perform(request); }).find("timed out") != std::string::npos);
  request.timeout = 30s;
  auto started = std::chrono::steady_clock::now();
  std::thread waker([&] {
    std::this_thread::sleep_for(100ms);
    client.interrupt();
  });
  CHECK_THROWS_AS(client.perform(request), StreamInterrupted);
  waker.join();
  CHECK(std::chrono::steady_clock::now() - started < 2s);
}

TEST_CASE("http: Retry-After as seconds, as a date, absent, and clamped") {
  HttpResponse response;
  CHECK(retryAfter(response, 1500ms) == 1500ms);
  response.headers = {{"retry-after", "3"}};
  CHECK(retryAfter(response, 0ms) == 3000ms);
  response.headers = {{"retry-after", "0.25"}};
  CHECK(retryAfter(response, 0ms) == 250ms);
  response.headers = {{"retry-after", "99999999999"}};
  CHECK(retryAfter(response, 0ms, 60s) == 60000ms);
  response.headers = {{"retry-after", "Wed, 21 Oct 2015 07:28:00 GMT"}};
  CHECK(retryAfter(response, 5s) == 0ms);  // in the past
  response.headers = {{"retry-after", "soon"}};
  CHECK(retryAfter(response, 700ms) == 700ms);
}

}  // namespace
}  // namespace chitin::channel
