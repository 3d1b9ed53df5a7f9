// SPDX-License-Identifier: Apache-2.0
// protojson prints what protobuf's own JSON printer prints (the same JSON value), for every
// message of chitin's schemas filled at random, and keeps its two promised differences.

#include "proto-json.h"

#include <doctest/doctest.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "audit.pb.h"
#include "config.pb.h"
#include "gateway.pb.h"
#include "sandbox_profile.pb.h"

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Fills messages through reflection with values of every shape the printer must handle: empty
// and non-ASCII strings, control characters, extreme integers, enums, nested and repeated
// messages, maps, and Struct values.
class Filler {
 public:
  explicit Filler(uint32_t seed) : random_(seed) {}

  void fill(Message& message, int depth) {
    const Descriptor* d = message.GetDescriptor();
    if (d->full_name() == "google.protobuf.Struct") {
      fillStruct(static_cast<google::protobuf::Struct&>(message), depth);
      return;
    }
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* field = d->field(i);
      if (chance(3)) continue;
      if (field->is_map()) {
        int n = below(3);
        for (int k = 0; k < n; ++k) {
          Message* entry = message.GetReflection()->AddMessage(&message, field);
          setOne(*entry, field->message_type()->map_key(), depth);
          setOne(*entry, field->message_type()->map_value(), depth);
        }
      } else if (field->is_repeated()) {
        int n = below(4);
        for (int k = 0; k < n; ++k) addOne(message, field, depth);
      } else {
        setOne(message, field, depth);
      }
    }
  }

 private:
  bool chance(int oneIn) { return below(oneIn) == 0; }
  int below(int n) { return static_cast<int>(random_() % static_cast<uint32_t>(n)); }

  std::string text() {
    static const std::vector<std::string> pieces = {
        "",     "a", "Grüße", "日本",  "\xF0\x9F\x98\x80", "\"", "\\", "\n\t\r", "\x01\x1f",
        "</x>", "&", " ",     "\u2028"};
    std::string out;
    int n = below(5);
    for (int i = 0; i < n; ++i) out += pieces[below(static_cast<int>(pieces.size()))];
    return out;
  }

  int64_t integer() {
    switch (below(4)) {
      case 0:
        return 0;
      case 1:
        return std::numeric_limits<int64_t>::max();
      case 2:
        return std::numeric_limits<int64_t>::min();
      default:
        return static_cast<int64_t>(random_()) - 2'000'000'000;
    }
  }

  double number() {
    static const double values[] = {0, 1, -1, 0.5, 0.1, 1e300, -2.5e-300, 123456789.25, 1e21};
    return values[below(9)];
  }

  void fillStruct(google::protobuf::Struct& s, int depth) {
    int n = below(4);
    for (int i = 0; i < n; ++i) fillValue((*s.mutable_fields())[text() + std::to_string(i)], depth);
  }

  void fillValue(google::protobuf::Value& v, int depth) {
    switch (below(depth > 3 ? 4 : 6)) {
      case 0:
        v.set_null_value(google::protobuf::NULL_VALUE);
        break;
      case 1:
        v.set_number_value(number());
        break;
      case 2:
        v.set_string_value(text());
        break;
      case 3:
        v.set_bool_value(chance(2));
        break;
      case 4:
        fillStruct(*v.mutable_struct_value(), depth + 1);
        break;
      default:
        for (int i = below(3); i > 0; --i)
          fillValue(*v.mutable_list_value()->add_values(), depth + 1);
    }
  }

  void setOne(Message& message, const FieldDescriptor* field, int depth) {
    const Reflection* r = message.GetReflection();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(&message, field, static_cast<int32_t>(integer()));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->SetUInt32(&message, field, static_cast<uint32_t>(integer()));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(&message, field, integer());
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->SetUInt64(&message, field, static_cast<uint64_t>(integer()));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->SetDouble(&message, field, number());
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        r->SetFloat(&message, field, 0.25f * below(100));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(&message, field, chance(2));
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* e = field->enum_type();
        r->SetEnumValue(&message, field, e->value(below(e->value_count()))->number());
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(&message, field,
                     field->type() == FieldDescriptor::TYPE_BYTES
                         ? std::string("\0\xff\x10 bytes", 10).substr(below(10))
                         : text());
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (depth < 5) fill(*r->MutableMessage(&message, field), depth + 1);
        break;
    }
  }

  void addOne(Message& message, const FieldDescriptor* field, int depth) {
    const Reflection* r = message.GetReflection();
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        r->AddInt32(&message, field, static_cast<int32_t>(integer()));
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        r->AddUInt32(&message, field, static_cast<uint32_t>(integer()));
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->AddInt64(&message, field, integer());
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        r->AddUInt64(&message, field, static_cast<uint64_t>(integer()));
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        r->AddDouble(&message, field, number());
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        r->AddFloat(&message, field, 0.25f * below(100));
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->AddBool(&message, field, chance(2));
        break;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const auto* e = field->enum_type();
        r->AddEnumValue(&message, field, e->value(below(e->value_count()))->number());
        break;
      }
      case FieldDescriptor::CPPTYPE_STRING:
        r->AddString(&message, field, text());
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        Message* child = r->AddMessage(&message, field);
        if (depth < 5) fill(*child, depth + 1);
        break;
      }
    }
  }

  std::mt19937 random_;
};

