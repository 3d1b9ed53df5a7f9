// SPDX-License-Identifier: Apache-2.0
// Cedar values: ordering, equality, JSON conversion (see cedar-value.h).
// Runs in: supervisor

#include "cedar-value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace chitin::policy {

std::string escapeCedarString(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\0':
        out += "\\0";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char buf[12];
          snprintf(buf, sizeof buf, "\\u{%x}",
                   static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string EntityUid::str() const { return type + "::\"" + escapeCedarString(id) + "\""; }

Value Value::set(Set elements) {
  std::sort(elements.begin(), elements.end(),
            [](const Value& a, const Value& b) { return a.compare(b) < 0; });
  elements.erase(std::unique(elements.begin(), elements.end()), elements.end());
  return Value(Storage(std::make_shared<const Set>(std::move(elements))));
}

const char* kindName(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::BOOL:
      return "bool";
    case Value::Kind::LONG:
      return "long";
    case Value::Kind::STRING:
      return "string";
    case Value::Kind::SET:
      return "set";
    case Value::Kind::RECORD:
      return "record";
    case Value::Kind::ENTITY:
      return "entity";
  }
  return "?";
}

namespace {
template <typename T>
int cmp3(const T& a, const T& b) {
  return a < b ? -1 : (b < a ? 1 : 0);
}
}  // namespace

int Value::compare(const Value& o) const {
  if (v_.index() != o.v_.index()) return v_.index() < o.v_.index() ? -1 : 1;
  switch (kind()) {
    case Kind::BOOL:
      return cmp3(asBool(), o.asBool());
    case Kind::LONG:
      return cmp3(asLong(), o.asLong());
    case Kind::STRING: {
      if (std::get<StrPtr>(v_) == std::get<StrPtr>(o.v_)) return 0;
      int c = asString().compare(o.asString());
      return c < 0 ? -1 : (c > 0 ? 1 : 0);
    }
    case Kind::ENTITY: {
      const EntityUid& a = asEntity();
      const EntityUid& b = o.asEntity();
      return a == b ? 0 : (a < b ? -1 : 1);
    }
    case Kind::SET: {
      const Set& a = asSet();
      const Set& b = o.asSet();
      if (&a == &b) return 0;
      for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
        if (int c = a[i].compare(b[i])) return c;
      }
      return cmp3(a.size(), b.size());
    }
    case Kind::RECORD: {
      const Record& a = asRecord();
      const Record& b = o.asRecord();
      if (&a == &b) return 0;
      auto i = a.begin();
      auto k = b.begin();
      for (; i != a.end() && k != b.end(); ++i, ++k) {
        int c = i->first.compare(k->first);
        if (c != 0) return c < 0 ? -1 : 1;
        if (int d = i->second.compare(k->second)) return d;
      }
      return cmp3(a.size(), b.size());
    }
  }
  return 0;
}

nlohmann::json uidToJson(const EntityUid& uid) { return {{"type", uid.type}, {"id", uid.id}}; }

nlohmann::json Value::toJson() const {
  switch (kind()) {
    case Kind::BOOL:
      return asBool();
    case Kind::LONG:
      return asLong();
    case Kind::STRING:
      return asString();
    case Kind::ENTITY:
      return {{"__entity", uidToJson(asEntity())}};
    case Kind::SET: {
      nlohmann::json a = nlohmann::json::array();
      for (const Value& v : asSet()) a.push_back(v.toJson());
      return a;
    }
    case Kind::RECORD: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& [k, v] : asRecord()) o[k] = v.toJson();
      return o;
    }
  }
  return nullptr;
}

std::string Value::str(size_t maxBytes) const {
  std::string out;
  appendStr(out, maxBytes);
  if (out.size() > maxBytes) {
    out.resize(maxBytes);
    out += "...";
  }
  return out;
}

void Value::appendStr(std::string& out, size_t limit) const {
  if (out.size() > limit) return;
  switch (kind()) {
    case Kind::BOOL:
      out += asBool() ? "true" : "false";
      return;
    case Kind::LONG:
      out += std::to_string(asLong());
      return;
    case Kind::STRING:
      // Escaping at most limit + 1 bytes of the string is enough to overflow the budget.
      out += "\"" + escapeCedarString(std::string_view(asString()).substr(0, limit + 1)) + "\"";
      return;
    case Kind::ENTITY:
      out += asEntity().str();
      return;
    case Kind::SET: {
      out += "[";
      bool first = true;
      for (const Value& v : asSet()) {
        if (out.size() > limit) return;
        out += first ? "" : ", ";
        first = false;
        v.appendStr(out, limit);
      }
      out += "]";
      return;
    }
    case Kind::RECORD: {
      out += "{";
      bool first = true;
      for (const auto& [k, v] : asRecord()) {
        if (out.size() > limit) return;
        out += first ? "\"" : ", \"";
        first = false;
        out += escapeCedarString(std::string_view(k).substr(0, limit + 1)) + "\": ";
        v.appendStr(out, limit);
      }
      out += "}";
      return;
    }
  }
}

