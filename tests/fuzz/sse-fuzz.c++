// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the model worker's Server-Sent Events framer, fed one stream whole and again in
// chunks of fuzzer-chosen sizes; both must produce the same events and the same status.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: byte 0 seeds the chunk sizes (1..16 bytes, or whole reads), byte 1 picks the event
// size limit (small, to reach `tooLarge`), the rest is the stream. The first chunk is at least
// three bytes: a UTF-8 BOM split across reads is documented not to be stripped (sse.c++).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz-support.h"
#include "sse.h"

using chitin::SseEvent;
using chitin::SseParser;

namespace {

struct Run {
  std::vector<SseEvent> events;
  SseParser::Status status = SseParser::Status::ok;
  bool partial = false;
};

// Stops after `stopAfter` events, like an assembler that has seen an error event.
Run feed(std::string_view stream, size_t maxBytes, uint8_t seed, size_t stopAfter) {
  Run run;
  SseParser parser(maxBytes);
  auto handler = [&](const SseEvent& event) {
    run.events.push_back(event);
    return run.events.size() < stopAfter;
  };
  uint32_t state = seed;
  size_t offset = 0;
  while (offset < stream.size()) {
    size_t chunk = stream.size();
    if (seed != 0) {
      state = state * 1103515245u + 12345u;
      chunk = 1 + (state >> 16) % 16;
      if (offset == 0) chunk = std::max<size_t>(chunk, 3);
    }
    run.status = parser.feed(stream.substr(offset, chunk), handler);
    offset += chunk;
    if (run.status != SseParser::Status::ok) return run;
  }
  run.partial = parser.hasPartialEvent();
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  uint8_t seed = data[0];
  size_t maxBytes = data[1] < 128 ? 16 + data[1] * 4 : SseParser::DEFAULT_MAX_EVENT_BYTES;
  size_t stopAfter = data[1] % 2 ? 3 : SIZE_MAX;
  std::string_view stream(reinterpret_cast<const char*>(data) + 2, size - 2);

  Run whole = feed(stream, maxBytes, 0, stopAfter);
  Run chunked = feed(stream, maxBytes, seed | 1, stopAfter);
  FUZZ_CHECK(whole.status == chunked.status, "status depends on how the stream was split");
  FUZZ_CHECK(whole.events.size() == chunked.events.size(),
             "event count depends on how the stream was split");
  for (size_t i = 0; i < whole.events.size(); ++i) {
    FUZZ_CHECK(whole.events[i].event == chunked.events[i].event, whole.events[i].event);
    FUZZ_CHECK(whole.events[i].data == chunked.events[i].data, whole.events[i].data);
    FUZZ_CHECK(whole.events[i].data.size() <= maxBytes, "event larger than the limit");
  }
  if (whole.status == SseParser::Status::ok) {
    FUZZ_CHECK(whole.partial == chunked.partial, "hasPartialEvent depends on the split");
  }
  return 0;
}
