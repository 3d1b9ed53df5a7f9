// SPDX-License-Identifier: Apache-2.0
// Parsing client frames and printing server frames of the gateway protocol.
// Runs in: supervisor

#include "frames.h"

#include <google/protobuf/util/json_util.h>
#include <kj/debug.h>

#include "json-bounds.h"
#include "proto-json.h"

namespace chitin::gateway::frames {

namespace {

namespace pbutil = google::protobuf::util;

const std::string INVALID_REQUEST = "INVALID_REQUEST";

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

// A reply frame, printed directly: {"type":"res","id":…,"ok":…, then `rest` (the payload or the
// error). "id" (possibly "") and "ok" are on every reply, as the protocol promises; the keys
// come in field-number order, as protobuf prints a Frame.
std::string printReply(std::string_view id, bool ok, std::string_view restKey,
                       const google::protobuf::Message& rest) {
  std::string out = R"({"type":"res","id":)";
  protojson::appendString(out, id);
  out += ok ? R"(,"ok":true,")" : R"(,"ok":false,")";
  out += restKey;
  out += "\":";
  protojson::append(out, rest);
  out += '}';
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
  auto status = pbutil::JsonStringToMessage(protojson::print(params), &out);
  if (!status.ok()) {
    return UserError{INVALID_REQUEST, "invalid params for \"" + std::string(method) +
                                          "\": " + sanitizeMessage(status.message().as_string())};
  }
  return true;
}

google::protobuf::Struct toStruct(const google::protobuf::Message& message) {
  google::protobuf::Struct out;
  std::string json = protojson::print(message);
  auto status = pbutil::JsonStringToMessage(json, &out);
  KJ_REQUIRE(status.ok(), "payload does not convert to a JSON object", message.GetTypeName(),
             std::string(status.message()));
  return out;
}

std::string printResult(std::string_view id, const google::protobuf::Message& payload) {
  // A typed payload is printed as the JSON object it converts to (toStruct), without the Struct
  // in between.
  return printReply(id, true, "payload", payload);
}

std::string printError(std::string_view id, const UserError& error) {
  ErrorShape shape;
  shape.set_code(error.code);
  shape.set_message(error.message);
  return printReply(id, false, "error", shape);
}

std::string printEvent(std::string_view event, const google::protobuf::Message& payload,
                       uint32_t seq) {
  // {"type":"event","payload":…,"event":…,"seq":…}: Frame's field order, "seq" left out at 0 as
  // protobuf leaves out a default.
  std::string out = R"({"type":"event","payload":)";
  protojson::append(out, payload);
  if (!event.empty()) {
    out += R"(,"event":)";
    protojson::appendString(out, event);
  }
  if (seq != 0) {
    out += R"(,"seq":)";
    out += std::to_string(seq);
  }
  out += '}';
  return out;
}

}  // namespace chitin::gateway::frames
