// SPDX-License-Identifier: Apache-2.0
// The benchmark's instant model: an OpenAI-compatible Chat Completions server on 127.0.0.1
// that answers every POST in microseconds with one short streamed reply, "echo: " and the last
// user message, as the Python fake's default answer, so that a warm turn's time is chitin's own
// (issue 12: "a fake that answers in microseconds … print its own cost") and the load figure
// can still tell a wrong or lost reply. The Python fake (tests/fakes) is the one that checks
// requests and plays scripts.
//
//   instant-model --port-file PATH     listens on an ephemeral port, writes it to PATH
//
// One thread per connection (kept alive, as the model worker keeps its connection); HTTP/1.1
// with Content-Length or chunked request bodies. Not a test and not shipped.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include <nlohmann/json.hpp>

namespace {

// One streamed answer: the assistant's text, the finish, the usage, the terminator.
std::string streamedAnswer(const std::string& text) {
  const char* head = R"({"id":"chatcmpl-instant","object":"chat.completion.chunk","created":1,)"
                     R"("model":"instant","choices":)";
  nlohmann::json delta = {{"role", "assistant"}, {"content", text}};
  std::string body;
  body += std::string("data: ") + head + R"([{"index":0,"delta":)" +
          delta.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
          R"(,"finish_reason":null}]})" + "\n\n";
  body +=
      std::string("data: ") + head + R"([{"index":0,"delta":{},"finish_reason":"stop"}]})" + "\n\n";
  body += std::string("data: ") + head +
          R"([],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}})" + "\n\n";
  body += "data: [DONE]\n\n";
  return "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
         "Content-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// The text of the last user message with string content in a Chat Completions request body.
std::string lastUserText(std::string_view body) {
  auto request = nlohmann::json::parse(body, nullptr, false);
  if (!request.is_object() || !request.contains("messages") || !request["messages"].is_array()) {
    return "";
  }
  const auto& messages = request["messages"];
  for (auto it = messages.rbegin(); it != messages.rend(); ++it) {
    if (it->is_object() && it->value("role", "") == "user" && it->contains("content") &&
        (*it)["content"].is_string()) {
      return (*it)["content"].get<std::string>();
    }
  }
  return "";
}

std::string notFound() {
  std::string body = R"({"error":{"message":"not found","type":"invalid_request_error"}})";
  return "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

bool writeAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads into `buffer` until it holds `want` bytes past `from`; false when the peer is gone.
bool fill(int fd, std::string& buffer, size_t want) {
  char chunk[65536];
  while (buffer.size() < want) {
    ssize_t n = recv(fd, chunk, sizeof chunk, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Skips a chunked body starting at buffer[at]; returns the offset after it, or npos. (The
// model worker sends a Content-Length; a chunked body is answered with an empty echo.)
size_t skipChunked(int fd, std::string& buffer, size_t at) {
  while (true) {
    size_t eol;
    while ((eol = buffer.find("\r\n", at)) == std::string::npos) {
      if (!fill(fd, buffer, buffer.size() + 1)) return std::string::npos;
    }
    size_t size = std::strtoul(buffer.c_str() + at, nullptr, 16);
    at = eol + 2;
    if (size == 0) {  // the last chunk, then (no trailers) an empty line
      if (!fill(fd, buffer, at + 2)) return std::string::npos;
      return at + 2;
    }
    if (!fill(fd, buffer, at + size + 2)) return std::string::npos;
    at += size + 2;
  }
}

void serve(int fd) {
  static const std::string NOT_FOUND = notFound();
  std::string buffer;
  while (true) {
    size_t end;
    while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (!fill(fd, buffer, buffer.size() + 1)) {
        close(fd);
        return;
      }
    }
    std::string head = lower(std::string_view(buffer).substr(0, end));
    size_t bodyAt = end + 4;
    size_t next = bodyAt;
    if (head.find("transfer-encoding: chunked") != std::string::npos) {
      next = skipChunked(fd, buffer, bodyAt);
    } else if (size_t cl = head.find("content-length:"); cl != std::string::npos) {
      size_t length = std::strtoul(head.c_str() + cl + 15, nullptr, 10);
      next = fill(fd, buffer, bodyAt + length) ? bodyAt + length : std::string::npos;
    }
    if (next == std::string::npos) break;
    bool post =
        head.rfind("post ", 0) == 0 && head.find(" /v1/chat/completions ") != std::string::npos;
    std::string_view body = std::string_view(buffer).substr(bodyAt, next - bodyAt);
    if (!writeAll(fd, post ? streamedAnswer("echo: " + lastUserText(body)) : NOT_FOUND)) break;
    buffer.erase(0, next);
  }
  close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3 || std::string_view(argv[1]) != "--port-file") {
    std::fprintf(stderr, "usage: %s --port-file PATH\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      listen(listener, 512) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    std::perror("instant-model: cannot listen on 127.0.0.1");
    return 1;
  }
  std::string portFile = argv[2];
  std::string temporary = portFile + ".tmp";
  FILE* f = std::fopen(temporary.c_str(), "w");
  if (f == nullptr || std::fprintf(f, "%d\n", ntohs(address.sin_port)) < 0 || std::fclose(f) != 0 ||
      std::rename(temporary.c_str(), portFile.c_str()) != 0) {
    std::perror("instant-model: cannot write the port file");
    return 1;
  }
  while (true) {
    int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      std::perror("instant-model: accept");
      return 1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    std::thread(serve, fd).detach();
  }
}
