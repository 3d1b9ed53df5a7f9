// SPDX-License-Identifier: Apache-2.0
// What every provider API adapter (openai-chat, anthropic) offers the transfer code: a request
// body builder's settings and a stream assembler turning SSE events into an Outcome.
// Runs in: worker (sandboxed)

#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "outcome.h"
#include "sse.h"

namespace chitin::model {

// The parts of ProviderConfig that shape a request body.
struct BodySettings {
  std::string model;
  uint32_t maxTokens = 4096;
};

// Receives assistant text as it arrives (informational; the Outcome is the truth).
using TextSink = std::function<void(std::string_view)>;

// Assembles one streamed reply. Lives on the transfer thread only.
class StreamAssembler {
 public:
  virtual ~StreamAssembler() = default;

  // One SSE event. Returns false once the outcome is settled by a failure: stop reading.
  virtual bool onEvent(const SseEvent& event) = 0;

  // True once the API's terminator has been seen; a transport error after it changes nothing.
  virtual bool sawTerminator() const = 0;

  // A 200 reply that is one JSON document instead of a stream (servers that ignore
  // `stream: true`). Returns false if it settled the outcome as a failure.
  virtual bool onWholeResponse(std::string_view body) = 0;

  // The stream is over (cleanly or not): the final outcome. A stream that never reached its
  // terminator yields `truncated`.
  virtual Outcome finish() = 0;
};

}  // namespace chitin::model

namespace chitin::model {

// `base` without its trailing slashes, then `path` (which starts with '/').
std::string joinUrl(std::string_view base, std::string_view path);

// The JSON Schema offered for one tool: its parametersJson parsed, or an empty object schema
// when none was given. Throws (a protocol fault by the supervisor) if it is not a JSON object.
nlohmann::json toolParameters(rpc::ToolSpec::Reader tool);

// The same schema appended as JSON text: parametersJson as it is, once it has been checked to
// be a JSON object (the check is remembered per distinct text, since the same tools come with
// every turn). Throws as toolParameters does.
void appendToolParameters(std::string& out, rpc::ToolSpec::Reader tool);

// capnp Text as a JSON string literal (json-string.h: invalid UTF-8 becomes U+FFFD).
void appendJson(std::string& out, capnp::Text::Reader text);

// capnp Text as std::string.
std::string toStd(capnp::Text::Reader text);

// Serialises a request body. Text we forward may hold invalid UTF-8 (a tool read a binary
// file); it is replaced with U+FFFD rather than failing the turn.
std::string dumpBody(const nlohmann::json& body);

// Maps an error `type`/`code` string from an error body or an in-stream error event (OpenAI's
// "invalid_request_error", Anthropic's "overloaded_error", ...) to a failure kind.
FailureKind failureKindForErrorType(std::string_view type);

// A short, printable excerpt of bytes the provider sent, for error messages: valid UTF-8, with
// control bytes and malformed UTF-8 replaced by '?'.
std::string excerpt(std::string_view bytes, size_t maxChars = 80);

}  // namespace chitin::model