nlohmann::json protobufsOwn(const Message& message) {
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out);
  REQUIRE_MESSAGE(status.ok(), status.ToString());
  return nlohmann::json::parse(out);
}

// protobuf 3.21's printer drops some null Values inside a Struct (list elements and members, not
// consistently); protojson prints every Value the Struct holds. Compared without nulls.
nlohmann::json withoutNulls(const nlohmann::json& j) {
  if (j.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (auto& [key, value] : j.items()) {
      if (!value.is_null()) out[key] = withoutNulls(value);
    }
    return out;
  }
  if (j.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (auto& value : j) {
      if (!value.is_null()) out.push_back(withoutNulls(value));
    }
    return out;
  }
  return j;
}

// Every message type declared in the schema `file`, nested ones included.
void collect(const Descriptor* d, std::vector<const Descriptor*>& out) {
  if (d->options().map_entry()) return;
  out.push_back(d);
  for (int i = 0; i < d->nested_type_count(); ++i) collect(d->nested_type(i), out);
}

}  // namespace

TEST_CASE("protojson: every schema message, filled at random, prints as protobuf's printer") {
  std::vector<const Descriptor*> types;
  for (const auto* file :
       {chitin::gateway::Frame::descriptor()->file(), chitin::audit::Record::descriptor()->file(),
        chitin::config::ChitinConfig::descriptor()->file(),
        chitin::config::SandboxProfile::descriptor()->file()}) {
    for (int i = 0; i < file->message_type_count(); ++i) collect(file->message_type(i), types);
  }
  CHECK(types.size() > 60);
  Filler filler(20261203);
  size_t compared = 0;
  for (const Descriptor* d : types) {
    for (int round = 0; round < 40; ++round) {
      std::unique_ptr<Message> message(
          google::protobuf::MessageFactory::generated_factory()->GetPrototype(d)->New());
      filler.fill(*message, 0);
      std::string ours = chitin::protojson::print(*message);
      nlohmann::json parsed = nlohmann::json::parse(ours);  // throws if not well-formed
      INFO(d->full_name(), " ", ours);
      CHECK(withoutNulls(parsed) == withoutNulls(protobufsOwn(*message)));
      ++compared;
    }
  }
  CHECK(compared == types.size() * 40);
}

TEST_CASE(
    "protojson: defaults left out, set messages and 64-bit integers as protobuf prints them") {
  chitin::gateway::StatusPayload status;
  CHECK(chitin::protojson::print(status) == "{}");
  status.set_uptime_ms(12345678901234ULL);
  status.set_version("1.0");
  CHECK(chitin::protojson::print(status) == R"({"version":"1.0","uptimeMs":"12345678901234"})");

  chitin::gateway::Frame frame;
  frame.mutable_error();
  CHECK(chitin::protojson::print(frame) == R"({"error":{}})");
  frame.mutable_payload();
  CHECK(chitin::protojson::print(frame) == R"({"payload":{},"error":{}})");
}

TEST_CASE("protojson: Struct keys sorted and values as plain JSON") {
  google::protobuf::Struct s;
  (*s.mutable_fields())["b"].set_number_value(2);
  (*s.mutable_fields())["a"].set_string_value("x");
  auto& list = *(*s.mutable_fields())["c"].mutable_list_value();
  list.add_values()->set_bool_value(true);
  list.add_values()->set_null_value(google::protobuf::NULL_VALUE);
  list.add_values()->set_number_value(0.1);
  (*s.mutable_fields())["d"];  // a Value with nothing set
  (*s.mutable_fields())["e"].set_number_value(std::numeric_limits<double>::infinity());
  CHECK(chitin::protojson::print(s) == R"({"a":"x","b":2,"c":[true,null,0.1],"d":null,"e":null})");
}

TEST_CASE("protojson: strings are always well-formed JSON, malformed UTF-8 replaced") {
  std::string out;
  chitin::protojson::appendString(out, "ok \"q\" \\ \n\x01 caf\xC3\xA9 \xF0\x9F\x98\x80");
  CHECK(out == "\"ok \\\"q\\\" \\\\ \\n\\u0001 caf\xC3\xA9 \xF0\x9F\x98\x80\"");

  out.clear();
  // A lone continuation byte, an overlong form, a surrogate, a cut-off sequence.
  chitin::protojson::appendString(out,
                                  "a\x80"
                                  "b\xC0\xAF"
                                  "c\xED\xA0\x80"
                                  "d\xE2\x82");
  CHECK(out ==
        "\"a\xEF\xBF\xBD"
        "b\xEF\xBF\xBD\xEF\xBF\xBD"
        "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
        "d\xEF\xBF\xBD\xEF\xBF\xBD\"");
  CHECK(nlohmann::json::parse(out).is_string());
}
