// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the email worker's IMAP response tokenizer (what a mail server, or anyone in the
// path of a plain-text connection, sends).
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: a response line; each 0x00 byte in it ends the line text so far and starts a literal
// (up to the next 0x00), as the session's reader splices literals in. Checks: no crash, no
// hang, and responseCode() of any suffix stays within it.

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz-support.h"
#include "imap.h"

using namespace chitin::channel::email;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  ImapLine line;
  size_t zero = input.find('\0');
  line.text = std::string(input.substr(0, zero));
  while (zero != std::string_view::npos) {
    size_t next = input.find('\0', zero + 1);
    line.literals.emplace_back(
        input.substr(zero + 1, next == std::string_view::npos ? next : next - zero - 1));
    zero = next;
  }
  std::vector<ImapValue> values = tokenizeImap(line);
  FUZZ_CHECK(values.size() <= line.text.size() + 1, "more values than bytes");
  std::string code = responseCode(line.text);
  FUZZ_CHECK(code.size() <= line.text.size(), "a response code longer than its line");
  return 0;
}
