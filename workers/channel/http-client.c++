// SPDX-License-Identifier: Apache-2.0
// HTTP(S) through the egress broker with libcurl (see http-client.h).
// Runs in: worker (sandboxed)
//
// One easy handle per client (its connection is reused between requests) driven by a private
// multi handle, so interrupt() can wake a transfer that is waiting on the network
// (curl_multi_wakeup) instead of leaving shutdown to the next timeout.

#include "http-client.h"

#include <curl/curl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstring>

#include "platform.h"
#include "stream.h"

namespace chitin::channel {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int MAX_POLL_MS = 1000;
// Debian's CA certificates as hashed links (update-ca-certificates keeps them).
constexpr const char* SYSTEM_CA_DIR = "/etc/ssl/certs";

std::string lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The URL's host, for error messages: never the path or query, which may carry a token
// (Telegram's /bot<token>/...).
std::string hostOf(const std::string& url) {
  CURLU* parsed = curl_url();
  std::string host = "(unparseable URL)";
  if (curl_url_set(parsed, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* part = nullptr;
    if (curl_url_get(parsed, CURLUPART_HOST, &part, 0) == CURLUE_OK) {
      host = part;
      curl_free(part);
    }
  }
  curl_url_cleanup(parsed);
  return host;
}

struct Transfer {
  const HttpRequest& request;
  HttpResponse& response;
  bool tooLarge = false;
  bool stoppedByHandler = false;
  Clock::time_point lastActivity = Clock::now();
};

size_t onHeader(char* data, size_t size, size_t count, void* userdata) {
  auto& t = *static_cast<Transfer*>(userdata);
  size_t length = size * count;
  t.lastActivity = Clock::now();
  std::string_view line = trim(std::string_view(data, length));
  if (line.substr(0, 5) == "HTTP/") {
    t.response.headers.clear();  // a new response (after 100 Continue): start over
    return length;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos || t.response.headers.size() >= 200) return length;
  t.response.headers.emplace_back(lower(trim(line.substr(0, colon))),
                                  std::string(trim(line.substr(colon + 1))));
  return length;
}

size_t onBody(char* data, size_t size, size_t count, void* userdata) {
  auto& t = *static_cast<Transfer*>(userdata);
  size_t length = size * count;
  t.lastActivity = Clock::now();
  if (t.request.onBody) {
    if (!t.request.onBody(std::string_view(data, length))) {
      t.stoppedByHandler = true;
      return 0;
    }
    return length;
  }
  if (t.response.body.size() + length > t.request.maxResponseBytes) {
    t.tooLarge = true;
    return 0;
  }
  t.response.body.append(data, length);
  return length;
}

template <typename T>
void setOption(CURL* easy, CURLoption option, T value) {
  CURLcode rc = curl_easy_setopt(easy, option, value);
  if (rc != CURLE_OK)
    throw ChannelError(std::string("libcurl option refused: ") + curl_easy_strerror(rc));
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [key, value] : headers)
    if (key == name) return value;
  return "";
}

struct HttpClient::Impl {
  std::string egressSocket;
  std::string caFile;
  CURL* easy = nullptr;
  CURLM* multi = nullptr;
  std::atomic<bool> interrupted{false};

