// SPDX-License-Identifier: Apache-2.0
// An incremental Server-Sent Events framer (see sse.h).
// Runs in: worker (sandboxed)

#include "sse.h"

namespace chitin {

namespace {
constexpr std::string_view UTF8_BOM = "\xEF\xBB\xBF";
}

SseParser::Status SseParser::feed(std::string_view bytes, const Handler& handler) {
  if (atStreamStart_ && !bytes.empty()) {
    // A BOM may only appear as the stream's first bytes; it could in theory be split across
    // reads, but no server sends one at all in practice, so only the whole form is stripped.
    if (bytes.substr(0, UTF8_BOM.size()) == UTF8_BOM) bytes.remove_prefix(UTF8_BOM.size());
    atStreamStart_ = false;
  }
  while (!bytes.empty()) {
    if (lastWasCr_ && bytes.front() == '\n') {
      // The LF of a CRLF whose CR ended the previous read (or the previous line).
      bytes.remove_prefix(1);
      lastWasCr_ = false;
      continue;
    }
    lastWasCr_ = false;
    size_t end = bytes.find_first_of("\r\n");
    std::string_view piece = bytes.substr(0, end);
    if (line_.size() + piece.size() + data_.size() > maxEventBytes_) return Status::tooLarge;
    line_.append(piece);
    if (end == std::string_view::npos) break;
    lastWasCr_ = bytes[end] == '\r';
    bytes.remove_prefix(end + 1);
    if (!processLine(handler)) return Status::stopped;
  }
  return Status::ok;
}

bool SseParser::processLine(const Handler& handler) {
  if (line_.empty()) {
    // Blank line: dispatch. An event without any data: line is dropped, as the spec says.
    bool keepGoing = true;
    if (hasData_) {
      SseEvent event{std::move(eventType_), std::move(data_)};
      keepGoing = handler(event);
    }
    eventType_.clear();
    data_.clear();
    hasData_ = false;
    return keepGoing;
  }
  if (line_[0] != ':') {  // lines starting with ':' are comments, e.g. ": ping" keep-alives
    std::string_view field = line_;
    std::string_view value;
    size_t colon = field.find(':');
    if (colon != std::string_view::npos) {
      value = field.substr(colon + 1);
      field = field.substr(0, colon);
      if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    }
    if (field == "event") {
      eventType_.assign(value);
    } else if (field == "data") {
      if (hasData_) data_.push_back('\n');
      data_.append(value);
      hasData_ = true;
    }
    // "id", "retry" and unknown fields carry nothing a one-shot POST stream needs.
  }
  line_.clear();
  return true;
}

}  // namespace chitin
