// SPDX-License-Identifier: Apache-2.0
// Fuzz target: an entities.json store and a request's JSON through the policy engine's JSON
// readers, then decide() under the shipped policies (policies/*.cedar and the examples).
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: one JSON document {"entities": [...], "requests": [{"principal", "action",
// "resource", "context"}]} as policy-batch reads it. Bad JSON shapes (values nested past
// MAX_VALUE_DEPTH, cyclic parents) must be refused with std::invalid_argument (or nlohmann's
// errors), never crash; a cycle that only the request's File entity closes must terminate.
// The document is only ever read by reference: copying a parsed JSON value recurses.

#include <cstdint>
#include <string>

#include "fuzz-support.h"
#include "policy.h"

namespace policy = chitin::policy;

namespace {

policy::PolicySet shippedPolicies() {
  auto loaded = policy::PolicySet::loadDirs(
      {CHITIN_POLICIES_DIR, std::string(CHITIN_POLICIES_DIR) + "/examples"});
  if (auto* errors = std::get_if<std::vector<policy::ParseError>>(&loaded)) {
    FUZZ_CHECK(false, errors->front().str());
  }
  return std::get<policy::PolicySet>(std::move(loaded));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  chitin::fuzz::quietLogs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const policy::PolicySet policies = shippedPolicies();
  auto input = nlohmann::json::parse(data, data + size, nullptr, false);
  if (input.is_discarded() || !input.is_object()) return 0;
  static const nlohmann::json NONE = nlohmann::json::array();
  static const nlohmann::json EMPTY = nlohmann::json::object();
  static const nlohmann::json MISSING;
  auto field = [](const nlohmann::json& o, const char* key,
                  const nlohmann::json& otherwise) -> const nlohmann::json& {
    return o.contains(key) ? o[key] : otherwise;
  };
  try {
    policy::Entities entities =
        policy::Entities::fromJson(field(input, "entities", NONE), "entities");
    (void)entities.toJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const nlohmann::json& requests = field(input, "requests", NONE);
    if (!requests.is_array()) return 0;
    for (const auto& r : requests) {
      if (!r.is_object()) continue;
      policy::Request request;
      request.principal = policy::uidFromJson(field(r, "principal", MISSING), "principal");
      request.action = policy::uidFromJson(field(r, "action", MISSING), "action");
      request.resource = policy::uidFromJson(field(r, "resource", MISSING), "resource");
      request.context = policy::valueFromJson(field(r, "context", EMPTY), "context");
      policy::Entities perRequest(&entities);
      policy::addImplicitFileEntity(perRequest, request.resource);
      (void)policy::decide(policies, perRequest, request);
    }
  } catch (const std::invalid_argument&) {
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}
