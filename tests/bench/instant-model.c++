// SPDX-License-Identifier: Apache-2.0
// The benchmark's instant model: an OpenAI-compatible Chat Completions server on 127.0.0.1
// that answers every POST in microseconds with one short streamed reply, "echo: " and the last
// user message, as the Python fake's default answer, so that a warm turn's time is chitin's own
// (issue 12: "a fake that answers in microseconds … print its own cost") and the load figure
// can still tell a wrong or lost reply. The Python fake (tests/fakes) is the one that checks
// requests and plays scripts.
//
//   instant-model --port-file PATH     listens on an ephemeral port, writes it to PATH
//   GET /stats                         {"answers": N, "p50_us": …}: its own time per answer
//
// One thread per connection (kept alive, as the model worker keeps its connection); HTTP/1.1
// with Content-Length or chunked request bodies. Not a test and not shipped.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

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
// Read with a SAX pass that keeps no document: the history grows with the session, and the
// model's own time should stay small beside chitin's.
class LastUserText : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::string last;

  bool null() override { return scalar(); }
  bool boolean(bool) override { return scalar(); }
  bool number_integer(number_integer_t) override { return scalar(); }
  bool number_unsigned(number_unsigned_t) override { return scalar(); }
  bool number_float(number_float_t, const string_t&) override { return scalar(); }
  bool binary(binary_t&) override { return scalar(); }
  bool string(string_t& value) override {
    if (inMessage()) {
      if (key_ == "role") role_ = value;
      if (key_ == "content") content_ = value, hasContent_ = true;
    }
    return scalar();
  }
  bool start_object(std::size_t) override {
    bool message = stack_.size() == 2 && stack_.back() == Context::MESSAGES;
    stack_.push_back(message ? Context::MESSAGE : Context::OTHER);
    if (message) role_.clear(), content_.clear(), hasContent_ = false;
    key_.clear();
    return true;
  }
  bool key(string_t& key) override {
    key_ = key;
    return true;
  }
  bool end_object() override {
    if (inMessage() && role_ == "user" && hasContent_) last = content_;
    stack_.pop_back();
    key_.clear();
    return true;
  }
  bool start_array(std::size_t) override {
    // The top-level object's "messages" array.
    stack_.push_back(stack_.size() == 1 && key_ == "messages" ? Context::MESSAGES : Context::OTHER);
    return true;
  }
  bool end_array() override {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  enum class Context { OTHER, MESSAGES, MESSAGE };
  bool inMessage() const { return stack_.size() == 3 && stack_.back() == Context::MESSAGE; }
  bool scalar() { return true; }

  std::vector<Context> stack_;
  std::string key_, role_, content_;
  bool hasContent_ = false;
};

// The JSON string literal starting at body[at] (its opening quote), unescaped; nullopt if there
// is none.
std::optional<std::string> stringAt(std::string_view body, size_t at) {
  if (at >= body.size() || body[at] != '"') return std::nullopt;
  size_t end = at + 1;
  while (end < body.size() && body[end] != '"') end += body[end] == '\\' ? 2 : 1;
  if (end >= body.size()) return std::nullopt;
  auto parsed = nlohmann::json::parse(body.substr(at, end - at + 1), nullptr, false);
  if (!parsed.is_string()) return std::nullopt;
  return parsed.get<std::string>();
}

std::string lastUserText(std::string_view body) {
  // Quick path, a few microseconds: the last `"role":"user"` (quotes inside JSON strings are
  // escaped, so this text can only be a key and its value) directly followed by its "content"
  // string, the order chitin's model worker writes.
  static constexpr std::string_view ROLE = R"("role":"user")";
  static constexpr std::string_view CONTENT = R"(,"content":)";
  size_t role = body.rfind(ROLE);
  if (role != std::string_view::npos &&
      body.substr(role + ROLE.size(), CONTENT.size()) == CONTENT) {
    if (auto text = stringAt(body, role + ROLE.size() + CONTENT.size())) return *text;
  }
  // Any other shape: the whole body, without keeping a document.
  LastUserText reader;
  if (!nlohmann::json::sax_parse(body, &reader)) return "";
  return reader.last;
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

// Reads into `buffer` until it holds `want` bytes; false when the peer is gone.
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

// Each answer's time inside this process (request read -> reply written), for GET /stats: the
// bench takes the model's own part off a turn with it.
std::mutex statsMutex;
std::vector<double> answerMicros;

std::string stats() {
  std::vector<double> sorted;
  {
    std::lock_guard<std::mutex> lock(statsMutex);
    sorted = answerMicros;
  }
  std::sort(sorted.begin(), sorted.end());
  double p50 = sorted.empty() ? 0 : sorted[sorted.size() / 2];
  std::string body =
      "{\"answers\":" + std::to_string(sorted.size()) + ",\"p50_us\":" + std::to_string(p50) + "}";
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
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
    if (head.rfind("get /stats ", 0) == 0) {
      if (!writeAll(fd, stats())) break;
    } else if (post) {
      auto started = std::chrono::steady_clock::now();
      std::string_view body = std::string_view(buffer).substr(bodyAt, next - bodyAt);
      if (!writeAll(fd, streamedAnswer("echo: " + lastUserText(body)))) break;
      std::chrono::duration<double, std::micro> took = std::chrono::steady_clock::now() - started;
      std::lock_guard<std::mutex> lock(statsMutex);
      answerMicros.push_back(took.count());
    } else if (!writeAll(fd, NOT_FOUND)) {
      break;
    }
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
