// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the IRC worker's line parser and text cleaning (what anyone on the network
// sends, relayed by the server), and the splitting of a reply into PRIVMSG lines.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: one IRC line, which is also used as reply text. Checks: every PRIVMSG line built from
// it fits 512 bytes with our prefix and CRLF and holds no CR, LF or NUL; cleaned text holds no
// control character but tab; escaped ids are printable ASCII.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz-support.h"
#include "irc-message.h"

using namespace chitin::channel::irc;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto m = parseLine(input)) {
    FUZZ_CHECK(m->params.size() <= 15, "more than 15 parameters");
    for (const auto& p : m->params) parseCtcp(p);
    parseServerTime(m->tag("time"));
  }
  std::string clean = cleanInboundText(input);
  for (char c : clean) {
    FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 || c == '\t', "a control character survived");
  }
  mentions(clean, "chitin", CaseMapping::RFC1459);
  for (char c : escapeId(input))
    FUZZ_CHECK(c > 0x20 && c < 0x7f, "an escaped id outside printable ASCII");

  std::string prefix = "chitin!~chitin@host.example";
  for (const std::string& line : privmsgLines("#chitin", input, prefix.size())) {
    FUZZ_CHECK(line.find_first_of(std::string("\r\n\0", 3)) == std::string::npos,
               "CR, LF or NUL in a line");
    FUZZ_CHECK(1 + prefix.size() + 1 + line.size() + 2 <= MAX_LINE_BYTES, "a line over 512 bytes");
  }
  return 0;
}
