// SPDX-License-Identifier: Apache-2.0
// Printing protobuf messages in protobuf's JSON mapping, directly from reflection (see
// proto-json.h).
// Runs in: supervisor and the CLI

#include "proto-json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "json-string.h"

namespace chitin::protojson {

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

template <typename T>
void appendNumber(std::string& out, T value) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (ec != std::errc()) throw std::logic_error("cannot format a number");
  out.append(buffer, end);
}

// Floating point as protobuf prints it: the shortest text that reads back as the same value;
// NaN and the infinities, which JSON has no number for, as strings.
template <typename T>
void appendFloating(std::string& out, T value) {
  if (std::isnan(value)) {
    out += "\"NaN\"";
  } else if (std::isinf(value)) {
    out += value > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  } else {
    appendNumber(out, value);
  }
}

void appendBase64(std::string& out, std::string_view bytes) {
  static constexpr char ALPHABET[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  out += '"';
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t n = static_cast<unsigned char>(bytes[i]) << 16 |
                 static_cast<unsigned char>(bytes[i + 1]) << 8 |
                 static_cast<unsigned char>(bytes[i + 2]);
    out += ALPHABET[n >> 18];
    out += ALPHABET[(n >> 12) & 63];
    out += ALPHABET[(n >> 6) & 63];
    out += ALPHABET[n & 63];
  }
  if (size_t rest = bytes.size() - i; rest > 0) {
    uint32_t n = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2) n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += ALPHABET[n >> 18];
    out += ALPHABET[(n >> 12) & 63];
    out += rest == 2 ? ALPHABET[(n >> 6) & 63] : '=';
    out += '=';
  }
  out += '"';
}

void appendMessage(std::string& out, const Message& message);

