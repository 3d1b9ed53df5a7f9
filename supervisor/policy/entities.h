// SPDX-License-Identifier: Apache-2.0
// The entity store: each entity's attributes and parents, and the transitive `in` relation.
// Runs in: supervisor

#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "cedar-value.h"

namespace chitin::policy {

struct Entity {
  EntityUid uid;
  Value attrs;  // always a Record
  std::vector<EntityUid> parents;
};

class Entities {
 public:
  Entities() = default;
  // A store that adds to `base` without copying it (e.g. the per-request File entities on top
  // of entities.json). `base` must outlive this store. Entities added here hide base's.
  explicit Entities(const Entities* base) : base_(base) {}

  // Cedar's entities JSON: [{"uid": {"type", "id"}, "attrs": {...}, "parents": [{...}]}].
  // Throws std::invalid_argument "sourceName: entity 3: ..." on bad input (entities counted
  // from 0, like JSON array indices).
  static Entities fromJson(const nlohmann::json& j, const std::string& sourceName);

  void add(EntityUid uid, Value::Record attrs, std::vector<EntityUid> parents);  // replaces
  const Entity* find(const EntityUid& uid) const;
  bool contains(const EntityUid& uid) const { return find(uid) != nullptr; }
  // a == b, or b is an ancestor of a. Entities missing from the store have no parents. Cycles
  // in the parent graph terminate.
  bool in(const EntityUid& a, const EntityUid& b) const;
  size_t size() const { return map_.size(); }  // this layer only

  // The same JSON format, sorted by uid (this layer and the base, merged).
  nlohmann::json toJson() const;

 private:
  const Entities* base_ = nullptr;
  std::unordered_map<EntityUid, Entity, EntityUidHash> map_;
};

}  // namespace chitin::policy
