// SPDX-License-Identifier: Apache-2.0
// The system resolver for the egress broker (see resolver.h).
// Runs in: supervisor

#include "resolver.h"

#include <kj/debug.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>

#include <memory>

namespace chitin::egress {

namespace {

struct Lookup {
  uv_getaddrinfo_t request;
  uint16_t port;
  Resolver::Done done;
};

void onResolved(uv_getaddrinfo_t* request, int status, addrinfo* result) {
  std::unique_ptr<Lookup> lookup(static_cast<Lookup*>(request->data));
  Resolved resolved;
  if (status != 0) {
    resolved.error = uv_strerror(status);
  } else {
    for (addrinfo* ai = result; ai != nullptr; ai = ai->ai_next) {
      if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
      if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
      sockaddr_storage address{};
      memcpy(&address, ai->ai_addr, ai->ai_addrlen);
      // The port is the request's, whatever the service lookup said.
      if (ai->ai_family == AF_INET) {
        reinterpret_cast<sockaddr_in*>(&address)->sin_port = htons(lookup->port);
      } else {
        reinterpret_cast<sockaddr_in6*>(&address)->sin6_port = htons(lookup->port);
      }
      resolved.addresses.push_back(address);
    }
    if (resolved.addresses.empty()) resolved.error = "no IPv4 or IPv6 address";
  }
  uv_freeaddrinfo(result);
  lookup->done(std::move(resolved));
}

}  // namespace

void answerLater(uv_loop_t* loop, Resolver::Done done, Resolved resolved) {
  struct Later {
    uv_idle_t idle;
    Resolver::Done done;
    Resolved resolved;
  };
  auto* later = new Later{{}, std::move(done), std::move(resolved)};
  uv_idle_init(loop, &later->idle);
  later->idle.data = later;
  uv_idle_start(&later->idle, [](uv_idle_t* idle) {
    auto* l = static_cast<Later*>(idle->data);
    uv_idle_stop(idle);
    l->done(std::move(l->resolved));
    uv_close(reinterpret_cast<uv_handle_t*>(idle),
             [](uv_handle_t* h) { delete static_cast<Later*>(h->data); });
  });
}

void SystemResolver::resolve(const std::string& host, uint16_t port, Done done) {
  auto lookup = std::make_unique<Lookup>();
  lookup->request.data = lookup.get();
  lookup->port = port;
  lookup->done = std::move(done);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  int rc = uv_getaddrinfo(loop_, &lookup->request, onResolved, host.c_str(), nullptr, &hints);
  if (rc != 0) {
    // Not started (out of memory, a bad argument): answer from the loop, never from here.
    Resolved failed;
    failed.error = uv_strerror(rc);
    answerLater(loop_, std::move(lookup->done), std::move(failed));
    return;
  }
  lookup.release();  // owned by the request until onResolved
}

}  // namespace chitin::egress
