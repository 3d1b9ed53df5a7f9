// SPDX-License-Identifier: Apache-2.0
// Parsing client frames and printing server frames of the gateway protocol.
// Runs in: supervisor

#include "frames.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <kj/debug.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

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

namespace {

// What every request must be, once its JSON matched the schema.
std::variant<Request, BadFrame> checkRequest(Frame& frame) {
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

// ---- The direct path for plainly well-formed input ----
//
// protobuf's JSON parser goes through its converter (a type resolver and a wire-format round
// trip); after printing, it was the largest cost left in the supervisor's turn (perf, issue 12).
// Input that is plainly well-formed (every key a field of the message, every value of the JSON
// type that field takes without conversion, no key twice) is decoded here directly. Anything
// else, every error included, goes to protobuf's parser, so what is accepted, what is refused
// and how a refusal is worded do not change; frames-test checks the two paths agree.

using Json = nlohmann::json;

void structFrom(const Json& object, google::protobuf::Struct& out);

void valueFrom(const Json& j, google::protobuf::Value& out) {
  switch (j.type()) {
    case Json::value_t::null:
      out.set_null_value(google::protobuf::NULL_VALUE);
      break;
    case Json::value_t::boolean:
      out.set_bool_value(j.get<bool>());
      break;
    case Json::value_t::number_integer:
      out.set_number_value(static_cast<double>(j.get<int64_t>()));
      break;
    case Json::value_t::number_unsigned:
      out.set_number_value(static_cast<double>(j.get<uint64_t>()));
      break;
    case Json::value_t::number_float:
      out.set_number_value(j.get<double>());
      break;
    case Json::value_t::string:
      out.set_string_value(j.get_ref<const std::string&>());
      break;
    case Json::value_t::array: {
      auto* list = out.mutable_list_value();
      for (const auto& element : j) valueFrom(element, *list->add_values());
      break;
    }
    default:
      structFrom(j, *out.mutable_struct_value());
  }
}

void structFrom(const Json& object, google::protobuf::Struct& out) {
  auto& fields = *out.mutable_fields();
  for (const auto& [key, value] : object.items()) valueFrom(value, fields[key]);
}

// nlohmann's own document builder, watched for a key given twice in one object: nlohmann keeps
// the last, protobuf's parser may not, so such input takes protobuf's path. One pass.
class NoDuplicateKeys {
 public:
  explicit NoDuplicateKeys(Json& out) : dom_(out, false) {}

  bool null() { return dom_.null(); }
  bool boolean(bool b) { return dom_.boolean(b); }
  bool number_integer(Json::number_integer_t n) { return dom_.number_integer(n); }
  bool number_unsigned(Json::number_unsigned_t n) { return dom_.number_unsigned(n); }
  bool number_float(Json::number_float_t n, const std::string& s) {
    return dom_.number_float(n, s);
  }
  bool string(std::string& s) { return dom_.string(s); }
  bool binary(Json::binary_t& b) { return dom_.binary(b); }
  bool start_object(std::size_t n) {
    keys_.emplace_back();
    return dom_.start_object(n);
  }
  bool key(std::string& k) {
    auto& seen = keys_.back();
    if (std::find(seen.begin(), seen.end(), k) != seen.end()) {
      duplicate = true;
      return false;
    }
    seen.push_back(k);
    return dom_.key(k);
  }
  bool end_object() {
    keys_.pop_back();
    return dom_.end_object();
  }
  bool start_array(std::size_t n) { return dom_.start_array(n); }
  bool end_array() { return dom_.end_array(); }
  template <class Exception>
  bool parse_error(std::size_t at, const std::string& token, const Exception& e) {
    return dom_.parse_error(at, token, e);
  }

  bool duplicate = false;

 private:
  nlohmann::detail::json_sax_dom_parser<Json> dom_;
  std::vector<std::vector<std::string>> keys_;  // per open object
};

Json parseWithoutDuplicateKeys(std::string_view text) {
  Json out;
  NoDuplicateKeys sax(out);
  if (!Json::sax_parse(text, &sax) || sax.duplicate) return Json(Json::value_t::discarded);
  return out;
}

std::optional<Frame> plainFrame(std::string_view text) {
  Json j = parseWithoutDuplicateKeys(text);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  Frame frame;
  for (const auto& [key, value] : j.items()) {
    if (key == "type" && value.is_string()) {
      frame.set_type(value.get_ref<const std::string&>());
    } else if (key == "id" && value.is_string()) {
      frame.set_id(value.get_ref<const std::string&>());
    } else if (key == "method" && value.is_string()) {
      frame.set_method(value.get_ref<const std::string&>());
    } else if (key == "params" && value.is_object()) {
      structFrom(value, *frame.mutable_params());
    } else {
      return std::nullopt;  // another field, or a value protobuf converts or refuses
    }
  }
  return frame;
}

using google::protobuf::FieldDescriptor;

// One JSON value into `field` of `out` (added when the field is repeated); false when it is not
// plainly of the field's type.
bool plainValue(const google::protobuf::Value& v, const FieldDescriptor* field,
                google::protobuf::Message& out);

bool plainMessage(const google::protobuf::Struct& s, google::protobuf::Message& out) {
  const auto* d = out.GetDescriptor();
  if (d->file()->package() == "google.protobuf") return false;  // well-known types: their rules
  for (const auto& [key, value] : s.fields()) {
    const FieldDescriptor* field = d->FindFieldByName(key);
    for (int i = 0; field == nullptr && i < d->field_count(); ++i) {
      if (d->field(i)->json_name() == key) field = d->field(i);
    }
    if (field == nullptr || field->is_map() || field->containing_oneof() != nullptr) return false;
    if (field->is_repeated()) {
      // Given twice (by its JSON and its proto name) or not a list: protobuf's rules.
      if (!value.has_list_value() || out.GetReflection()->FieldSize(out, field) > 0) return false;
      for (const auto& element : value.list_value().values()) {
        if (!plainValue(element, field, out)) return false;
      }
    } else if (out.GetReflection()->HasField(out, field) || !plainValue(value, field, out)) {
      return false;
    }
  }
  return true;
}

bool plainValue(const google::protobuf::Value& v, const FieldDescriptor* field,
                google::protobuf::Message& out) {
  const auto* r = out.GetReflection();
  bool add = field->is_repeated();
  // Integers: a JSON number with no fraction, in range, and exact as a double (protobuf's
  // parser also takes strings and exponents; those go its way).
  auto integral = [&](double lo, double hi) {
    return v.has_number_value() && v.number_value() == std::floor(v.number_value()) &&
           v.number_value() >= lo && v.number_value() <= hi;
  };
  constexpr double EXACT = 9007199254740992.0;  // 2^53
  switch (field->cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      if (field->type() != FieldDescriptor::TYPE_STRING || !v.has_string_value()) return false;
      add ? r->AddString(&out, field, v.string_value())
          : r->SetString(&out, field, v.string_value());
      return true;
    case FieldDescriptor::CPPTYPE_BOOL:
      if (!v.has_bool_value()) return false;
      add ? r->AddBool(&out, field, v.bool_value()) : r->SetBool(&out, field, v.bool_value());
      return true;
    case FieldDescriptor::CPPTYPE_UINT32:
      if (!integral(0, 4294967295.0)) return false;
      add ? r->AddUInt32(&out, field, static_cast<uint32_t>(v.number_value()))
          : r->SetUInt32(&out, field, static_cast<uint32_t>(v.number_value()));
      return true;
    case FieldDescriptor::CPPTYPE_INT32:
      if (!integral(-2147483648.0, 2147483647.0)) return false;
      add ? r->AddInt32(&out, field, static_cast<int32_t>(v.number_value()))
          : r->SetInt32(&out, field, static_cast<int32_t>(v.number_value()));
      return true;
    case FieldDescriptor::CPPTYPE_UINT64:
      if (!integral(0, EXACT)) return false;
      add ? r->AddUInt64(&out, field, static_cast<uint64_t>(v.number_value()))
          : r->SetUInt64(&out, field, static_cast<uint64_t>(v.number_value()));
      return true;
    case FieldDescriptor::CPPTYPE_INT64:
      if (!integral(-EXACT, EXACT)) return false;
      add ? r->AddInt64(&out, field, static_cast<int64_t>(v.number_value()))
          : r->SetInt64(&out, field, static_cast<int64_t>(v.number_value()));
      return true;
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      if (!v.has_struct_value()) return false;
      auto* child = add ? r->AddMessage(&out, field) : r->MutableMessage(&out, field);
      return plainMessage(v.struct_value(), *child);
    }
    default:
      return false;  // enums, floating point, bytes: protobuf's conversions
  }
}

}  // namespace

