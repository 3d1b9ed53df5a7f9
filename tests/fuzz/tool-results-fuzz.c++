// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the supervisor's reading of the results of the workers that bring outside or
// anybody's content into a session (memory, web_fetch, web_search, browser), read as each
// connection is read in production (readerOptionsFor the contract's bound) and turned into what
// the model sees by the supervisor's own conversion code.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: byte 0 picks the result, the rest is one segment-table-framed message:
//   0  ToolResult of memory_search  toolOutcomeFrom, then memorySearchOutcome (the worker's JSON)
//   1  ToolResult of memory_get     toolOutcomeFrom
//   2  FetchResult                  readFetchResult (a page, a failure, or the redirect's URL)
//   3  SearchOutcome                searchOutcomeFrom
//   4  BrowserResult                browserOutcomeFrom, safeFileName of every download's name
// A message that does not read as the type is refused by capnp (kj::Exception), as the RPC
// layer refuses it in production. Nothing else may throw; what the model would read must be
// valid UTF-8 without NUL and within its cap.

#include <capnp/serialize.h>
#include <kj/exception.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>

#include "browser-tool.h"
#include "fuzz-support.h"
#include "memory-path.h"
#include "memory-tool.h"
#include "tool-runner.h"
#include "utf8.h"
#include "web-fetch-tool.h"
#include "web-search-tool.h"
#include "worker-host.h"

namespace rpc = chitin::rpc;

namespace {

constexpr uint32_t CAP = 65536;  // the default agent.max_tool_output_bytes

void checkText(const std::string& text, size_t max, const char* what) {
  FUZZ_CHECK(chitin::isValidUtf8(kj::ArrayPtr<const char>(text.data(), text.size())), what);
  FUZZ_CHECK(text.find('\0') == std::string::npos, what);
  FUZZ_CHECK(text.size() <= max, what);
}

void checkOutcome(const chitin::ToolOutcome& outcome, size_t max, const char* what) {
  checkText(outcome.content, max, what);
  checkText(outcome.untrustedSource, max, what);
}

// As MemoryTool judges: one file counts as written by a tainted session.
std::string judge(const std::string& path) {
  return path == "memory/tainted.md" ? "a tainted session wrote it" : "";
}

void convert(uint8_t kind, capnp::MessageReader& reader) {
  switch (kind) {
    case 0: {
      // The runner keeps a JSON answer whole (its bound is the contract's), MemoryTool cuts.
      auto raw =
          chitin::toolOutcomeFrom(reader.getRoot<rpc::ToolResult>(), rpc::MAX_MEMORY_RESULT_BYTES);
      checkOutcome(raw, rpc::MAX_MEMORY_RESULT_BYTES + 1024 + 64, "memory raw");
      if (raw.status != chitin::ToolOutcome::Status::OK) return;
      auto outcome = chitin::memorySearchOutcome(raw.content, "query", judge, CAP);
      // The cap, plus the note that more matches were left out and the untrusted footer.
      checkOutcome(outcome, CAP + 512, "memory_search outcome");
      FUZZ_CHECK(outcome.untrustedSource.empty() ||
                     outcome.untrustedSource ==
                         "memory file memory/tainted.md: a tainted session wrote it",
                 outcome.untrustedSource);
      break;
    }
    case 1: {
      auto outcome = chitin::toolOutcomeFrom(reader.getRoot<rpc::ToolResult>(), CAP);
      checkOutcome(outcome, CAP + 64, "memory_get outcome");
      break;
    }
    case 2: {
      auto reading =
          chitin::readFetchResult(reader.getRoot<rpc::FetchResult>(), "https://example.com/a",
                                  "https://example.com/", 50000, CAP);
      if (reading.outcome) {
        checkOutcome(*reading.outcome, CAP + 128, "web_fetch outcome");
      } else {
        checkText(reading.redirect, chitin::WEB_FETCH_MAX_URL_BYTES * 4, "redirect");
      }
      break;
    }
    case 3: {
      auto outcome =
          chitin::searchOutcomeFrom(reader.getRoot<rpc::SearchOutcome>(), "query", "brave", CAP);
      checkOutcome(outcome, CAP, "web_search outcome");
      break;
    }
    case 4: {
      auto result = reader.getRoot<rpc::BrowserResult>();
      auto outcome = chitin::browserOutcomeFrom(result);
      checkOutcome(outcome, chitin::MAX_BROWSER_TEXT_BYTES + 512, "browser outcome");
      FUZZ_CHECK(outcome.untrustedSource.size() <= 303, outcome.untrustedSource);
      for (auto file : result.getDownloads()) {
        auto raw = file.getName();
        std::string name = chitin::safeFileName(std::string(raw.begin(), raw.size()));
        FUZZ_CHECK(!name.empty() && name.size() <= 100 && name[0] != '.', name);
        FUZZ_CHECK(name.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                          "0123456789._-") == std::string::npos,
                   name);
      }
      break;
    }
  }
}

uint64_t boundOf(uint8_t kind) {
  switch (kind) {
    case 2:
      return rpc::MAX_FETCH_RESULT_BYTES;
    case 3:
      return rpc::MAX_SEARCH_OUTCOME_BYTES;
    case 4:
      return rpc::MAX_RESULT_BYTES;
    default:
      return rpc::MAX_MEMORY_RESULT_BYTES;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  chitin::fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t kind = data[0] % 5;
  size_t words = (size - 1) / sizeof(capnp::word);
  kj::Array<capnp::word> aligned = kj::heapArray<capnp::word>(words);
  if (words > 0) memcpy(aligned.begin(), data + 1, words * sizeof(capnp::word));
  try {
    capnp::FlatArrayMessageReader reader(aligned, chitin::readerOptionsFor(boundOf(kind)));
    convert(kind, reader);
  } catch (const kj::Exception&) {
    // Malformed framing, a pointer out of bounds, past the traversal limit: refused, as the RPC
    // layer refuses it (the worker is then killed as a protocol breaker).
  }
  return 0;
}
