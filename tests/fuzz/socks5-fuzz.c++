// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the egress broker's SOCKS5 handshake parser (the first bytes a hostile worker
// sends), fed whole and again in fuzzer-chosen chunks; both must agree, never read past the
// request, never hold more than one handshake, and end in a request or a refusal.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: byte 0 seeds the chunk sizes (0 = one read), the rest is what the worker sends. The
// host that comes out is then normalized as the broker does (any bytes, never a crash).

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz-support.h"
#include "rules.h"
#include "socks5.h"

using chitin::egress::socks5::Handshake;

namespace {

struct Run {
  std::string sent;
  bool close = false;
  bool request = false;
  std::string host;
  uint16_t port = 0;
  size_t consumed = 0;
};

Run feed(std::string_view input, uint8_t seed) {
  Run run;
  Handshake handshake;
  uint32_t state = seed;
  while (run.consumed < input.size() && !handshake.finished()) {
    size_t chunk = input.size();
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      chunk = 1 + (state >> 16) % 24;
    }
    std::string_view piece = input.substr(run.consumed, chunk);
    size_t before = piece.size();
    auto step = handshake.feed(piece);
    FUZZ_CHECK(piece.size() <= before, "the parser consumed more than it was given");
    run.consumed += before - piece.size();
    run.sent += step.send;
    if (step.close) {
      FUZZ_CHECK(!step.error.empty(), "a refusal without a reason");
      run.close = true;
    }
    if (step.request) {
      FUZZ_CHECK(!step.request->host.empty() && step.request->host.size() <= 255,
                 "a request host of impossible length");
      run.request = true;
      run.host = step.request->host;
      run.port = step.request->port;
    }
    FUZZ_CHECK(!(step.close && step.request), "a step both refused and complete");
    // Without a refusal or a request, the parser must have wanted the whole piece.
    if (!step.close && !step.request) FUZZ_CHECK(piece.empty(), "bytes left unread mid-handshake");
  }
  FUZZ_CHECK(run.consumed <= chitin::egress::socks5::MAX_HANDSHAKE_BYTES,
             "more than one handshake consumed");
  FUZZ_CHECK(run.sent.size() <= 2 + 10, "more sent than a method choice and one reply");
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  Run whole = feed(input, 0);
  Run chunked = feed(input, data[0]);
  FUZZ_CHECK(whole.sent == chunked.sent && whole.close == chunked.close &&
                 whole.request == chunked.request && whole.host == chunked.host &&
                 whole.port == chunked.port,
             "chunking changed the outcome");
  // Where the request ends (the worker's payload begins) must not depend on chunking; after a
  // refusal the connection is closed, so how much was swallowed does not matter.
  if (whole.request) FUZZ_CHECK(whole.consumed == chunked.consumed, "chunking moved the payload");
  if (whole.request) {
    std::string why;
    auto normal = chitin::egress::normalizeHost(whole.host, &why);
    FUZZ_CHECK(normal.has_value() || !why.empty(), "a refused host without a reason");
    if (normal) {
      FUZZ_CHECK(chitin::egress::normalizeHost(*normal) == normal, "normalizing is not idempotent");
    }
  }
  return 0;
}
