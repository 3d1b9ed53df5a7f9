// SPDX-License-Identifier: Apache-2.0
// Cedar values (Bool, Long, String, Set, Record, entity reference) and entity uids.
// Runs in: supervisor
//
// Values are immutable and share their storage, so copying one costs a reference count at most:
// the evaluator copies values freely and literals are built once, at parse time.

#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace chitin::policy {

// How deep sets and records may nest in a JSON value read by valueFromJson (entity attributes,
// a context). Cedar's own JSON reader stops at 128 levels for the whole document; real
// attributes use a handful.
constexpr int MAX_VALUE_DEPTH = 100;

struct EntityUid {
  std::string type;  // e.g. "Sender", or "A::B" for a namespaced type
  std::string id;

  bool operator==(const EntityUid& o) const { return type == o.type && id == o.id; }
  bool operator!=(const EntityUid& o) const { return !(*this == o); }
  bool operator<(const EntityUid& o) const {
    int c = type.compare(o.type);
    return c != 0 ? c < 0 : id < o.id;
  }
  // Cedar syntax: Type::"id", with the id escaped as a Cedar string literal.
  std::string str() const;
};

struct EntityUidHash {
  size_t operator()(const EntityUid& u) const {
    size_t h = std::hash<std::string_view>()(u.type);
    return h ^ (std::hash<std::string_view>()(u.id) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  }
};

// Escapes text as the body of a Cedar string literal (without the quotes).
std::string escapeCedarString(std::string_view text);

class Value {
 public:
  using Set = std::vector<Value>;  // kept canonical: sorted by compare(), no duplicates
  using Record = std::map<std::string, Value, std::less<>>;
  enum class Kind : uint8_t { BOOL, LONG, STRING, SET, RECORD, ENTITY };

  Value() : v_(false) {}
  static Value boolean(bool b) { return Value(Storage(b)); }
  static Value integer(int64_t n) { return Value(Storage(n)); }
  static Value string(std::string s) {
    return Value(Storage(std::make_shared<const std::string>(std::move(s))));
  }
  // Sorts and removes duplicates: Cedar sets have no order.
  static Value set(Set elements);
  static Value record(Record fields) {
    return Value(Storage(std::make_shared<const Record>(std::move(fields))));
  }
  static Value entity(EntityUid uid) {
    return Value(Storage(std::make_shared<const EntityUid>(std::move(uid))));
  }

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool isBool() const { return kind() == Kind::BOOL; }
  bool isLong() const { return kind() == Kind::LONG; }
  bool isString() const { return kind() == Kind::STRING; }
  bool isSet() const { return kind() == Kind::SET; }
  bool isRecord() const { return kind() == Kind::RECORD; }
  bool isEntity() const { return kind() == Kind::ENTITY; }

  // Callers check kind() first; these assume it.
  bool asBool() const { return std::get<bool>(v_); }
  int64_t asLong() const { return std::get<int64_t>(v_); }
  const std::string& asString() const { return *std::get<StrPtr>(v_); }
  const Set& asSet() const { return *std::get<SetPtr>(v_); }
  const Record& asRecord() const { return *std::get<RecPtr>(v_); }
  const EntityUid& asEntity() const { return *std::get<UidPtr>(v_); }

  // Cedar equality: values of different kinds are unequal, sets compare as sets.
  bool operator==(const Value& o) const { return compare(o) == 0; }
  bool operator!=(const Value& o) const { return compare(o) != 0; }
  // A total order over all values (kind first), used to keep sets canonical.
  int compare(const Value& o) const;

  // Cedar's JSON value format (entity references as {"__entity": {...}}).
  nlohmann::json toJson() const;
  // Cedar syntax, for messages and traces; past about maxBytes it stops with "...", so a
  // message about a huge value costs no more than the message.
  std::string str(size_t maxBytes = SIZE_MAX) const;

 private:
  using StrPtr = std::shared_ptr<const std::string>;
  using SetPtr = std::shared_ptr<const Set>;
  using RecPtr = std::shared_ptr<const Record>;
  using UidPtr = std::shared_ptr<const EntityUid>;
  using Storage = std::variant<bool, int64_t, StrPtr, SetPtr, RecPtr, UidPtr>;
  explicit Value(Storage v) : v_(std::move(v)) {}
  void appendStr(std::string& out, size_t limit) const;
  Storage v_;
};

const char* kindName(Value::Kind kind);

// Cedar's JSON value format, without a schema: {"__entity": {"type", "id"}} is an entity
// reference, other objects are records, arrays are sets. Whole numbers only (Cedar has no
// floats): anything else throws std::invalid_argument naming the key path (`where`), as does
// nesting deeper than MAX_VALUE_DEPTH (checked before descending, so any JSON is safe here).
Value valueFromJson(const nlohmann::json& j, const std::string& where = "value");

// An entity uid in JSON: {"type", "id"} or {"__entity": {"type", "id"}}. Throws
// std::invalid_argument naming `where`.
EntityUid uidFromJson(const nlohmann::json& j, const std::string& where);
nlohmann::json uidToJson(const EntityUid& uid);

}  // namespace chitin::policy

template <>
struct std::hash<chitin::policy::EntityUid> : chitin::policy::EntityUidHash {};
