// SPDX-License-Identifier: Apache-2.0
// Fuzz target: one client frame through the gateway's frame parser and, when it is a request,
// through every method's params conversion and back out as a reply.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Checks beyond "no crash": jsonDepth() never under-reports what parseRequest refuses on, and
// every frame we print is valid JSON in valid UTF-8 (the client's parser would otherwise choke).

#include <kj/exception.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "frames.h"
#include "json-bounds.h"
#include "fuzz-support.h"
#include "utf8.h"

using namespace chitin::gateway;

namespace {

void checkPrinted(const std::string& frame) {
  FUZZ_CHECK(chitin::isValidUtf8(kj::ArrayPtr<const char>(frame.data(), frame.size())), frame);
  FUZZ_CHECK(nlohmann::json::accept(frame), frame);
}

template <typename T>
void convert(const frames::Request& request, const char* method) {
  auto parsed = frames::paramsAs<T>(request.params, method);
  if (auto* error = std::get_if<UserError>(&parsed)) {
    checkPrinted(frames::printError(request.id, *error));
  } else {
    checkPrinted(frames::printResult(request.id, std::get<T>(parsed)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  chitin::fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  uint32_t depth = chitin::jsonDepth(text, frames::MAX_JSON_DEPTH);
  FUZZ_CHECK(depth <= frames::MAX_JSON_DEPTH + 1, "jsonDepth scanned past its limit");

  auto parsed = frames::parseRequest(text);
  if (auto* bad = std::get_if<frames::BadFrame>(&parsed)) {
    FUZZ_CHECK(bad->id.size() <= frames::MAX_ID_LENGTH, bad->id);
    // The error reply must print even when the id or the parser's message quoted odd bytes.
    try {
      checkPrinted(frames::printError(bad->id, bad->error));
    } catch (const kj::Exception& e) {
      FUZZ_CHECK(false, e.getDescription().cStr());
    }
    return 0;
  }
  auto& request = std::get<frames::Request>(parsed);
  FUZZ_CHECK(depth <= frames::MAX_JSON_DEPTH, "a frame deeper than the limit was accepted");
  FUZZ_CHECK(!request.id.empty() && request.id.size() <= frames::MAX_ID_LENGTH, request.id);
  FUZZ_CHECK(!request.method.empty(), "accepted a request without a method");

  convert<ConnectParams>(request, "connect");
  convert<AgentParams>(request, "agent");
  convert<AbortParams>(request, "agent.abort");
  convert<ChatHistoryParams>(request, "chat.history");
  convert<ApprovalResolveParams>(request, "approvals.resolve");
  convert<PairingDecisionParams>(request, "pairing.approve");
  // Control methods get the params Struct itself and may echo it back.
  checkPrinted(frames::printResult(request.id, request.params));
  checkPrinted(frames::printError(request.id,
                                  {"UNKNOWN_METHOD", frames::sanitizeMessage(request.method, 64)}));
  return 0;
}
