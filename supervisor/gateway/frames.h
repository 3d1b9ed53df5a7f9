// SPDX-License-Identifier: Apache-2.0
// Parsing client frames and printing server frames of the gateway protocol (proto/gateway.proto,
// protobuf JSON mapping), and converting between a frame's Struct and the typed messages.
// Runs in: supervisor
//
// Everything here is pure: no I/O, no clock. The connection logic (connection.h) decides what
// to send; this module only guarantees that what comes in matches the schema and that what goes
// out is well-formed JSON in the shape the protocol promises.

#pragma once

#include <google/protobuf/message.h>
#include <google/protobuf/struct.pb.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "agent-service.h"
#include "gateway.pb.h"

namespace chitin::gateway::frames {

// Nesting deeper than this is refused before protobuf sees the frame: its JSON-to-Struct path
// is quadratic in depth (measured: 4,000 levels of `[` took 0.9 s) and fails beyond ~35 levels
// anyway, so a 1 MiB frame of brackets would otherwise pin the loop thread for hours.
constexpr uint32_t MAX_JSON_DEPTH = 32;
// Request ids are echoed back; a longer one is refused rather than copied into every reply.
constexpr size_t MAX_ID_LENGTH = 128;

// A well-formed request frame.
struct Request {
  std::string id;
  std::string method;
  google::protobuf::Struct params;  // empty when the frame had none
};

// A frame that could not be accepted; `id` is the request's id when it could be read.
struct BadFrame {
  std::string id;
  UserError error;
};

// Parses one text message from a client. Only `req` frames are accepted from clients.
std::variant<Request, BadFrame> parseRequest(std::string_view text);

// Converts a request's params into the typed message for its method, using the protobuf JSON
// rules (unknown fields and wrong types are errors). The error names the method.
Result<bool> paramsInto(const google::protobuf::Struct& params, std::string_view method,
                        google::protobuf::Message& out);

template <typename T>
Result<T> paramsAs(const google::protobuf::Struct& params, std::string_view method) {
  T out;
  auto converted = paramsInto(params, method, out);
  if (auto* error = std::get_if<UserError>(&converted)) return *error;
  return out;
}

// Converts a typed payload into the Struct carried by a frame.
google::protobuf::Struct toStruct(const google::protobuf::Message& message);

// {"type":"res","id":…,"ok":true,"payload":…}
std::string printResult(std::string_view id, const google::protobuf::Message& payload);
// {"type":"res","id":…,"ok":false,"error":{"code":…,"message":…}}; `id` may be empty.
std::string printError(std::string_view id, const UserError& error);
// {"type":"event","event":…,"payload":…,"seq":…}
std::string printEvent(std::string_view event, const google::protobuf::Message& payload,
                       uint32_t seq);

// protobuf's own parser, which parseRequest and paramsInto hand everything to that is not
// plainly well-formed (frames.c++ says why there are two paths). For the test that checks the
// two agree.
namespace detail {
std::variant<Request, BadFrame> parseRequestByProtobuf(std::string_view text);
Result<bool> paramsIntoByProtobuf(const google::protobuf::Struct& params, std::string_view method,
                                  google::protobuf::Message& out);
}  // namespace detail

// Makes a parser or exception message safe to put in a frame: its first line, at most
// `maxBytes`, with control characters and non-ASCII bytes replaced (the protobuf parser quotes
// the offending input, which may be invalid UTF-8 and would make the reply unprintable).
std::string sanitizeMessage(std::string_view message, size_t maxBytes = 200);

}  // namespace chitin::gateway::frames
