// SPDX-License-Identifier: Apache-2.0
// Parsing client frames and printing server frames of the gateway protocol.
// Runs in: supervisor

#include "frames.h"

#include <google/protobuf/util/json_util.h>
#include <kj/debug.h>

#include "json-bounds.h"

namespace chitin::gateway::frames {

namespace {

namespace pbutil = google::protobuf::util;

const std::string INVALID_REQUEST = "INVALID_REQUEST";

std::string printJson(const google::protobuf::Message& message) {
  std::string out;
  auto status = pbutil::MessageToJsonString(message, &out);
  KJ_REQUIRE(status.ok(), "cannot print frame as JSON", message.GetTypeName(),
             std::string(status.message()));
  return out;
}

// The id of a frame that failed the schema, if it is at least a JSON object with a usable
// string "id", so the client can tell which request was refused.
std::string bestEffortId(std::string_view text) {
  google::protobuf::Struct loose;
  if (!pbutil::JsonStringToMessage(text, &loose).ok()) return "";
  auto it = loose.fields().find("id");
  if (it == loose.fields().end() || !it->second.has_string_value()) return "";
  const std::string& id = it->second.string_value();
  return id.size() <= MAX_ID_LENGTH ? id : "";
}

BadFrame bad(std::string id, std::string message) {
  return BadFrame{std::move(id), UserError{INVALID_REQUEST, std::move(message)}};
}

// proto3's JSON printer omits default values, but the protocol promises "id" (possibly "") and
// "ok" on every reply, so both are spliced in after the fields that precede them. Fields are
// printed in field-number order (type=1, id=2, …, ok=5), which the assertion double-checks.
std::string printReply(const Frame& frame) {
  Frame head;
  head.set_type(frame.type());
  head.set_id(frame.id());
  std::string prefix = printJson(head);
  KJ_ASSERT(!prefix.empty() && prefix.back() == '}', prefix);
  prefix.pop_back();

  std::string full = printJson(frame);
  KJ_ASSERT(full.compare(0, prefix.size(), prefix) == 0, "unexpected field order", full);

  std::string out = prefix;
  if (frame.id().empty()) out += R"(,"id":"")";
  if (!frame.ok()) out += R"(,"ok":false)";
  out.append(full, prefix.size());
  return out;
}

}  // namespace

std::string sanitizeMessage(std::string_view message, size_t maxBytes) {
  std::string_view firstLine = message.substr(0, message.find('\n'));
  std::string out;
  out.reserve(std::min(firstLine.size(), maxBytes) + 3);
  for (char c : firstLine) {
    if (out.size() >= maxBytes) {
      out += "...";
      break;
    }
    auto byte = static_cast<unsigned char>(c);
    out += (byte < 0x20 || byte >= 0x7f) ? '?' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::variant<Request, BadFrame> parseRequest(std::string_view text) {
  if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    return bad(
        "", "frame nests objects/arrays deeper than " + std::to_string(MAX_JSON_DEPTH) + " levels");
  }

  Frame frame;
  auto status = pbutil::JsonStringToMessage(text, &frame);
  if (!status.ok()) {
    return bad(bestEffortId(text),
               "malformed frame (expected a JSON object like "
               R"({"type":"req","id":"1","method":"health"})): )" +
                   sanitizeMessage(status.message().as_string()));
  }
  if (frame.id().size() > MAX_ID_LENGTH) {
    return bad("", "request id is longer than " + std::to_string(MAX_ID_LENGTH) + " characters");
  }
  if (frame.type().empty()) return bad(frame.id(), R"(frame has no "type" (expected "req"))");
  if (frame.type() != "req") {
    return bad(frame.id(), R"(clients send only "req" frames, got type ")" +
                               sanitizeMessage(frame.type(), 32) + "\"");
  }
  if (frame.id().empty()) return bad("", R"("req" frame needs a non-empty "id")");
  if (frame.method().empty()) return bad(frame.id(), R"("req" frame needs a "method")");

  Request request;
  request.id = std::move(*frame.mutable_id());
  request.method = std::move(*frame.mutable_method());
  if (frame.has_params()) request.params = std::move(*frame.mutable_params());
  return request;
}

Result<bool> paramsInto(const google::protobuf::Struct& params, std::string_view method,
                        google::protobuf::Message& out) {
  auto status = pbutil::JsonStringToMessage(printJson(params), &out);
  if (!status.ok()) {
    return UserError{INVALID_REQUEST, "invalid params for \"" + std::string(method) +
                                          "\": " + sanitizeMessage(status.message().as_string())};
  }
  return true;
}

google::protobuf::Struct toStruct(const google::protobuf::Message& message) {
  google::protobuf::Struct out;
  std::string json = printJson(message);
  auto status = pbutil::JsonStringToMessage(json, &out);
  KJ_REQUIRE(status.ok(), "payload does not convert to a JSON object", message.GetTypeName(),
             std::string(status.message()));
  return out;
}

std::string printResult(std::string_view id, const google::protobuf::Message& payload) {
  Frame frame;
  frame.set_type("res");
  frame.set_id(std::string(id));
  frame.set_ok(true);
  if (payload.GetDescriptor() == google::protobuf::Struct::descriptor()) {
    frame.mutable_payload()->CopyFrom(payload);
  } else {
    *frame.mutable_payload() = toStruct(payload);
  }
  return printReply(frame);
}

std::string printError(std::string_view id, const UserError& error) {
  Frame frame;
  frame.set_type("res");
  frame.set_id(std::string(id));
  frame.set_ok(false);
  frame.mutable_error()->set_code(error.code);
  frame.mutable_error()->set_message(error.message);
  return printReply(frame);
}

std::string printEvent(std::string_view event, const google::protobuf::Message& payload,
                       uint32_t seq) {
  Frame frame;
  frame.set_type("event");
  frame.set_event(std::string(event));
  *frame.mutable_payload() = toStruct(payload);
  frame.set_seq(seq);
  return printJson(frame);
}

}  // namespace chitin::gateway::frames