  ~Impl() {
    if (multi) curl_multi_cleanup(multi);
    if (easy) curl_easy_cleanup(easy);
  }
};

HttpClient::HttpClient(std::string egressSocket, std::string caFile)
    : impl_(std::make_unique<Impl>()) {
  impl_->egressSocket = std::move(egressSocket);
  impl_->caFile = std::move(caFile);
  impl_->easy = curl_easy_init();
  impl_->multi = curl_multi_init();
  if (!impl_->easy || !impl_->multi) throw ChannelError("libcurl could not be initialised");
}

HttpClient::~HttpClient() = default;

void HttpClient::interrupt() {
  impl_->interrupted.store(true);
  curl_multi_wakeup(impl_->multi);
}

HttpResponse HttpClient::perform(const HttpRequest& request) {
  if (impl_->interrupted.load()) throw StreamInterrupted{};
  CURL* easy = impl_->easy;
  curl_easy_reset(easy);
  HttpResponse response;
  Transfer transfer{request, response};
  std::string host = hostOf(request.url);

  setOption(easy, CURLOPT_URL, request.url.c_str());
  setOption(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  setOption(easy, CURLOPT_FOLLOWLOCATION, 0L);
  setOption(easy, CURLOPT_NOSIGNAL, 1L);
  setOption(easy, CURLOPT_HEADERFUNCTION, onHeader);
  setOption(easy, CURLOPT_HEADERDATA, &transfer);
  setOption(easy, CURLOPT_WRITEFUNCTION, onBody);
  setOption(easy, CURLOPT_WRITEDATA, &transfer);
  setOption(easy, CURLOPT_ACCEPT_ENCODING, "");  // what libcurl can decode
  setOption(easy, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
  // Through the broker, which resolves the name itself ("socks5h"); never an environment proxy.
  std::string proxy =
      impl_->egressSocket.empty() ? "" : "socks5h://localhost" + impl_->egressSocket;
  setOption(easy, CURLOPT_PROXY, proxy.c_str());
  if (!impl_->caFile.empty()) {
    setOption(easy, CURLOPT_CAINFO, impl_->caFile.c_str());
  } else if (access(SYSTEM_CA_DIR, R_OK | X_OK) == 0) {
    // The hashed CA directory instead of the bundle: OpenSSL then loads only the certificates a
    // chain needs, where the bundle would parse all ~140 into every connection's store
    // (measured: 650 kB of heap per connection, a third of an idle channel worker's budget).
    setOption(easy, CURLOPT_CAINFO, static_cast<const char*>(nullptr));
    setOption(easy, CURLOPT_CAPATH, SYSTEM_CA_DIR);
  }

  curl_slist* headers = nullptr;
  for (const auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip
  setOption(easy, CURLOPT_HTTPHEADER, headers);

  curl_mime* mime = nullptr;
  if (!request.multipart.empty()) {
    mime = curl_mime_init(easy);
    for (const auto& part : request.multipart) {
      curl_mimepart* p = curl_mime_addpart(mime);
      curl_mime_name(p, part.name.c_str());
      curl_mime_data(p, part.data.data(), part.data.size());
      if (!part.fileName.empty()) curl_mime_filename(p, part.fileName.c_str());
      if (!part.contentType.empty()) curl_mime_type(p, part.contentType.c_str());
    }
    setOption(easy, CURLOPT_MIMEPOST, mime);
    if (request.method != "POST") setOption(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else if (request.method == "GET") {
    setOption(easy, CURLOPT_HTTPGET, 1L);
  } else {
    setOption(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    setOption(easy, CURLOPT_COPYPOSTFIELDS, request.body.c_str());
    if (request.method != "POST") setOption(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }

  // A plain request has a total deadline; a streaming one (SSE) an idle timeout instead.
  auto started = Clock::now();
  auto expired = [&] {
    auto now = Clock::now();
    return request.onBody ? now - transfer.lastActivity > request.timeout
                          : now - started > request.timeout;
  };

  curl_multi_add_handle(impl_->multi, easy);
  CURLcode result = CURLE_OK;
  bool done = false, timedOut = false, interrupted = false;
  while (!done) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(impl_->multi, &running);
    if (mc != CURLM_OK) {
      result = CURLE_FAILED_INIT;
      break;
    }
    int queued = 0;
    while (CURLMsg* message = curl_multi_info_read(impl_->multi, &queued)) {
      if (message->msg == CURLMSG_DONE) {
        result = message->data.result;
        done = true;
      }
    }
    if (done) break;
    if (impl_->interrupted.load()) {
      interrupted = true;
      break;
    }
    if (expired()) {
      timedOut = true;
      break;
    }
    curl_multi_poll(impl_->multi, nullptr, 0, MAX_POLL_MS, nullptr);
  }
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
  curl_multi_remove_handle(impl_->multi, easy);
  curl_slist_free_all(headers);
  if (mime) curl_mime_free(mime);

  if (interrupted || impl_->interrupted.load()) throw StreamInterrupted{};
  if (timedOut) throw ChannelError("request to " + host + " timed out");
  if (transfer.tooLarge)
    throw ChannelError("response from " + host + " is larger than " +
                       std::to_string(request.maxResponseBytes) + " bytes");
  if (transfer.stoppedByHandler) return response;
  if (result != CURLE_OK)
    throw ChannelError("request to " + host + " failed: " + curl_easy_strerror(result));
  return response;
}

std::chrono::milliseconds retryAfter(const HttpResponse& response,
                                     std::chrono::milliseconds fallback,
                                     std::chrono::milliseconds cap) {
  std::string value(trim(response.header("retry-after")));
  if (value.empty()) return std::min(fallback, cap);
  std::chrono::milliseconds wait = fallback;
  char* end = nullptr;
  double seconds = std::strtod(value.c_str(), &end);
  if (end && *end == '\0' && std::isfinite(seconds)) {
    wait =
        std::chrono::milliseconds(static_cast<int64_t>(std::clamp(seconds, 0.0, 86400.0) * 1000.0));
  } else {
    time_t when = curl_getdate(value.c_str(), nullptr);
    if (when >= 0) {
      auto delta = std::chrono::system_clock::from_time_t(when) - std::chrono::system_clock::now();
      wait = std::chrono::duration_cast<std::chrono::milliseconds>(delta);
      if (wait.count() < 0) wait = std::chrono::milliseconds(0);
    }
  }
  return std::min(wait, cap);
}

}  // namespace chitin::channel
