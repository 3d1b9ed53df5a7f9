// SPDX-License-Identifier: Apache-2.0
// The entity store (see entities.h).
// Runs in: supervisor

#include "entities.h"

#include <algorithm>
#include <map>
#include <stdexcept>

namespace chitin::policy {

Entities Entities::fromJson(const nlohmann::json& j, const std::string& sourceName) {
  if (!j.is_array()) {
    throw std::invalid_argument(sourceName + ": expected a JSON array of entities");
  }
  Entities out;
  for (size_t i = 0; i < j.size(); ++i) {
    std::string where = sourceName + ": entity " + std::to_string(i);
    const nlohmann::json& e = j[i];
    if (!e.is_object() || !e.contains("uid")) {
      throw std::invalid_argument(where + ": expected an object with \"uid\"");
    }
    for (const auto& [k, v] : e.items()) {
      if (k != "uid" && k != "attrs" && k != "parents" && k != "tags") {
        throw std::invalid_argument(where + ": unknown key \"" + k +
                                    "\" (expected uid, attrs, parents)");
      }
    }
    EntityUid uid = uidFromJson(e["uid"], where + ": uid");
    Value::Record attrs;
    if (e.contains("attrs")) {
      if (!e["attrs"].is_object())
        throw std::invalid_argument(where + ": attrs: expected an object");
      for (const auto& [k, v] : e["attrs"].items()) {
        attrs.emplace(k, valueFromJson(v, where + ": attrs." + k));
      }
    }
    std::vector<EntityUid> parents;
    if (e.contains("parents")) {
      if (!e["parents"].is_array()) {
        throw std::invalid_argument(where + ": parents: expected an array of entity uids");
      }
      for (size_t p = 0; p < e["parents"].size(); ++p) {
        parents.push_back(
            uidFromJson(e["parents"][p], where + ": parents[" + std::to_string(p) + "]"));
      }
    }
    if (out.map_.count(uid)) {
      throw std::invalid_argument(where + ": duplicate entity " + uid.str());
    }
    out.add(std::move(uid), std::move(attrs), std::move(parents));
  }
  return out;
}

void Entities::add(EntityUid uid, Value::Record attrs, std::vector<EntityUid> parents) {
  Entity e{uid, Value::record(std::move(attrs)), std::move(parents)};
  map_.insert_or_assign(std::move(uid), std::move(e));
}

const Entity* Entities::find(const EntityUid& uid) const {
  for (const Entities* s = this; s != nullptr; s = s->base_) {
    if (s->map_.empty()) continue;
    auto it = s->map_.find(uid);
    if (it != s->map_.end()) return &it->second;
  }
  return nullptr;
}

bool Entities::in(const EntityUid& a, const EntityUid& b) const {
  if (a == b) return true;
  const Entity* start = find(a);
  if (start == nullptr) return false;
  // Breadth-first over parents; hierarchies are shallow, so a small vector beats a hash set.
  std::vector<const EntityUid*> seen;
  std::vector<const EntityUid*> queue;
  for (const EntityUid& p : start->parents) queue.push_back(&p);
  seen.push_back(&start->uid);
  for (size_t i = 0; i < queue.size(); ++i) {
    const EntityUid& u = *queue[i];
    if (u == b) return true;
    if (std::any_of(seen.begin(), seen.end(), [&](const EntityUid* s) { return *s == u; })) {
      continue;
    }
    seen.push_back(&u);
    if (const Entity* e = find(u)) {
      for (const EntityUid& p : e->parents) queue.push_back(&p);
    }
  }
  return false;
}

nlohmann::json Entities::toJson() const {
  std::map<EntityUid, const Entity*> all;
  for (const Entities* s = this; s != nullptr; s = s->base_) {
    for (const auto& [uid, e] : s->map_) all.emplace(uid, &e);  // the upper layer wins
  }
  nlohmann::json out = nlohmann::json::array();
  for (const auto& [uid, e] : all) {
    nlohmann::json parents = nlohmann::json::array();
    for (const EntityUid& p : e->parents) parents.push_back(uidToJson(p));
    out.push_back({{"uid", uidToJson(uid)}, {"attrs", e->attrs.toJson()}, {"parents", parents}});
  }
  return out;
}

}  // namespace chitin::policy
