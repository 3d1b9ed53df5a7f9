// SPDX-License-Identifier: Apache-2.0
// Tests for the SSE framer: line endings, comments, multi-line data, and events split across
// reads at every byte position.
// Runs in: worker (sandboxed) -- test code, runs unconfined.

#include "sse.h"

#include <doctest/doctest.h>

#include <vector>

namespace chitin {
namespace {

std::vector<SseEvent> parseInPieces(std::string_view stream, std::vector<size_t> cuts) {
  SseParser parser;
  std::vector<SseEvent> events;
  SseParser::Handler handler = [&](const SseEvent& event) {
    events.push_back(event);
    return true;
  };
  size_t at = 0;
  cuts.push_back(stream.size());
  for (size_t cut : cuts) {
    REQUIRE(parser.feed(stream.substr(at, cut - at), handler) == SseParser::Status::ok);
    at = cut;
  }
  return events;
}

// One stream exercising every rule at once.
constexpr std::string_view MIXED =
    ": comment at the start\r\n"
    "event: message_start\r\n"
    "data: {\"a\":1}\r\n"
    "\r\n"
    "data: line one\n"
    "data:line two\n"
    "data:  leading space kept after the first\n"
    "\n"
    ": ping\n"
    "event: lone-cr\r"
    "data: x\r"
    "\r"
    "data\n"
    "\n"
    "data: caf\xC3\xA9 \xE2\x82\xAC\n"
    "id: 7\n"
    "retry: 1000\n"
    "\n"
    "event: no data here\n"
    "\n"
    "data: [DONE]\n\n";

void checkMixed(const std::vector<SseEvent>& events) {
  REQUIRE(events.size() == 6);
  CHECK(events[0].event == "message_start");
  CHECK(events[0].data == "{\"a\":1}");
  CHECK(events[1].event == "");
  CHECK(events[1].data == "line one\nline two\n leading space kept after the first");
  CHECK(events[2].event == "lone-cr");
  CHECK(events[2].data == "x");
  CHECK(events[3].data == "");  // "data" with no colon is an empty data line
  CHECK(events[4].data == "caf\xC3\xA9 \xE2\x82\xAC");
  CHECK(events[5].data == "[DONE]");
}

TEST_CASE("sse: a stream fed whole yields every event, comments and data-less events dropped") {
  checkMixed(parseInPieces(MIXED, {}));
}

TEST_CASE("sse: a stream split at every byte position yields the same events") {
  for (size_t cut = 0; cut <= MIXED.size(); ++cut) {
    CAPTURE(cut);
    checkMixed(parseInPieces(MIXED, {cut}));
  }
}

TEST_CASE("sse: a stream fed one byte at a time yields the same events") {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < MIXED.size(); ++i) cuts.push_back(i);
  checkMixed(parseInPieces(MIXED, cuts));
}

TEST_CASE("sse: a CRLF split between reads is one line end, not two") {
  auto events = parseInPieces("data: a\r\ndata: b\r\n\r\n", {8});  // cut between \r and \n
  REQUIRE(events.size() == 1);
  CHECK(events[0].data == "a\nb");
}

TEST_CASE("sse: a leading UTF-8 BOM is ignored") {
  auto events = parseInPieces(
      "\xEF\xBB\xBF"
      "data: x\n\n",
      {});
  REQUIRE(events.size() == 1);
  CHECK(events[0].data == "x");
}

TEST_CASE("sse: the handler stops parsing by returning false") {
  SseParser parser;
  int seen = 0;
  auto status = parser.feed("data: 1\n\ndata: 2\n\n", [&](const SseEvent&) {
    ++seen;
    return false;
  });
  CHECK(status == SseParser::Status::stopped);
  CHECK(seen == 1);
}

TEST_CASE("sse: an event larger than the limit is refused") {
  SseParser parser(16);
  SseParser::Handler handler = [](const SseEvent&) { return true; };
  CHECK(parser.feed("data: 0123456789\n", handler) == SseParser::Status::ok);
  CHECK(parser.feed("data: 0123456789\n", handler) == SseParser::Status::tooLarge);
}

TEST_CASE("sse: hasPartialEvent tells a cut-off event from a clean end") {
  SseParser parser;
  SseParser::Handler handler = [](const SseEvent&) { return true; };
  CHECK_FALSE(parser.hasPartialEvent());
  parser.feed("data: {\"half\":", handler);
  CHECK(parser.hasPartialEvent());
  parser.feed("1}\n\n", handler);
  CHECK_FALSE(parser.hasPartialEvent());
}

}  // namespace
}  // namespace chitin
