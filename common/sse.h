// SPDX-License-Identifier: Apache-2.0
// An incremental Server-Sent Events framer: bytes in, whole `event:`/`data:` events out.
// Runs in: worker (sandboxed): the model worker and the Signal channel worker
//
// Follows the WHATWG EventSource parsing rules: lines end in \n, \r\n or \r (a CRLF split
// across two reads is still one line end), lines starting with ':' are comments, several data:
// lines join with \n, a blank line dispatches. Works on bytes, so a UTF-8 character split
// between reads needs no special care.

#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace chitin {

struct SseEvent {
  std::string event;  // empty when the server sent no event: line
  std::string data;
};

class SseParser {
 public:
  // Returns false to stop parsing (the consumer has seen enough, e.g. an error).
  using Handler = std::function<bool(const SseEvent&)>;

  enum class Status {
    ok,        // all bytes consumed
    stopped,   // the handler returned false
    tooLarge,  // one line or event exceeded maxEventBytes
  };

  explicit SseParser(size_t maxEventBytes = DEFAULT_MAX_EVENT_BYTES)
      : maxEventBytes_(maxEventBytes) {}

  Status feed(std::string_view bytes, const Handler& handler);

  // True if the bytes fed so far end inside an event (EOF here means the event was cut off).
  bool hasPartialEvent() const { return !line_.empty() || hasData_ || !eventType_.empty(); }

  // 8 MiB: far above any real chunk, low enough that a hostile server cannot make us hoard.
  static constexpr size_t DEFAULT_MAX_EVENT_BYTES = 8u << 20;

 private:
  // Returns false when the handler asked to stop.
  bool processLine(const Handler& handler);

  size_t maxEventBytes_;
  std::string line_;
  std::string eventType_;
  std::string data_;
  bool hasData_ = false;
  bool lastWasCr_ = false;
  bool atStreamStart_ = true;
};

}  // namespace chitin
