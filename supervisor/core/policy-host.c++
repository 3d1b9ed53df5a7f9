// SPDX-License-Identifier: Apache-2.0
// The policy in force (see policy-host.h).
// Runs in: supervisor

#include "policy-host.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <variant>

#include "home.h"

namespace chitin {

namespace {

std::string joinErrors(const std::vector<policy::ParseError>& errors) {
  std::string out;
  for (const auto& e : errors) out += (out.empty() ? "" : "\n") + e.str();
  return out;
}

// The entity store from its file; a missing file is the built-in one (and is written out so
// the owner can see and edit it).
policy::Entities loadEntities(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno != ENOENT) throw std::runtime_error("cannot read " + path + ": " + strerror(errno));
    policy::Entities defaults = policy::defaultEntities();
    writeFileAtomically(path, defaults.toJson().dump(2) + "\n", 0600);
    return defaults;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto doc = nlohmann::json::parse(text.str(), nullptr, false);
  if (doc.is_discarded())
    throw std::invalid_argument(path +
                                ": not valid JSON (expected Cedar entities JSON: "
                                "[{\"uid\": {...}, \"attrs\": {...}, \"parents\": [...]}])");
  return policy::Entities::fromJson(doc, path);
}

std::shared_ptr<const policy::PolicySet> loadPolicies(const std::vector<std::string>& dirs) {
  auto loaded = policy::PolicySet::loadDirs(dirs);
  if (auto* errors = std::get_if<std::vector<policy::ParseError>>(&loaded))
    throw std::invalid_argument(joinErrors(*errors));
  return std::make_shared<const policy::PolicySet>(std::get<policy::PolicySet>(std::move(loaded)));
}

}  // namespace

policy::EntityUid localOperator() { return {"Sender", "local:operator"}; }
policy::EntityUid ownersGroup() { return {"Group", "owners"}; }

PolicyHost::PolicyHost(PolicyHostSettings settings) : settings_(std::move(settings)) {
  try {
    policies_ = loadPolicies(settings_.policyDirs);
    entities_ = loadEntities(settings_.entitiesPath);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(std::string("the policy cannot be loaded:\n") + e.what());
  }
}

std::string PolicyHost::reload() {
  try {
    auto policies = loadPolicies(settings_.policyDirs);
    auto entities = loadEntities(settings_.entitiesPath);
    policies_ = std::move(policies);
    entities_ = std::move(entities);
    return "";
  } catch (const std::exception& e) {
    return e.what();
  }
}

policy::Verdict PolicyHost::decide(const policy::Request& request,
                                   const std::vector<ExtraEntity>& extra) {
  if (extra.empty()) return policy::decide(*policies_, entities_, request);
  // The request's own entities, layered over the store for this decision only.
  policy::Entities layer(&entities_);
  for (const auto& x : extra) layer.add(x.uid, x.attrs, x.parents);
  return policy::decide(*policies_, layer, request);
}

bool PolicyHost::memberOf(const policy::EntityUid& who, const policy::EntityUid& group) const {
  return entities_.in(who, group);
}

bool PolicyHost::known(const policy::EntityUid& who) const { return entities_.contains(who); }

void PolicyHost::addSender(const policy::EntityUid& sender, const policy::EntityUid& parent) {
  // From the file as it is now, so an owner's edit that was not reloaded yet is not lost.
  policy::Entities entities = loadEntities(settings_.entitiesPath);
  entities.add(sender, {}, {parent});
  writeFileAtomically(settings_.entitiesPath, entities.toJson().dump(2) + "\n", 0600);
  entities_ = std::move(entities);
}

std::vector<policy::EntityUid> PolicyHost::parentsOf(const policy::EntityUid& who) const {
  const policy::Entity* entity = entities_.find(who);
  return entity ? entity->parents : std::vector<policy::EntityUid>{};
}

}  // namespace chitin
