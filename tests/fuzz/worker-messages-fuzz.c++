// SPDX-License-Identifier: Apache-2.0
// Fuzz target: the Cap'n Proto messages the supervisor accepts from untrusted workers, run
// through the conversions the supervisor applies before anything else uses them.
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: byte 0 picks the message, the rest is one segment-table-framed message read with the
// default ReaderOptions (what the supervisor's TwoPartyClient uses):
//   0  Completion         model worker -> ModelHost/ModelProxy: transcript entry, tool events
//   1  ToolResult         tool worker -> ToolRunner: the outcome the model reads, its event
//   2  ToolCall           session worker -> Tools proxy: the tool event, argument checks
//   3  CompletionRequest  session worker -> Model proxy -> model worker's request bodies
//   4  TurnOutcome        session worker -> the run's final result
//   5  TextStream.delta   model worker -> the assistant text event
// A message that does not read as the type is refused by capnp (kj::Exception) when it is
// copied or read, as in the supervisor, where that fails the call. Nothing else may throw, and
// every frame the gateway would send must print as valid JSON in valid UTF-8.

#include <capnp/serialize.h>
#include <kj/exception.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstring>
#include <string>

#include "agent-core.h"
#include "anthropic.h"
#include "frames.h"
#include "fuzz-support.h"
#include "openai-chat.h"
#include "model.capnp.h"
#include "session.capnp.h"
#include "tool-runner.h"
#include "utf8.h"

namespace frames = chitin::gateway::frames;
namespace gateway = chitin::gateway;
namespace rpc = chitin::rpc;

