// SPDX-License-Identifier: Apache-2.0
// One GET through the egress broker (see fetch.h).
// Runs in: worker (sandboxed)

#include "fetch.h"

#include <curl/curl.h>
#include <string.h>
#include <unistd.h>

namespace chitin::web {

namespace {

constexpr const char* SYSTEM_CA_DIR = "/etc/ssl/certs";

struct Transfer {
  uint64_t max;
  std::string body;
  bool truncated = false;
};

size_t onBody(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t length = size * count;
  if (t->body.size() + length > t->max) {
    t->body.append(data, t->max - t->body.size());
    t->truncated = true;
    return 0;  // stops the transfer (CURLE_WRITE_ERROR, expected)
  }
  t->body.append(data, length);
  return length;
}

std::string hostOf(CURL* easy, const std::string& url) {
  std::string host;
  CURLU* u = curl_url();
  char* h = nullptr;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
    host = h;
    curl_free(h);
  }
  curl_url_cleanup(u);
  (void)easy;
  return host.empty() ? "the host" : host;
}

}  // namespace

FetchOutcome fetchOnce(const std::string& egressSocket, const std::string& url,
                       uint64_t maxBodyBytes, uint32_t timeoutMs,
                       const std::vector<std::string>& headers) {
  FetchOutcome out;
  CURL* easy = curl_easy_init();
  if (easy == nullptr) {
    out.error = "libcurl could not be initialised";
    return out;
  }
  Transfer transfer{maxBodyBytes};
  std::string proxy = egressSocket.empty() ? "" : "socks5h://localhost" + egressSocket;
  bool ok = curl_easy_setopt(easy, CURLOPT_URL, url.c_str()) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, onBody) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "") == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeoutMs)) == CURLE_OK &&
            curl_easy_setopt(easy, CURLOPT_USERAGENT, "chitin-web-fetch/1") == CURLE_OK &&
            // Never an environment proxy: the broker or nothing.
            curl_easy_setopt(easy, CURLOPT_PROXY, proxy.c_str()) == CURLE_OK;
  if (ok && access(SYSTEM_CA_DIR, R_OK | X_OK) == 0) {
    ok = curl_easy_setopt(easy, CURLOPT_CAINFO, static_cast<const char*>(nullptr)) == CURLE_OK &&
         curl_easy_setopt(easy, CURLOPT_CAPATH, SYSTEM_CA_DIR) == CURLE_OK;
  }
  curl_slist* list = nullptr;
  for (const auto& h : headers) list = curl_slist_append(list, h.c_str());
  if (ok && list != nullptr) ok = curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list) == CURLE_OK;
  if (!ok) {
    curl_slist_free_all(list);
    curl_easy_cleanup(easy);
    out.error = "libcurl refused an option";
    return out;
  }
  CURLcode rc = curl_easy_perform(easy);
  std::string host = hostOf(easy, url);
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &out.status);
  char* type = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type != nullptr) {
    out.contentType = std::string(type).substr(0, 300);
  }
  char* location = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &location) == CURLE_OK &&
      location != nullptr) {
    out.location = location;  // resolved against `url` by libcurl
  }
  if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && transfer.truncated)) {
    out.body = std::move(transfer.body);
    out.truncated = transfer.truncated;
    bool redirect = out.status == 301 || out.status == 302 || out.status == 303 ||
                    out.status == 307 || out.status == 308;
    out.kind = redirect && !out.location.empty() ? FetchOutcome::Kind::REDIRECT
                                                 : FetchOutcome::Kind::RESPONSE;
  } else if (rc == CURLE_OPERATION_TIMEDOUT) {
    out.error = "no complete answer from " + host + " within " + std::to_string(timeoutMs / 1000) +
                " s (" + std::to_string(transfer.body.size()) + " bytes received)";
  } else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_PROXY) {
    out.error = "the egress broker refused or could not reach " + host +
                " (private, loopback and metadata addresses are never reached)";
  } else {
    out.error = "request to " + host + " failed: " + curl_easy_strerror(rc);
  }
  curl_easy_cleanup(easy);
  curl_slist_free_all(list);
  return out;
}

std::string egressSocketFromArgs(int argc, char** argv) {
  const char* flag = "--egress-socket=";
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], flag, strlen(flag)) == 0) return argv[i] + strlen(flag);
  }
  return "/run/chitin/egress.sock";
}

}  // namespace chitin::web
