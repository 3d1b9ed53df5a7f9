// SPDX-License-Identifier: Apache-2.0
// The OpenAI-compatible Chat Completions API (see openai-chat.h).
// Runs in: worker (sandboxed)

#include "openai-chat.h"

#include <kj/debug.h>

#include "json-string.h"

namespace chitin::model {

std::string openAiChatUrl(std::string_view baseUrl) {
  return joinUrl(baseUrl, "/chat/completions");
}

// Printed straight into the body, not built as a JSON document first: the history grows with
// the session and goes out with every turn, and the document's allocations were most of the
// model worker's time per turn (perf, issue 12).
std::string buildOpenAiChatBody(rpc::CompletionRequest::Reader request,
                                const BodySettings& settings) {
  std::string out;
  out.reserve(4096);
  out += R"({"model":)";
  appendJsonString(out, settings.model);
  out += R"(,"messages":[)";
  bool first = true;
  auto next = [&] {
    if (!first) out += ',';
    first = false;
  };
  if (request.getSystem().size() > 0) {
    next();
    out += R"({"role":"system","content":)";
    appendJson(out, request.getSystem());
    out += '}';
  }
  uint32_t i = 0;
  for (auto message : request.getMessages()) {
    // The session worker chooses the messages: a role this build does not know (a Cap'n Proto
    // enum carries any number) is a fault, not a message printed half.
    auto role = message.getRole();
    KJ_REQUIRE(role == rpc::Role::SYSTEM || role == rpc::Role::USER ||
                   role == rpc::Role::ASSISTANT || role == rpc::Role::TOOL,
               "a message with an unknown role", i, static_cast<uint16_t>(role));
    next();
    switch (role) {
      case rpc::Role::SYSTEM:
        out += R"({"role":"system","content":)";
        appendJson(out, message.getContent());
        break;
      case rpc::Role::USER:
        out += R"({"role":"user","content":)";
        appendJson(out, message.getContent());
        break;
      case rpc::Role::ASSISTANT: {
        out += R"({"role":"assistant","content":)";
        // The API wants null content, not "", on a turn that only calls tools.
        if (message.getContent().size() > 0 || message.getToolCalls().size() == 0) {
          appendJson(out, message.getContent());
        } else {
          out += "null";
        }
        if (message.getToolCalls().size() > 0) {
          out += R"(,"tool_calls":[)";
          bool firstCall = true;
          for (auto call : message.getToolCalls()) {
            KJ_REQUIRE(call.getId().size() > 0, "an assistant tool call needs an id", i);
            if (!firstCall) out += ',';
            firstCall = false;
            out += R"({"id":)";
            appendJson(out, call.getId());
            out += R"(,"type":"function","function":{"name":)";
            appendJson(out, call.getName());
            out += R"(,"arguments":)";
            if (call.getArgumentsJson().size() > 0) {
              appendJson(out, call.getArgumentsJson());
            } else {
              out += R"("{}")";
            }
            out += "}}";
          }
          out += ']';
        }
        break;
      }
      case rpc::Role::TOOL:
        KJ_REQUIRE(message.getToolCallId().size() > 0,
                   "a tool message needs the toolCallId of the call it answers", i);
        // Chat Completions has no error flag on tool results; the content says what failed.
        out += R"({"role":"tool","tool_call_id":)";
        appendJson(out, message.getToolCallId());
        out += R"(,"content":)";
        appendJson(out, message.getContent());
        break;
    }
    out += '}';
    ++i;
  }
  out += R"(],"stream":true,"stream_options":{"include_usage":true})";
  // max_tokens rather than max_completion_tokens: every compatible server accepts it.
  out += R"(,"max_tokens":)";
  out += std::to_string(settings.maxTokens);
  if (request.getTools().size() > 0) {
    out += R"(,"tools":[)";
    bool firstTool = true;
    for (auto tool : request.getTools()) {
      if (!firstTool) out += ',';
      firstTool = false;
      out += R"({"type":"function","function":{"name":)";
      appendJson(out, tool.getName());
      out += R"(,"description":)";
      appendJson(out, tool.getDescription());
      out += R"(,"parameters":)";
      appendToolParameters(out, tool);
      out += "}}";
    }
    out += ']';
  }
  out += '}';
  return out;
}

bool OpenAiChatAssembler::fail(FailureKind kind, std::string message) {
  if (!failure_) failure_ = Failure{kind, std::move(message), 0};
  return false;
}

bool OpenAiChatAssembler::onEvent(const SseEvent& event) {
  if (failure_) return false;
  if (done_) return true;  // nothing after [DONE] counts
  std::string_view data = event.data;
  if (data == "[DONE]") {
    done_ = true;
    return true;
  }
  auto chunk = parseUntrustedJson(data);
  if (!chunk || !chunk->is_object()) {
    return fail(FailureKind::BAD_RESPONSE,
                "the provider sent a stream chunk that is not a JSON object: " + excerpt(data));
  }
  return onChunk(*chunk);
}

bool OpenAiChatAssembler::onChunk(const Json& chunk) {
  if (const Json* error = member(chunk, "error")) {
    // vLLM and llama.cpp report failures mid-stream as a chunk holding `error`.
    std::string type = textMember(*error, "type") + " " + textMember(*error, "code");
    std::string message =
        error->is_string() ? error->get<std::string>() : textMember(*error, "message");
    return fail(failureKindForErrorType(type),
                "the provider reported an error mid-stream: " + excerpt(message, 300));
  }
  if (const Json* usage = member(chunk, "usage")) {
    inputTokens_ = countMember(*usage, "prompt_tokens");
    outputTokens_ = countMember(*usage, "completion_tokens");
  }
  const Json* choices = member(chunk, "choices");
  if (choices == nullptr) return true;
  if (!choices->is_array()) {
    return fail(FailureKind::BAD_RESPONSE, "a stream chunk's \"choices\" is not an array");
  }
  for (const Json& choice : *choices) {
    if (!choice.is_object()) {
      return fail(FailureKind::BAD_RESPONSE, "a stream chunk's choice is not an object");
    }
    const Json* index = member(choice, "index");
    if (index != nullptr && !(index->is_number_integer() && index->get<int64_t>() == 0)) {
      continue;  // we ask for one choice (n = 1); ignore any other
    }
    if (const Json* delta = member(choice, "delta")) {
      std::string text = textMember(*delta, "content");
      if (!text.empty()) {
        content_ += text;
        if (onText_) onText_(text);
      }
      if (const Json* calls = member(*delta, "tool_calls")) {
        if (!calls->is_array()) {
          return fail(FailureKind::BAD_RESPONSE, "delta.tool_calls is not an array");
        }
        for (const Json& call : *calls) {
          if (!call.is_object()) {
            return fail(FailureKind::BAD_RESPONSE, "a delta.tool_calls entry is not an object");
          }
          onToolCallDelta(call);
        }
      }
    }
    std::string finish = textMember(choice, "finish_reason");
    if (!finish.empty()) finishReason_ = std::move(finish);
  }
  return true;
}

void OpenAiChatAssembler::onToolCallDelta(const Json& delta) {
  std::string id = textMember(delta, "id");
  int64_t index;
  const Json* indexField = member(delta, "index");
  if (indexField != nullptr && indexField->is_number_integer()) {
    index = indexField->get<int64_t>();
  } else if (lastIndex_ < 0 || (!id.empty() && id != calls_[lastIndex_].id)) {
    // Some servers send each call whole and without an index: a new id means a new call.
    index = calls_.empty() ? 0 : calls_.rbegin()->first + 1;
  } else {
    index = lastIndex_;
  }
  lastIndex_ = index;
  PartialCall& call = calls_[index];
  if (call.id.empty()) call.id = std::move(id);
  if (const Json* function = member(delta, "function")) {
    std::string name = textMember(*function, "name");
    if (call.name.empty()) call.name = std::move(name);
    if (const Json* arguments = member(*function, "arguments")) {
      if (arguments->is_string()) {
        call.arguments += arguments->get<std::string>();
      } else {
        // Ollama-style whole-object arguments.
        call.arguments = arguments->dump(-1, ' ', false, Json::error_handler_t::replace);
      }
    }
  }
}

bool OpenAiChatAssembler::onWholeResponse(std::string_view body) {
  auto reply = parseUntrustedJson(body);
  if (!reply || !reply->is_object()) {
    return fail(FailureKind::BAD_RESPONSE,
                "the provider's reply is not a JSON object: " + excerpt(body));
  }
  // Rewrite {choices:[{message, finish_reason}]} as the equivalent single stream chunk.
  Json chunk = *reply;
  if (const Json* choices = member(*reply, "choices"); choices != nullptr && choices->is_array()) {
    Json rewritten = Json::array();
    for (const Json& choice : *choices) {
      Json c = choice;
      if (const Json* message = member(choice, "message")) c["delta"] = *message;
      rewritten.push_back(std::move(c));
    }
    chunk["choices"] = std::move(rewritten);
  }
  if (!onChunk(chunk)) return false;
  done_ = true;
  return true;
}

Outcome OpenAiChatAssembler::finish() {
  Outcome outcome;
  outcome.inputTokens = inputTokens_;
  outcome.outputTokens = outputTokens_;
  outcome.stopReason = finishReason_;
  if (failure_) {
    outcome.failure = failure_;
  } else if (!sawTerminator()) {
    outcome.failure = Failure{FailureKind::TRUNCATED,
                              "the provider's stream ended before the reply was complete "
                              "(no finish_reason or [DONE])",
                              0};
  } else if (finishReason_ == "content_filter") {
    outcome.failure =
        Failure{FailureKind::REFUSED, "the provider's content filter stopped the reply", 0};
  } else {
    outcome.content = std::move(content_);
    for (auto& [index, call] : calls_) {
      AssembledToolCall out;
      out.id = call.id.empty() ? "call_" + std::to_string(index) : std::move(call.id);
      out.name = std::move(call.name);
      out.argumentsJson = call.arguments.empty() ? "{}" : std::move(call.arguments);
      outcome.toolCalls.push_back(std::move(out));
    }
  }
  return outcome;
}

}  // namespace chitin::model
