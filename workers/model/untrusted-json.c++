// SPDX-License-Identifier: Apache-2.0
// Reading JSON that came from the network without trusting its shape (see untrusted-json.h).
// Runs in: worker (sandboxed)

#include "untrusted-json.h"

#include <limits>

#include "json-bounds.h"

namespace chitin::model {

std::optional<Json> parseUntrustedJson(std::string_view text) {
  if (jsonDepth(text, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) return std::nullopt;
  Json value = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) return std::nullopt;
  return value;
}

const Json* member(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string textMember(const Json& object, std::string_view key) {
  const Json* value = member(object, key);
  if (value == nullptr || !value->is_string()) return {};
  return value->get<std::string>();
}

uint32_t countMember(const Json& object, std::string_view key) {
  const Json* value = member(object, key);
  if (value == nullptr) return 0;
  if (value->is_number_unsigned()) {
    uint64_t n = value->get<uint64_t>();
    return n > std::numeric_limits<uint32_t>::max() ? std::numeric_limits<uint32_t>::max()
                                                    : static_cast<uint32_t>(n);
  }
  if (value->is_number_integer()) {
    int64_t n = value->get<int64_t>();
    if (n <= 0) return 0;
    return n > int64_t{std::numeric_limits<uint32_t>::max()} ? std::numeric_limits<uint32_t>::max()
                                                             : static_cast<uint32_t>(n);
  }
  return 0;
}

}  // namespace chitin::model
