// SPDX-License-Identifier: Apache-2.0
// policy-batch: authorizes requests read as JSON lines on stdin, one JSON line out per request.
// The differential test (tests/policy/) feeds the same lines to this and to the reference Cedar.
// Runs in: test (a tool; not part of the supervisor)
//
// Input line: {"policyDirs": [...]} or {"policyFiles": [...]} or {"policyText": "..."},
//   "entities": [Cedar entities JSON], "requests": [{"principal": {"type","id"}, "action": ...,
//   "resource": ..., "context": {...}}], and optionally "op": "policies" to get the parsed
//   policies instead: {"policies": {"<id>": "<source text>"}}; or {"op": "entities",
//   "entities": [...]} to check only a store: {"ok": true} or {"error": "..."}.
// Output per request: {"decision": "allow"|"deny", "determining": [...], "errors": N}; a line
// that cannot be used gives {"error": "..."}.

#include <fstream>
#include <iostream>
#include <sstream>

#include "policy.h"

using chitin::policy::Entities;
using chitin::policy::ParseError;
using chitin::policy::PolicySet;

namespace {

std::string joinErrors(const std::vector<ParseError>& errors) {
  std::string s;
  for (const ParseError& e : errors) s += e.str() + "\n";
  return s;
}

PolicySet loadSet(const nlohmann::json& line) {
  if (line.contains("policyDirs")) {
    auto r = PolicySet::loadDirs(line["policyDirs"].get<std::vector<std::string>>());
    if (auto* e = std::get_if<std::vector<ParseError>>(&r))
      throw std::runtime_error(joinErrors(*e));
    return std::get<PolicySet>(std::move(r));
  }
  PolicySet set;
  std::vector<ParseError> errors;
  if (line.contains("policyFiles")) {
    for (const std::string& f : line["policyFiles"].get<std::vector<std::string>>()) {
      std::ifstream in(f);
      if (!in) throw std::runtime_error(f + ": cannot read");
      std::stringstream text;
      text << in.rdbuf();
      for (auto& e : set.addFile(text.str(), f)) errors.push_back(e);
    }
  } else {
    errors = set.addFile(line.at("policyText").get<std::string>(), "policyText");
  }
  if (!errors.empty()) throw std::runtime_error(joinErrors(errors));
  return set;
}

}  // namespace

int main() {
  std::ios::sync_with_stdio(false);
  std::string text;
  while (std::getline(std::cin, text)) {
    if (text.empty()) continue;
    try {
      nlohmann::json line = nlohmann::json::parse(text);
      static const nlohmann::json NONE = nlohmann::json::array();
      // By reference: copying a parsed document recurses as deep as it nests.
      const nlohmann::json& entitiesJson = line.contains("entities") ? line["entities"] : NONE;
      if (line.value("op", "") == "entities") {
        Entities::fromJson(entitiesJson, "entities");
        std::cout << nlohmann::json{{"ok", true}}.dump() << "\n";
        continue;
      }
      PolicySet set = loadSet(line);
      if (line.value("op", "") == "policies") {
        nlohmann::json out = nlohmann::json::object();
        for (const auto& p : set.policies()) out[p->id] = p->text;
        std::cout << nlohmann::json{{"policies", out}}.dump() << "\n";
        continue;
      }
      Entities entities = Entities::fromJson(entitiesJson, "entities");
      for (const auto& r : line.at("requests")) {
        chitin::policy::Request req;
        req.principal = chitin::policy::uidFromJson(r.at("principal"), "principal");
        req.action = chitin::policy::uidFromJson(r.at("action"), "action");
        req.resource = chitin::policy::uidFromJson(r.at("resource"), "resource");
        static const nlohmann::json EMPTY = nlohmann::json::object();
        req.context =
            chitin::policy::valueFromJson(r.contains("context") ? r["context"] : EMPTY, "context");
        chitin::policy::Decision d = chitin::policy::isAuthorized(set, entities, req);
        nlohmann::json out = {{"decision", d.allow ? "allow" : "deny"},
                              {"determining", d.determining},
                              {"errors", d.errors.size()},
                              {"errorMessages", d.errors}};
        std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      }
    } catch (std::exception& e) {
      std::cout << nlohmann::json{{"error", e.what()}}.dump(
                       -1, ' ', false, nlohmann::json::error_handler_t::replace)
                << "\n";
    }
    std::cout.flush();
  }
  return 0;
}
