// SPDX-License-Identifier: Apache-2.0
// Test support for the broker (see broker-test-util.h).
// Runs in: tests

#include "broker-test-util.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <ftw.h>
#include <kj/debug.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <future>

#include "address.h"
#include "audit-log.h"

namespace chitin::egress::testing {

LoopThread::LoopThread() {
  signal(SIGPIPE, SIG_IGN);  // as in the supervisor; the broker requires it
  KJ_ASSERT(uv_loop_init(&loop_) == 0);
  uv_async_init(&loop_, &wake_, [](uv_async_t* async) {
    auto* self = static_cast<LoopThread*>(async->data);
    for (;;) {
      std::function<void()> task;
      {
        std::lock_guard<std::mutex> lock(self->mutex_);
        if (self->tasks_.empty()) return;
        task = std::move(self->tasks_.front());
        self->tasks_.pop_front();
      }
      task();
    }
  });
  wake_.data = this;
  thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
}

LoopThread::~LoopThread() {
  run([this] { uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr); });
  thread_.join();  // uv_run returns once the last handle has closed
  int rc = uv_loop_close(&loop_);
  KJ_ASSERT(rc == 0, "handles left open on the broker's loop", uv_strerror(rc));
}

void LoopThread::run(std::function<void()> fn) {
  std::promise<void> done;
  auto result = done.get_future();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks_.push_back([&] {
      // A kj::Exception must die on the thread that made it (KJ aborts otherwise): hand its
      // text over instead.
      KJ_IF_MAYBE (e, kj::runCatchingExceptions([&] { fn(); })) {
        done.set_exception(std::make_exception_ptr(std::runtime_error(e->getDescription().cStr())));
      } else {
        done.set_value();
      }
    });
  }
  uv_async_send(&wake_);
  result.get();
}

void ScriptedResolver::script(const std::string& host,
                              std::vector<std::vector<std::string>> answers) {
  std::lock_guard<std::mutex> lock(mutex_);
  answers_[host] = std::deque<std::vector<std::string>>(answers.begin(), answers.end());
}

int ScriptedResolver::lookups(const std::string& host) {
  std::lock_guard<std::mutex> lock(mutex_);
  return lookups_[host];
}

void ScriptedResolver::resolve(const std::string& host, uint16_t port, Done done) {
  std::vector<std::string> answer = {"error:unknown host"};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    lookups_[host]++;
    auto& queue = answers_[host];
    if (!queue.empty()) {
      answer = queue.front();
      if (queue.size() > 1) queue.pop_front();
    }
  }
  if (answer.size() == 1 && answer[0] == "never") return;  // the broker's timeout must act
  Resolved resolved;
  for (auto& text : answer) {
    if (text.rfind("error:", 0) == 0) {
      resolved.error = text.substr(6);
      continue;
    }
    sockaddr_storage address;
    KJ_ASSERT(literalAddress(text, port, address), text);
    resolved.addresses.push_back(address);
  }
  // Answered from the loop, later, as the real resolver does.
  struct Later {
    uv_timer_t timer;
    Done done;
    Resolved resolved;
  };
  auto* later = new Later{{}, std::move(done), std::move(resolved)};
  uv_timer_init(loop_, &later->timer);
  later->timer.data = later;
  uv_timer_start(
      &later->timer,
      [](uv_timer_t* t) {
        auto* l = static_cast<Later*>(t->data);
        l->done(std::move(l->resolved));
        uv_close(reinterpret_cast<uv_handle_t*>(t),
                 [](uv_handle_t* h) { delete static_cast<Later*>(h->data); });
      },
      0, 0);
}

TestServer::TestServer(Mode mode) : mode_(mode) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  KJ_ASSERT(fd_ >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  KJ_SYSCALL(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
  KJ_SYSCALL(listen(fd_, mode == Mode::FULL_QUEUE ? 0 : 16));
  socklen_t len = sizeof(addr);
  KJ_SYSCALL(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len));
  port_ = ntohs(addr.sin_port);
  KJ_SYSCALL(pipe2(stop_, O_CLOEXEC));
  if (mode != Mode::FULL_QUEUE) thread_ = std::thread([this] { serve(); });
}

TestServer::~TestServer() {
  if (write(stop_[1], "x", 1) != 1) abort();
  if (thread_.joinable()) thread_.join();
  close(fd_);
  close(stop_[0]);
  close(stop_[1]);
}

