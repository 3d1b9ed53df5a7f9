// SPDX-License-Identifier: Apache-2.0
// Mail submission with libcurl (see smtp.h).
// Runs in: worker (sandboxed)

#include "smtp.h"

#include <curl/curl.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "../platform.h"
#include "../stream.h"

namespace chitin::channel::email {

namespace {

struct Upload {
  const std::string& data;
  size_t sent = 0;
};

size_t readBody(char* buffer, size_t size, size_t count, void* userdata) {
  auto& upload = *static_cast<Upload*>(userdata);
  size_t n = std::min(size * count, upload.data.size() - upload.sent);
  std::memcpy(buffer, upload.data.data() + upload.sent, n);
  upload.sent += n;
  return n;
}

int onProgress(void* userdata, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(userdata)->load() ? 1 : 0;  // non-zero aborts
}

template <typename T>
void setOption(CURL* easy, CURLoption option, T value) {
  CURLcode rc = curl_easy_setopt(easy, option, value);
  if (rc != CURLE_OK)
    throw ChannelError(std::string("libcurl option refused: ") + curl_easy_strerror(rc));
}

}  // namespace

SmtpClient::SmtpClient(SmtpConfig config, std::string password)
    : config_(std::move(config)), password_(std::move(password)) {}

SmtpClient::~SmtpClient() { std::fill(password_.begin(), password_.end(), '\0'); }

void SmtpClient::interrupt() { interrupted_ = true; }

void SmtpClient::send(const std::string& from, const std::string& to, const std::string& message) {
  if (interrupted_) throw StreamInterrupted{};
  std::unique_ptr<CURL, void (*)(CURL*)> easy(curl_easy_init(), curl_easy_cleanup);
  if (!easy) throw ChannelError("libcurl could not be initialised");
  CURL* e = easy.get();
  std::string peer = config_.host + ":" + std::to_string(config_.port);
  // The URL's path is the EHLO domain.
  std::string url = std::string(config_.tls == SmtpConfig::Tls::IMPLICIT ? "smtps://" : "smtp://") +
                    peer + "/" + config_.heloDomain;
  setOption(e, CURLOPT_URL, url.c_str());
  setOption(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  setOption(e, CURLOPT_NOSIGNAL, 1L);
  setOption(e, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
  setOption(e, CURLOPT_TIMEOUT_MS, 120000L);
  setOption(e, CURLOPT_USE_SSL,
            config_.tls == SmtpConfig::Tls::NONE ? static_cast<long>(CURLUSESSL_NONE)
                                                 : static_cast<long>(CURLUSESSL_ALL));
  std::string proxy =
      config_.egressSocket.empty() ? "" : "socks5h://localhost" + config_.egressSocket;
  setOption(e, CURLOPT_PROXY, proxy.c_str());  // "" = none, never an environment proxy
  if (!config_.caFile.empty()) setOption(e, CURLOPT_CAINFO, config_.caFile.c_str());
  if (!config_.username.empty()) {
    setOption(e, CURLOPT_USERNAME, config_.username.c_str());
    setOption(e, CURLOPT_PASSWORD, password_.c_str());
  }
  std::string mailFrom = "<" + from + ">";
  setOption(e, CURLOPT_MAIL_FROM, mailFrom.c_str());
  std::unique_ptr<curl_slist, void (*)(curl_slist*)> recipients(
      curl_slist_append(nullptr, ("<" + to + ">").c_str()), curl_slist_free_all);
  setOption(e, CURLOPT_MAIL_RCPT, recipients.get());
  Upload upload{message};
  setOption(e, CURLOPT_READFUNCTION, readBody);
  setOption(e, CURLOPT_READDATA, &upload);
  setOption(e, CURLOPT_UPLOAD, 1L);
  setOption(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
  setOption(e, CURLOPT_NOPROGRESS, 0L);
  setOption(e, CURLOPT_XFERINFOFUNCTION, onProgress);
  setOption(e, CURLOPT_XFERINFODATA, &interrupted_);
  char error[CURL_ERROR_SIZE] = {};
  setOption(e, CURLOPT_ERRORBUFFER, error);

  CURLcode rc = curl_easy_perform(e);
  if (interrupted_) throw StreamInterrupted{};
  if (rc == CURLE_OK) return;
  long code = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
  std::string detail = error[0] ? error : curl_easy_strerror(rc);
  if (rc == CURLE_LOGIN_DENIED) {
    throw ChannelError("SMTP " + peer + ": login as '" + config_.username + "' refused (" + detail +
                       ")");
  }
  throw ChannelError("SMTP " + peer + ": " + detail +
                     (code ? " (reply " + std::to_string(code) + ")" : ""));
}

}  // namespace chitin::channel::email
