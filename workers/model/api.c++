// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the provider API adapters (see api.h).
// Runs in: worker (sandboxed)

#include "api.h"

#include <kj/debug.h>

#include <kj/mutex.h>

#include <algorithm>
#include <unordered_set>

#include "json-string.h"
#include "untrusted-json.h"
#include "utf8.h"

namespace chitin::model {

std::string joinUrl(std::string_view base, std::string_view path) {
  while (!base.empty() && base.back() == '/') base.remove_suffix(1);
  std::string url(base);
  url.append(path);
  return url;
}

nlohmann::json toolParameters(rpc::ToolSpec::Reader tool) {
  auto text = tool.getParametersJson();
  if (text.size() == 0) return {{"type", "object"}, {"properties", nlohmann::json::object()}};
  auto parsed = parseUntrustedJson(std::string_view(text.cStr(), text.size()));
  KJ_REQUIRE(parsed != std::nullopt && parsed->is_object(),
             "ToolSpec.parametersJson must be a JSON object (a JSON Schema)", tool.getName());
  return *parsed;
}

void appendToolParameters(std::string& out, rpc::ToolSpec::Reader tool) {
  auto text = tool.getParametersJson();
  if (text.size() == 0) {
    out += R"({"type":"object","properties":{}})";
    return;
  }
  // Bounded: the supervisor offers a few dozen tools; a schema past the bound is checked
  // each time rather than remembered.
  static constexpr size_t MAX_REMEMBERED = 256;
  static kj::MutexGuarded<std::unordered_set<std::string>> checked;
  std::string_view schema(text.cStr(), text.size());
  if (checked.lockShared()->count(std::string(schema)) == 0) {
    (void)toolParameters(tool);  // throws for anything but a JSON object
    auto lock = checked.lockExclusive();
    if (lock->size() < MAX_REMEMBERED) lock->emplace(schema);
  }
  out += schema;
}

void appendJson(std::string& out, capnp::Text::Reader text) {
  appendJsonString(out, std::string_view(text.cStr(), text.size()));
}

std::string toStd(capnp::Text::Reader text) { return std::string(text.cStr(), text.size()); }

std::string dumpBody(const nlohmann::json& body) {
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

FailureKind failureKindForErrorType(std::string_view type) {
  auto has = [&](std::string_view word) { return type.find(word) != std::string_view::npos; };
  if (has("rate_limit") || has("quota")) return FailureKind::RATE_LIMITED;
  if (has("authentication") || has("permission") || has("unauthorized")) {
    return FailureKind::UNAUTHORIZED;
  }
  if (has("invalid_request") || has("not_found") || has("too_large") || has("context_length")) {
    return FailureKind::BAD_REQUEST;
  }
  // api_error, overloaded_error, server_error, and anything unknown: the provider's side.
  return FailureKind::SERVER_ERROR;
}

std::string excerpt(std::string_view bytes, size_t maxChars) {
  size_t n = std::min(maxChars, bytes.size());
  // Cut on a character boundary, so a character is not split by the cut.
  while (n > 0 && n < bytes.size() && (static_cast<unsigned char>(bytes[n]) & 0xC0) == 0x80) --n;
  kj::ArrayPtr<const char> head(bytes.data(), n);
  std::string out;
  for (size_t i = 0; i < n;) {
    size_t length = utf8SequenceLength(head, i);
    unsigned char u = static_cast<unsigned char>(bytes[i]);
    // Control bytes would garble a terminal or log line, and the message travels as Text: a
    // byte that is not part of well-formed UTF-8 is replaced too.
    if (length == 0 || u < 0x20 || u == 0x7f) {
      out.push_back('?');
      ++i;
    } else {
      out.append(bytes.substr(i, length));
      i += length;
    }
  }
  if (n < bytes.size()) out.append("...");
  return out;
}

}  // namespace chitin::model