void TestServer::serve() {
  std::vector<int> clients;
  std::map<int, std::string> requests;
  for (;;) {
    std::vector<pollfd> fds = {{stop_[0], POLLIN, 0}, {fd_, POLLIN, 0}};
    if (mode_ != Mode::HOLD) {
      for (int c : clients) fds.push_back({c, POLLIN, 0});
    }
    if (poll(fds.data(), fds.size(), -1) <= 0) continue;
    if (fds[0].revents != 0) break;
    if (fds[1].revents != 0) {
      int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        accepted_++;
        clients.push_back(c);
      }
    }
    for (size_t i = 2; i < fds.size(); i++) {
      if (fds[i].revents == 0) continue;
      int c = fds[i].fd;
      char buffer[65536];
      ssize_t n = read(c, buffer, sizeof(buffer));
      bool done = n <= 0;
      if (n > 0 && mode_ == Mode::ECHO_BACK) done = write(c, buffer, n) != n;
      if (n > 0 && mode_ == Mode::HTTP_HELLO) {
        requests[c].append(buffer, n);
        if (requests[c].find("\r\n\r\n") != std::string::npos) {
          const char response[] =
              "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
          done = true;
          if (write(c, response, sizeof(response) - 1) < 0) done = true;
        }
      }
      if (done) {
        close(c);
        clients.erase(std::find(clients.begin(), clients.end(), c));
      }
    }
  }
  for (int c : clients) close(c);
}

int connectUnix(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  KJ_ASSERT(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  KJ_ASSERT(path.size() < sizeof(addr.sun_path), path);
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  KJ_SYSCALL(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), path);
  return fd;
}

namespace {

// Exactly `size` bytes within `timeoutMs`, or fewer at EOF or timeout.
std::string readExactly(int fd, size_t size, int timeoutMs) {
  std::string out;
  while (out.size() < size) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, timeoutMs) <= 0) break;
    char buffer[512];
    ssize_t n = read(fd, buffer, std::min(sizeof(buffer), size - out.size()));
    if (n <= 0) break;
    out.append(buffer, n);
  }
  return out;
}

}  // namespace

SocksResult socksConnect(const std::string& path, const std::string& host, uint16_t port) {
  SocksResult result;
  result.fd = connectUnix(path);
  std::string request = {5, 1, 0, 5, 1, 0, 3, static_cast<char>(host.size())};
  request += host;
  request += static_cast<char>(port >> 8);
  request += static_cast<char>(port & 0xff);
  // A broker that refuses at once (the connection cap) may have closed before this write.
  if (write(result.fd, request.data(), request.size()) != static_cast<ssize_t>(request.size())) {
    return result;
  }
  std::string chosen = readExactly(result.fd, 2, 10000);
  if (chosen != std::string({5, 0})) return result;
  std::string reply = readExactly(result.fd, 10, 10000);
  if (reply.size() == 10) result.reply = static_cast<uint8_t>(reply[1]);
  return result;
}

std::string readAll(int fd, int timeoutMs) {
  std::string out;
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, timeoutMs) <= 0) return out + "<timeout>";
    char buffer[65536];
    ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n <= 0) return out;
    out.append(buffer, n);
  }
}

namespace {

size_t collect(char* data, size_t size, size_t count, void* userdata) {
  static_cast<std::string*>(userdata)->append(data, size * count);
  return size * count;
}

}  // namespace

Fetched curlGet(const std::string& socketPath, const std::string& url, long timeoutMs) {
  Fetched fetched;
  CURL* easy = curl_easy_init();
  KJ_ASSERT(easy != nullptr);
  std::string proxy = "socks5h://localhost" + socketPath;
  char error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROXY, proxy.c_str());
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeoutMs);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &fetched.body);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  fetched.curlCode = curl_easy_perform(easy);
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &fetched.status);
  fetched.error = error;
  curl_easy_cleanup(easy);
  return fetched;
}

std::vector<audit::Record> egressRecords(const std::string& dir) {
  audit::Filter filter;
  filter.kind = audit::EGRESS;
  return audit::read(dir, filter);
}

TempDir::TempDir(const std::string& prefix) {
  std::string pattern = prefix + "-XXXXXX";
  KJ_ASSERT(mkdtemp(pattern.data()) != nullptr);
  path_ = pattern;
}

TempDir::~TempDir() {
  nftw(
      path_.c_str(), [](const char* p, const struct stat*, int, FTW*) { return remove(p); }, 16,
      FTW_DEPTH | FTW_PHYS);
}

}  // namespace chitin::egress::testing
