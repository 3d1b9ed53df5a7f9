// SPDX-License-Identifier: Apache-2.0
// One HTTP(S) GET through the egress broker, never following a redirect, with a body cap and
// a deadline.
// Runs in: worker (sandboxed)

#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace chitin::web {

struct FetchOutcome {
  enum class Kind { RESPONSE, REDIRECT, FAILED };
  Kind kind = Kind::FAILED;
  long status = 0;
  std::string contentType;  // the header as sent
  std::string body;
  bool truncated = false;  // the body was cut at maxBodyBytes
  std::string location;    // REDIRECT: the Location, absolute
  std::string error;       // FAILED: why, naming the host (never the path or query)
};

// libcurl with CURLOPT_PROXY "socks5h://localhost<egressSocket>" (the broker resolves the
// name), http and https only, no redirects followed, compressed bodies decoded (the cap counts
// decoded bytes, so a compression bomb stops at it), TLS verified against the system store.
// `headers` ("Name: value") are sent as well (web_search's API key, Accept).
FetchOutcome fetchOnce(const std::string& egressSocket, const std::string& url,
                       uint64_t maxBodyBytes, uint32_t timeoutMs,
                       const std::vector<std::string>& headers = {});

// The broker socket's path: /run/chitin/egress.sock, where the sandbox binds it, unless a test
// runs the worker unsandboxed with --egress-socket=PATH.
std::string egressSocketFromArgs(int argc, char** argv);

}  // namespace chitin::web
