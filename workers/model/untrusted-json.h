// SPDX-License-Identifier: Apache-2.0
// Reading JSON that came from the network without trusting its shape.
// Runs in: worker (sandboxed)
//
// Provider replies are attacker-controlled: a field may be missing, null or of another type.
// These accessors answer "absent" instead of throwing, so the assemblers decide explicitly
// what is an error.

#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace chitin::model {

using Json = nlohmann::json;

// Deeper nesting than this is refused before parsing: no provider nests a reply this far, and
// printing or walking such a value recursively could exhaust the stack.
constexpr size_t MAX_JSON_DEPTH = 64;

// nullopt if `text` is not one well-formed JSON value or nests deeper than MAX_JSON_DEPTH.
std::optional<Json> parseUntrustedJson(std::string_view text);

// The member `key` of `object`, or nullptr if `object` is not an object, lacks it, or it is null.
const Json* member(const Json& object, std::string_view key);

// The member as a string, or "" if it is absent or not a string.
std::string textMember(const Json& object, std::string_view key);

// The member as a token count, or 0 if absent, negative or not an integer (clamped to 2^32-1).
uint32_t countMember(const Json& object, std::string_view key);

}  // namespace chitin::model
