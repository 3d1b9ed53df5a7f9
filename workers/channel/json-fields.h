// SPDX-License-Identifier: Apache-2.0
// Reading a chat platform's JSON without trusting its shape, and percent-encoding for the URLs
// and form bodies the platforms take.
// Runs in: worker (sandboxed)
//
// Everything a platform sends is attacker-controlled: a field may be missing, null or of
// another type, and nesting is bounded before parsing (printing or walking a deep value
// recurses). The accessors answer "absent" instead of throwing, so callers decide what is an
// error.

#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "json-bounds.h"

namespace chitin::channel {

using Json = nlohmann::json;

// No platform nests its events this deep; deeper is refused before the parser sees it.
inline constexpr uint32_t MAX_PLATFORM_JSON_DEPTH = 64;

// nullopt if `text` is not one well-formed JSON value or nests too deep.
inline std::optional<Json> parsePlatformJson(std::string_view text) {
  if (jsonDepth(text, MAX_PLATFORM_JSON_DEPTH) > MAX_PLATFORM_JSON_DEPTH) return std::nullopt;
  Json value = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return std::nullopt;
  return value;
}

// The member `key`, or nullptr if `object` is not an object, lacks it, or it is null.
inline const Json* field(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

inline std::string textField(const Json& object, std::string_view key) {
  const Json* value = field(object, key);
  return value != nullptr && value->is_string() ? value->get<std::string>() : std::string();
}

inline bool boolField(const Json& object, std::string_view key) {
  const Json* value = field(object, key);
  return value != nullptr && value->is_boolean() && value->get<bool>();
}

inline std::optional<int64_t> intField(const Json& object, std::string_view key) {
  const Json* value = field(object, key);
  if (value == nullptr || !value->is_number_integer()) return std::nullopt;
  if (value->is_number_unsigned() && value->get<uint64_t>() > uint64_t(INT64_MAX)) {
    return std::nullopt;
  }
  return value->get<int64_t>();
}

inline std::optional<double> numberField(const Json& object, std::string_view key) {
  const Json* value = field(object, key);
  if (value == nullptr || !value->is_number()) return std::nullopt;
  return value->get<double>();
}

// RFC 3986 percent-encoding of everything but the unreserved characters: a path segment
// (an emoji) or an application/x-www-form-urlencoded value.
inline std::string percentEncode(std::string_view text) {
  static const char* HEX = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(HEX[c >> 4]);
      out.push_back(HEX[c & 15]);
    }
  }
  return out;
}

}  // namespace chitin::channel