namespace {

constexpr uint32_t MAX_OUTPUT_BYTES = 65536;

void checkFrame(const std::string& frame) {
  FUZZ_CHECK(chitin::isValidUtf8(kj::ArrayPtr<const char>(frame.data(), frame.size())), frame);
  FUZZ_CHECK(nlohmann::json::accept(frame), frame);
}

// What Connection::runEvent sends for a run's event.
void sendEvent(const gateway::AgentEvent& event) {
  try {
    checkFrame(frames::printEvent("agent", event, 7));
  } catch (const kj::Exception& e) {
    FUZZ_CHECK(false, e.getDescription().cStr());
  }
}

void toolEvent(const gateway::ToolCallSummary& summary, const char* phase) {
  gateway::AgentEvent event;
  event.set_run_id("run");
  event.set_session_key("agent:main:cli:direct:owner");
  event.set_stream("tool");
  event.set_phase(phase);
  *event.mutable_tool() = summary;
  sendEvent(event);
}

void record(const chitin::TranscriptEntry& entry) {
  std::string line = entry.toJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto back = chitin::TranscriptEntry::fromJson(nlohmann::json::parse(line));
  FUZZ_CHECK(back.toolCalls.size() == entry.toolCalls.size(), line);
}

void checkArguments(const std::string& name, const std::string& arguments) {
  capnp::MallocMessageBuilder message;
  (void)chitin::buildInvocation(name, arguments, 120, 3600,
                                message.initRoot<rpc::ToolInvocation>());
}

void completion(rpc::Completion::Reader in) {
  // ModelHost keeps its own copy, then ModelProxy records the assistant message.
  capnp::MallocMessageBuilder copy;
  copy.setRoot(in);
  auto completion = copy.getRoot<rpc::Completion>().asReader();
  if (!completion.isMessage()) return;
  chitin::TranscriptEntry entry = chitin::assistantEntryFrom(completion.getMessage());
  record(entry);
  for (const auto& call : entry.toolCalls) {
    toolEvent(chitin::toolCallSummary(call.id, call.name, call.arguments), "start");
    checkArguments(call.name, call.arguments);
  }
}

void toolResult(rpc::ToolResult::Reader in) {
  chitin::ToolOutcome outcome = chitin::toolOutcomeFrom(in, MAX_OUTPUT_BYTES);
  FUZZ_CHECK(outcome.content.size() <= 3 * (MAX_OUTPUT_BYTES + 1024) + 64, "cap not applied");
  gateway::ToolCallSummary summary = chitin::toolCallSummary("call_1", "exec", "{}");
  summary.set_status(outcome.statusName());
  summary.set_summary(outcome.content.substr(
      0, chitin::utf8BoundaryAtOrBefore(
             kj::ArrayPtr<const char>(outcome.content.data(), outcome.content.size()), 200)));
  toolEvent(summary, "end");
  chitin::TranscriptEntry entry;
  entry.role = "tool";
  entry.content = outcome.content;
  entry.toolCallId = "call_1";
  entry.toolName = "exec";
  record(entry);
}

void toolCall(rpc::ToolCall::Reader in) {
  std::string id = in.getId(), name = in.getName(), args = in.getArgumentsJson();
  toolEvent(chitin::toolCallSummary(id, name, args), "start");
  checkArguments(name, args);
}

void completionRequest(rpc::CompletionRequest::Reader in) {
  if (in.getMessages().size() > 2000) return;  // ModelProxy's KJ_REQUIRE
  capnp::MallocMessageBuilder message;
  auto out = message.initRoot<rpc::CompletionRequest>();
  out.setSystem(in.getSystem());
  out.setMessages(in.getMessages());
  auto& specs = chitin::toolSpecs();
  auto tools = out.initTools(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    tools[i].setName(specs[i].name);
    tools[i].setDescription(specs[i].description);
    tools[i].setParametersJson(specs[i].parametersJson);
  }
  // The model worker turns it into a provider request; a malformed one (a tool message
  // without its call id) is a fault it throws on.
  chitin::model::BodySettings settings{"fuzz-model", 1024};
  for (int api = 0; api < 2; ++api) {
    try {
      std::string body = api == 0 ? chitin::model::buildOpenAiChatBody(out.asReader(), settings)
                                  : chitin::model::buildAnthropicBody(out.asReader(), settings);
      FUZZ_CHECK(nlohmann::json::accept(body), body);
    } catch (const kj::Exception&) {
    }
  }
}

void turnOutcome(rpc::TurnOutcome::Reader in) {
  // finishRun: worker text is made valid UTF-8 before it reaches the gateway.
  capnp::Text::Reader text = in.isAnswered() ? in.getAnswered() : in.getFailed();
  gateway::AgentResult result;
  result.set_run_id("run");
  result.set_status(in.isAnswered() ? "ok" : "error");
  result.set_reply(
      chitin::sanitizeUtf8(kj::ArrayPtr<const char>(text.begin(), text.size())).cStr());
  checkFrame(frames::printResult("req-1", result));
}

void delta(capnp::Text::Reader text) {
  gateway::AgentEvent event;
  event.set_run_id("run");
  event.set_stream("assistant");
  event.set_delta(chitin::sanitizeUtf8(kj::ArrayPtr<const char>(text.begin(), text.size())).cStr());
  sendEvent(event);
}

void convert(uint8_t kind, capnp::MallocMessageBuilder& copy) {
  switch (kind) {
    case 0:
      completion(copy.getRoot<rpc::Completion>().asReader());
      break;
    case 1:
      toolResult(copy.getRoot<rpc::ToolResult>().asReader());
      break;
    case 2:
      toolCall(copy.getRoot<rpc::ToolCall>().asReader());
      break;
    case 3:
      completionRequest(copy.getRoot<rpc::CompletionRequest>().asReader());
      break;
    case 4:
      turnOutcome(copy.getRoot<rpc::TurnOutcome>().asReader());
      break;
    case 5:
      delta(copy.getRoot<rpc::TextStream::DeltaParams>().asReader().getText());
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  chitin::fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  uint8_t kind = data[0] % 6;
  size_t words = (size - 1) / sizeof(capnp::word);
  kj::Array<capnp::word> aligned = kj::heapArray<capnp::word>(words);
  if (words > 0) memcpy(aligned.begin(), data + 1, words * sizeof(capnp::word));

  // Reading: malformed framing or pointers are refused here, as in the RPC layer.
  kj::Own<capnp::MallocMessageBuilder> copy = kj::heap<capnp::MallocMessageBuilder>();
  try {
    capnp::FlatArrayMessageReader reader(aligned, capnp::ReaderOptions());
    switch (kind) {
      case 0:
        copy->setRoot(reader.getRoot<rpc::Completion>());
        break;
      case 1:
        copy->setRoot(reader.getRoot<rpc::ToolResult>());
        break;
      case 2:
        copy->setRoot(reader.getRoot<rpc::ToolCall>());
        break;
      case 3:
        copy->setRoot(reader.getRoot<rpc::CompletionRequest>());
        break;
      case 4:
        copy->setRoot(reader.getRoot<rpc::TurnOutcome>());
        break;
      case 5:
        copy->setRoot(reader.getRoot<rpc::TextStream::DeltaParams>());
        break;
    }
  } catch (const kj::Exception&) {
    return 0;
  }

  // Text that is not NUL-terminated survives the copy and throws when it is read: the
  // supervisor's promise then fails (a protocol fault), as it does here.
  try {
    convert(kind, *copy);
  } catch (const kj::Exception&) {
  }
  return 0;
}
