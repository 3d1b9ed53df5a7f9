// SPDX-License-Identifier: Apache-2.0
// Printing protobuf messages in protobuf's JSON mapping, directly from reflection.
// Runs in: supervisor (gateway frames, audit records) and the CLI
//
// The output means what `google::protobuf::util::MessageToJsonString` with default options
// means: lowerCamelCase `json_name` keys, fields at their default value left out (a set
// message, a proto3 `optional` field that is set, and a set oneof member are printed), 64-bit
// integers as strings, enums by name (by number when unknown), bytes as base64, NaN and the
// infinities as strings, and `Struct`/`Value`/`ListValue` as the plain JSON they stand for.
// Two differences, both in the direction of a well-formed frame: keys of a map (and so of a
// Struct) come in sorted order, and a string that is not valid UTF-8 has each bad byte replaced
// by U+FFFD (protobuf copies it as it is, which makes the frame invalid JSON).
//
// Why not the library's own printer: it serialises the message to the wire format and parses
// that back through a type resolver before printing, which made it the largest single cost of a
// chat turn in the supervisor (perf, issue 12). This walks the message once.
// Other well-known types (Timestamp, Any, …) are handed to the library's printer.

#pragma once

#include <google/protobuf/message.h>

#include <string>
#include <string_view>

namespace chitin::protojson {

// Appends `message` as a JSON object.
void append(std::string& out, const google::protobuf::Message& message);

inline std::string print(const google::protobuf::Message& message) {
  std::string out;
  append(out, message);
  return out;
}

// Appends `text` as a JSON string literal: quotes, escapes, U+FFFD for malformed UTF-8.
void appendString(std::string& out, std::string_view text);

}  // namespace chitin::protojson