namespace detail {

std::variant<Request, BadFrame> parseRequestByProtobuf(std::string_view text) {
  Frame frame;
  auto status = pbutil::JsonStringToMessage(text, &frame);
  if (!status.ok()) {
    return bad(bestEffortId(text),
               "malformed frame (expected a JSON object like "
               R"({"type":"req","id":"1","method":"health"})): )" +
                   sanitizeMessage(status.message().as_string()));
  }
  return checkRequest(frame);
}

Result<bool> paramsIntoByProtobuf(const google::protobuf::Struct& params, std::string_view method,
                                  google::protobuf::Message& out) {
  out.Clear();
  auto status = pbutil::JsonStringToMessage(protojson::print(params), &out);
  if (!status.ok()) {
    return UserError{INVALID_REQUEST, "invalid params for \"" + std::string(method) +
                                          "\": " + sanitizeMessage(status.message().as_string())};
  }
  return true;
}

}  // namespace detail

std::variant<Request, BadFrame> parseRequest(std::string_view text) {
  if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    return bad(
        "", "frame nests objects/arrays deeper than " + std::to_string(MAX_JSON_DEPTH) + " levels");
  }
  if (auto frame = plainFrame(text)) return checkRequest(*frame);
  return detail::parseRequestByProtobuf(text);
}

Result<bool> paramsInto(const google::protobuf::Struct& params, std::string_view method,
                        google::protobuf::Message& out) {
  out.Clear();
  if (plainMessage(params, out)) return true;
  return detail::paramsIntoByProtobuf(params, method, out);
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
