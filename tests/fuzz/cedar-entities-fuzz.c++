// SPDX-License-Identifier: Apache-2.0
// Fuzz target: an entities.json store and a request's JSON through the policy engine's JSON
// readers, then decide() under the shipped policies (policies/*.cedar and the examples).
// Runs in: test (libFuzzer target, tests/fuzz/)
//
// Input: one JSON document {"entities": [...], "requests": [{"principal", "action",
// "resource", "context"}]} as policy-batch reads it. Bad JSON shapes must be refused with
// std::invalid_argument (or nlohmann's errors), never crash; cyclic parents must terminate.

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
  try {
    policy::Entities entities =
        policy::Entities::fromJson(input.value("entities", nlohmann::json::array()), "entities");
    (void)entities.toJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    auto requests = input.value("requests", nlohmann::json::array());
    if (!requests.is_array()) return 0;
    for (const auto& r : requests) {
      if (!r.is_object()) continue;
      policy::Request request;
      request.principal = policy::uidFromJson(r.value("principal", nlohmann::json()), "principal");
      request.action = policy::uidFromJson(r.value("action", nlohmann::json()), "action");
      request.resource = policy::uidFromJson(r.value("resource", nlohmann::json()), "resource");
      request.context =
          policy::valueFromJson(r.value("context", nlohmann::json::object()), "context");
      policy::Entities perRequest(&entities);
      policy::addImplicitFileEntity(perRequest, request.resource);
      (void)policy::decide(policies, perRequest, request);
    }
  } catch (const std::invalid_argument&) {
  } catch (const nlohmann::json::exception&) {
  }
  return 0;
}
