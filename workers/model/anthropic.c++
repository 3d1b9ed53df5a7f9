// SPDX-License-Identifier: Apache-2.0
// The Anthropic Messages API (see anthropic.h).
// Runs in: worker (sandboxed)

#include "anthropic.h"

#include <kj/debug.h>

#include <vector>

namespace chitin::model {

std::string anthropicMessagesUrl(std::string_view baseUrl) {
  while (!baseUrl.empty() && baseUrl.back() == '/') baseUrl.remove_suffix(1);
  bool hasVersion = baseUrl.size() >= 3 && baseUrl.substr(baseUrl.size() - 3) == "/v1";
  return joinUrl(baseUrl, hasVersion ? "/messages" : "/v1/messages");
}

namespace {

Json textBlock(capnp::Text::Reader text) { return {{"type", "text"}, {"text", toStd(text)}}; }

// The call's arguments as the object `tool_use.input` must be. Arguments the model sent that
// were not an object cannot be represented; the tool result already told the model so.
Json toolInput(capnp::Text::Reader argumentsJson) {
  auto parsed = parseUntrustedJson(std::string_view(argumentsJson.cStr(), argumentsJson.size()));
  if (parsed && parsed->is_object()) return *parsed;
  return Json::object();
}

}  // namespace

std::string buildAnthropicBody(rpc::CompletionRequest::Reader request,
                               const BodySettings& settings) {
  std::string system = toStd(request.getSystem());
  struct Turn {
    const char* role;
    Json blocks;
  };
  std::vector<Turn> turns;
  // Consecutive messages of one role become one message: Anthropic requires alternation, and
  // tool results travel as user content.
  auto add = [&](const char* role, Json block) {
    if (turns.empty() || std::string_view(turns.back().role) != role) {
      turns.push_back(Turn{role, Json::array()});
    }
    turns.back().blocks.push_back(std::move(block));
  };

  uint32_t i = 0;
  for (auto message : request.getMessages()) {
    switch (message.getRole()) {
      case rpc::Role::SYSTEM:
        // Only a top-level system prompt exists; later system notes are appended to it.
        if (!system.empty()) system += "\n\n";
        system += toStd(message.getContent());
        break;
      case rpc::Role::USER:
        // The API rejects empty text blocks.
        if (message.getContent().size() > 0) add("user", textBlock(message.getContent()));
        break;
      case rpc::Role::ASSISTANT:
        if (message.getContent().size() > 0) add("assistant", textBlock(message.getContent()));
        for (auto call : message.getToolCalls()) {
          KJ_REQUIRE(call.getId().size() > 0, "an assistant tool call needs an id", i);
          add("assistant", {{"type", "tool_use"},
                            {"id", toStd(call.getId())},
                            {"name", toStd(call.getName())},
                            {"input", toolInput(call.getArgumentsJson())}});
        }
        break;
      case rpc::Role::TOOL: {
        KJ_REQUIRE(message.getToolCallId().size() > 0,
                   "a tool message needs the toolCallId of the call it answers", i);
        Json block = {{"type", "tool_result"},
                      {"tool_use_id", toStd(message.getToolCallId())},
                      {"content", toStd(message.getContent())}};
        if (message.getIsError()) block["is_error"] = true;
        add("user", std::move(block));
        break;
      }
    }
    ++i;
  }

  Json messages = Json::array();
  for (auto& turn : turns) {
    messages.push_back({{"role", turn.role}, {"content", std::move(turn.blocks)}});
  }
  Json body = {{"model", settings.model},
               {"max_tokens", settings.maxTokens},
               {"stream", true},
               {"messages", std::move(messages)}};
  if (!system.empty()) body["system"] = system;
  if (request.getTools().size() > 0) {
    Json tools = Json::array();
    for (auto tool : request.getTools()) {
      tools.push_back({{"name", toStd(tool.getName())},
                       {"description", toStd(tool.getDescription())},
                       {"input_schema", toolParameters(tool)}});
    }
    body["tools"] = std::move(tools);
  }
  return dumpBody(body);
}

bool AnthropicAssembler::fail(FailureKind kind, std::string message) {
  if (!failure_) failure_ = Failure{kind, std::move(message), 0};
  return false;
}

bool AnthropicAssembler::onEvent(const SseEvent& event) {
  if (failure_) return false;
  if (done_) return true;
  auto data = parseUntrustedJson(event.data);
  if (!data || !data->is_object()) {
    return fail(
        FailureKind::BAD_RESPONSE,
        "the provider sent a stream event that is not a JSON object: " + excerpt(event.data));
  }
  // The API names each event twice (event: line and data.type); data.type is what the SDKs
  // read, and servers that omit the event: line still send it.
  std::string type = textMember(*data, "type");
  if (type.empty()) type = event.event;

  if (type == "message_start") {
    started_ = true;
    if (const Json* message = member(*data, "message")) {
      if (const Json* usage = member(*message, "usage")) {
        // Cached prompt tokens are still input the model read.
        inputTokens_ = countMember(*usage, "input_tokens") +
                       countMember(*usage, "cache_creation_input_tokens") +
                       countMember(*usage, "cache_read_input_tokens");
        outputTokens_ = countMember(*usage, "output_tokens");
      }
    }
  } else if (type == "content_block_start") {
    const Json* index = member(*data, "index");
    const Json* block = member(*data, "content_block");
    if (index == nullptr || !index->is_number_integer() || block == nullptr) {
      return fail(FailureKind::BAD_RESPONSE, "content_block_start without index or content_block");
    }
    Block& b = blocks_[index->get<int64_t>()];
    std::string blockType = textMember(*block, "type");
    if (blockType == "text") {
      b.type = Block::Type::text;
      b.text = textMember(*block, "text");
      if (!b.text.empty() && onText_) onText_(b.text);
    } else if (blockType == "tool_use") {
      b.type = Block::Type::toolUse;
      b.id = textMember(*block, "id");
      b.name = textMember(*block, "name");
      const Json* input = member(*block, "input");
      if (input != nullptr && input->is_object() && !input->empty()) {
        b.startInput = input->dump(-1, ' ', false, Json::error_handler_t::replace);
      }
    }
    // thinking, redacted_thinking, server tool blocks: not part of the answer we return.
  } else if (type == "content_block_delta") {
    return onBlockDelta(*data);
  } else if (type == "message_delta") {
    if (const Json* delta = member(*data, "delta")) {
      std::string stop = textMember(*delta, "stop_reason");
      if (!stop.empty()) stopReason_ = std::move(stop);
    }
    if (const Json* usage = member(*data, "usage")) {
      // Cumulative, per the API; keep the message_start value if this one omits it.
      if (uint32_t out = countMember(*usage, "output_tokens")) outputTokens_ = out;
    }
  } else if (type == "message_stop") {
    done_ = true;
  } else if (type == "error") {
    const Json* error = member(*data, "error");
    std::string errorType = error ? textMember(*error, "type") : std::string();
    std::string message = error ? textMember(*error, "message") : std::string();
    return fail(failureKindForErrorType(errorType),
                "the provider reported an error mid-stream: " +
                    excerpt(errorType.empty() ? message : errorType + ": " + message, 300));
  }
  // content_block_stop, ping and unknown events carry nothing we need.
  return true;
}

bool AnthropicAssembler::onBlockDelta(const Json& event) {
  const Json* index = member(event, "index");
  const Json* delta = member(event, "delta");
  if (index == nullptr || !index->is_number_integer() || delta == nullptr) {
    return fail(FailureKind::BAD_RESPONSE, "content_block_delta without index or delta");
  }
  auto it = blocks_.find(index->get<int64_t>());
  if (it == blocks_.end()) {
    return fail(FailureKind::BAD_RESPONSE,
                "content_block_delta for a block that was never started");
  }
  Block& block = it->second;
  std::string deltaType = textMember(*delta, "type");
  if (deltaType == "text_delta" && block.type == Block::Type::text) {
    std::string text = textMember(*delta, "text");
    block.text += text;
    if (!text.empty() && onText_) onText_(text);
  } else if (deltaType == "input_json_delta" && block.type == Block::Type::toolUse) {
    block.partialJson += textMember(*delta, "partial_json");
  }
  // thinking_delta, signature_delta, citations: not part of the answer we return.
  return true;
}

bool AnthropicAssembler::onWholeResponse(std::string_view body) {
  return fail(
      FailureKind::BAD_RESPONSE,
      "the provider answered with one JSON document instead of an event stream: " + excerpt(body));
}

Outcome AnthropicAssembler::finish() {
  Outcome outcome;
  outcome.inputTokens = inputTokens_;
  outcome.outputTokens = outputTokens_;
  outcome.stopReason = stopReason_;
  if (failure_) {
    outcome.failure = failure_;
  } else if (!done_) {
    outcome.failure = Failure{FailureKind::TRUNCATED,
                              started_ ? "the provider's stream ended before message_stop"
                                       : "the provider's stream ended before message_start",
                              0};
  } else if (stopReason_ == "refusal") {
    outcome.failure = Failure{FailureKind::REFUSED, "the model declined to answer (refusal)", 0};
  } else {
    for (auto& [index, block] : blocks_) {
      if (block.type == Block::Type::text) {
        // Separate text blocks (e.g. before and after a tool_use) stay separate paragraphs.
        if (block.text.empty()) continue;
        if (!outcome.content.empty()) outcome.content += "\n\n";
        outcome.content += block.text;
      } else if (block.type == Block::Type::toolUse) {
        AssembledToolCall call;
        call.id = block.id.empty() ? "toolu_" + std::to_string(index) : std::move(block.id);
        call.name = std::move(block.name);
        if (!block.partialJson.empty()) {
          call.argumentsJson = std::move(block.partialJson);
        } else if (!block.startInput.empty()) {
          call.argumentsJson = std::move(block.startInput);
        } else {
          call.argumentsJson = "{}";
        }
        outcome.toolCalls.push_back(std::move(call));
      }
    }
  }
  return outcome;
}

}  // namespace chitin::model