// One value of `field` (element `index` when repeated, else -1).
void appendValue(std::string& out, const Message& message, const FieldDescriptor* field,
                 int index) {
  const Reflection* r = message.GetReflection();
  bool repeated = index >= 0;
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      appendNumber(
          out, repeated ? r->GetRepeatedInt32(message, field, index) : r->GetInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      appendNumber(out, repeated ? r->GetRepeatedUInt32(message, field, index)
                                 : r->GetUInt32(message, field));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      out += '"';
      appendNumber(
          out, repeated ? r->GetRepeatedInt64(message, field, index) : r->GetInt64(message, field));
      out += '"';
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      out += '"';
      appendNumber(out, repeated ? r->GetRepeatedUInt64(message, field, index)
                                 : r->GetUInt64(message, field));
      out += '"';
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      appendFloating(out, repeated ? r->GetRepeatedDouble(message, field, index)
                                   : r->GetDouble(message, field));
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      appendFloating(
          out, repeated ? r->GetRepeatedFloat(message, field, index) : r->GetFloat(message, field));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out += (repeated ? r->GetRepeatedBool(message, field, index) : r->GetBool(message, field))
                 ? "true"
                 : "false";
      break;
    case FieldDescriptor::CPPTYPE_ENUM: {
      int number = repeated ? r->GetRepeatedEnumValue(message, field, index)
                            : r->GetEnumValue(message, field);
      if (field->enum_type()->full_name() == "google.protobuf.NullValue") {
        out += "null";
      } else if (auto* value = field->enum_type()->FindValueByNumber(number)) {
        appendString(out, value->name());
      } else {
        appendNumber(out, number);  // an open enum's value this build does not know
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& text = repeated
                                    ? r->GetRepeatedStringReference(message, field, index, &scratch)
                                    : r->GetStringReference(message, field, &scratch);
      if (field->type() == FieldDescriptor::TYPE_BYTES) {
        appendBase64(out, text);
      } else {
        appendString(out, text);
      }
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      appendMessage(out, repeated ? r->GetRepeatedMessage(message, field, index)
                                  : r->GetMessage(message, field));
      break;
  }
}

// A map field as a JSON object, keys sorted (the wire order of a map is unspecified).
void appendMap(std::string& out, const Message& message, const FieldDescriptor* field) {
  const Reflection* r = message.GetReflection();
  const FieldDescriptor* keyField = field->message_type()->map_key();
  const FieldDescriptor* valueField = field->message_type()->map_value();
  int n = r->FieldSize(message, field);
  std::vector<std::pair<std::string, const Message*>> entries;
  entries.reserve(n);
  for (int i = 0; i < n; ++i) {
    const Message& entry = r->GetRepeatedMessage(message, field, i);
    const Reflection* er = entry.GetReflection();
    std::string key;
    switch (keyField->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        key = er->GetString(entry, keyField);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        key = er->GetBool(entry, keyField) ? "true" : "false";
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        key = std::to_string(er->GetInt32(entry, keyField));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        key = std::to_string(er->GetUInt32(entry, keyField));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        key = std::to_string(er->GetInt64(entry, keyField));
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        key = std::to_string(er->GetUInt64(entry, keyField));
        break;
      default:
        throw std::logic_error("a map key of a type protobuf does not allow");
    }
    entries.emplace_back(std::move(key), &entry);
  }
  std::sort(entries.begin(), entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  out += '{';
  bool first = true;
  for (auto& [key, entry] : entries) {
    if (!first) out += ',';
    first = false;
    appendString(out, key);
    out += ':';
    appendValue(out, *entry, valueField, -1);
  }
  out += '}';
}

void appendField(std::string& out, const Message& message, const FieldDescriptor* field) {
  if (field->is_map()) {
    appendMap(out, message, field);
  } else if (field->is_repeated()) {
    int n = message.GetReflection()->FieldSize(message, field);
    out += '[';
    for (int i = 0; i < n; ++i) {
      if (i > 0) out += ',';
      appendValue(out, message, field, i);
    }
    out += ']';
  } else {
    appendValue(out, message, field, -1);
  }
}

// google.protobuf.Value: the JSON value it holds. JSON has no number for NaN or the
// infinities, and a Value has no string form of them, so those print as null; so does a Value
// with nothing set.
void appendJsonValue(std::string& out, const Message& value) {
  const Reflection* r = value.GetReflection();
  const Descriptor* d = value.GetDescriptor();
  const FieldDescriptor* kind = r->GetOneofFieldDescriptor(value, d->oneof_decl(0));
  if (kind == nullptr || kind->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
    out += "null";
  } else if (kind->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
    double number = r->GetDouble(value, kind);
    if (std::isfinite(number)) {
      appendNumber(out, number);
    } else {
      out += "null";
    }
  } else {
    appendValue(out, value, kind, -1);
  }
}

void appendMessage(std::string& out, const Message& message) {
  const Descriptor* d = message.GetDescriptor();
  if (d->file()->package() == "google.protobuf") {
    const std::string& name = d->name();
    if (name == "Struct") {
      appendMap(out, message, d->FindFieldByNumber(1));
    } else if (name == "Value") {
      appendJsonValue(out, message);
    } else if (name == "ListValue") {
      appendField(out, message, d->FindFieldByNumber(1));
    } else {
      // Timestamp, Duration, Any, wrappers, FieldMask, Empty: special forms this printer does not
      // repeat; none is in chitin's schemas today.
      std::string json;
      auto status = google::protobuf::util::MessageToJsonString(message, &json);
      if (!status.ok()) throw std::runtime_error("cannot print " + d->full_name() + " as JSON");
      out += json;
    }
    return;
  }
  std::vector<const FieldDescriptor*> fields;
  message.GetReflection()->ListFields(message, &fields);
  out += '{';
  bool first = true;
  for (const FieldDescriptor* field : fields) {
    if (field->is_extension()) continue;  // the JSON printer leaves extensions out too
    if (!first) out += ',';
    first = false;
    out += '"';
    out += field->json_name();  // identifier characters only: nothing to escape
    out += "\":";
    appendField(out, message, field);
  }
  out += '}';
}

}  // namespace

void appendString(std::string& out, std::string_view text) { appendJsonString(out, text); }

void append(std::string& out, const google::protobuf::Message& message) {
  appendMessage(out, message);
}

}  // namespace chitin::protojson
