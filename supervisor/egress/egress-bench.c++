// SPDX-License-Identifier: Apache-2.0
// scripts/bench (j): one HTTPS request tunnelled through the egress broker against the same
// request made directly, as a ratio. A local TLS server with a self-signed certificate made
// here; libcurl as the workers use it (socks5h over the unix socket), a new connection per
// request (TCP, SOCKS5, TLS handshake, GET, close), verifying the certificate.
// Runs in: tests (benchmark)

#include <arpa/inet.h>
#include <curl/curl.h>
#include <kj/debug.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "broker-test-fixture.h"

namespace chitin::egress {

namespace {

using Clock = std::chrono::steady_clock;
constexpr char HOST[] = "bench.test";

// A P-256 key and a self-signed certificate for HOST, valid for a day.
struct Identity {
  EVP_PKEY* key = nullptr;
  X509* cert = nullptr;
  Identity() {
    key = EVP_EC_gen("P-256");
    KJ_ASSERT(key != nullptr);
    cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(HOST), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* san =
        X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, "DNS:bench.test");
    X509_add_ext(cert, san, -1);
    X509_EXTENSION_free(san);
    KJ_ASSERT(X509_sign(cert, key, EVP_sha256()) > 0);
  }
  ~Identity() {
    X509_free(cert);
    EVP_PKEY_free(key);
  }
  std::string certPem() const {
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, cert);
    char* data;
    long size = BIO_get_mem_data(bio, &data);
    std::string pem(data, size);
    BIO_free(bio);
    return pem;
  }
};

// HTTPS on 127.0.0.1: one request per connection, answered "hello", served by a thread.
class TlsServer {
 public:
  explicit TlsServer(const Identity& identity) {
    ctx_ = SSL_CTX_new(TLS_server_method());
    KJ_ASSERT(SSL_CTX_use_certificate(ctx_, identity.cert) == 1);
    KJ_ASSERT(SSL_CTX_use_PrivateKey(ctx_, identity.key) == 1);
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    KJ_SYSCALL(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)));
    KJ_SYSCALL(listen(fd_, 64));
    socklen_t len = sizeof(addr);
    KJ_SYSCALL(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len));
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~TlsServer() {
    stopping_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
    SSL_CTX_free(ctx_);
  }
  uint16_t port() const { return port_; }

 private:
  void serve() {
    while (!stopping_) {
      int conn = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0) return;
      SSL* ssl = SSL_new(ctx_);
      SSL_set_fd(ssl, conn);
      if (SSL_accept(ssl) == 1) {
        std::string request;
        char buffer[4096];
        int n;
        while (request.find("\r\n\r\n") == std::string::npos &&
               (n = SSL_read(ssl, buffer, sizeof(buffer))) > 0) {
          request.append(buffer, n);
        }
        const char response[] =
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        SSL_write(ssl, response, sizeof(response) - 1);
        SSL_shutdown(ssl);
      }
      SSL_free(ssl);
      close(conn);
    }
  }
  SSL_CTX* ctx_;
  int fd_;
  uint16_t port_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

size_t discard(char*, size_t size, size_t count, void* body) {
  static_cast<std::string*>(body)->append(size * count, 'x');
  return size * count;
}

// Seconds for one GET, or a negative value on failure (then `error` says why).
double timedGet(const std::string& url, const std::string& proxy, const std::string& caPem,
                const std::string& resolve, std::string& error) {
  CURL* easy = curl_easy_init();
  std::string body;
  curl_blob ca{const_cast<char*>(caPem.data()), caPem.size(), CURL_BLOB_COPY};
  curl_slist* resolveList = resolve.empty() ? nullptr : curl_slist_append(nullptr, resolve.c_str());
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROXY, proxy.c_str());
  curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &ca);
  curl_easy_setopt(easy, CURLOPT_RESOLVE, resolveList);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
  auto start = Clock::now();
  CURLcode code = curl_easy_perform(easy);
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  curl_easy_cleanup(easy);
  curl_slist_free_all(resolveList);
  if (code != CURLE_OK || body.size() != 5) {
    error = curl_easy_strerror(code);
    return -1;
  }
  return seconds;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

}  // namespace chitin::egress

int main(int argc, char** argv) {
  using namespace chitin::egress;
  int n = argc > 1 ? std::max(5, atoi(argv[1])) : 200;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  Identity identity;
  TlsServer server(identity);
  testing::Fixture broker;
  broker.resolver.script(HOST, {{"127.0.0.1"}});
  std::string port = std::to_string(server.port());
  std::string socket = broker.open("bench", {parseRule(std::string(HOST) + ":" + port, "b", true)});
  std::string url = "https://" + std::string(HOST) + ":" + port + "/";
  std::string ca = identity.certPem();
  std::vector<double> direct, tunnelled;
  std::string error;
  for (int i = 0; i < n + 5; i++) {  // the first five of each warm up
    double d = timedGet(url, "", ca, std::string(HOST) + ":" + port + ":127.0.0.1", error);
    double t = timedGet(url, "socks5h://localhost" + socket, ca, "", error);
    if (d < 0 || t < 0) {
      fprintf(stderr, "egress-bench: a request failed: %s\n", error.c_str());
      return 1;
    }
    if (i < 5) continue;
    direct.push_back(d);
    tunnelled.push_back(t);
  }
  double md = median(direct) * 1000, mt = median(tunnelled) * 1000;
  printf("egress https p50 direct %.3f ms broker %.3f ms ratio %.3f (n=%d)\n", md, mt, mt / md, n);
  return 0;
}