EntityUid uidFromJson(const nlohmann::json& j, const std::string& where) {
  const nlohmann::json* o = &j;
  if (j.is_object() && j.contains("__entity")) o = &j["__entity"];
  if (!o->is_object() || !o->contains("type") || !o->contains("id") || !(*o)["type"].is_string() ||
      !(*o)["id"].is_string()) {
    throw std::invalid_argument(where +
                                ": expected an entity uid {\"type\": \"...\", \"id\": \"...\"}");
  }
  return EntityUid{(*o)["type"].get<std::string>(), (*o)["id"].get<std::string>()};
}

namespace {

// Where a value sits in its document, kept as links up the recursion and spelled out only
// when there is an error: building "where.a.b[3]" at every level would cost quadratic time
// in the depth and in the length of the keys.
struct JsonPath {
  const JsonPath* up;    // null at the root
  std::string_view key;  // an object member's
  size_t index;          // an array element's (when key is null)
  const std::string* root;

  // "context.a[3].b"; a deep path keeps its first and last steps: "context.a.b ... [0][0]".
  std::string str() const {
    std::vector<const JsonPath*> steps;
    for (const JsonPath* p = this; p->up != nullptr; p = p->up) steps.push_back(p);
    const JsonPath* top = this;
    while (top->up != nullptr) top = top->up;
    std::string s = *top->root;
    for (size_t i = steps.size(); i-- > 0;) {
      size_t fromTop = steps.size() - 1 - i;
      if (steps.size() > 10 && fromTop >= 4 && i >= 4) {
        if (fromTop == 4) s += " ... ";
        continue;
      }
      const JsonPath& p = *steps[i];
      if (p.key.data() != nullptr) {
        s += ".";
        s += p.key.substr(0, 60);
        if (p.key.size() > 60) s += "...";
      } else {
        s += "[" + std::to_string(p.index) + "]";
      }
    }
    return s;
  }
};

[[noreturn]] void bad(const JsonPath& at, const std::string& message) {
  throw std::invalid_argument(at.str() + ": " + message);
}

Value fromJsonAt(const nlohmann::json& j, const JsonPath& at, int depth) {
  switch (j.type()) {
    case nlohmann::json::value_t::boolean:
      return Value::boolean(j.get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::integer(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      uint64_t u = j.get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) bad(at, "integer out of range for a Cedar Long");
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      bad(at, "not an integer (Cedar has no fractional numbers): " + j.dump());
    case nlohmann::json::value_t::string:
      return Value::string(j.get<std::string>());
    case nlohmann::json::value_t::array:
    case nlohmann::json::value_t::object:
      break;
    default:
      bad(at, "null and other JSON values have no Cedar equivalent");
  }
  if (depth >= MAX_VALUE_DEPTH) {
    bad(at, "sets and records nest deeper than the limit of " + std::to_string(MAX_VALUE_DEPTH) +
                " levels");
  }
  if (j.is_array()) {
    Value::Set s;
    s.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
      s.push_back(fromJsonAt(j[i], JsonPath{&at, {}, i, nullptr}, depth + 1));
    }
    return Value::set(std::move(s));
  }
  if (j.contains("__entity")) {
    if (j.size() != 1) bad(at, "__entity must be the only key");
    return Value::entity(uidFromJson(j, at.str()));
  }
  if (j.contains("__extn")) bad(at, "extension values (__extn) are not supported");
  if (j.contains("__expr")) bad(at, "__expr escapes are not supported");
  Value::Record r;
  for (const auto& [k, v] : j.items()) {
    r.emplace(k, fromJsonAt(v, JsonPath{&at, k, 0, nullptr}, depth + 1));
  }
  return Value::record(std::move(r));
}

}  // namespace

Value valueFromJson(const nlohmann::json& j, const std::string& where) {
  return fromJsonAt(j, JsonPath{nullptr, {}, 0, &where}, 0);
}

}  // namespace chitin::policy
