// SPDX-License-Identifier: Apache-2.0
// The entity store: each entity's attributes and parents, and the transitive `in` relation.
// Runs in: supervisor
//
// Like Cedar's, a store read from JSON must be a hierarchy without cycles. `in` walks parents
// breadth-first; during a decision an Ancestors cache makes that one walk per entity per
// request, however many policies ask (400 groups of 50 parents each, 1,000 policies: one walk,
// not a thousand).

#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cedar-value.h"

namespace chitin::policy {

// Hash and equality of uids held by pointer (into a store), by value.
struct EntityUidPtrHash {
  size_t operator()(const EntityUid* u) const { return EntityUidHash()(*u); }
};
struct EntityUidPtrEq {
  bool operator()(const EntityUid* a, const EntityUid* b) const { return *a == *b; }
};

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
  // from 0, like JSON array indices), attribute values nested deeper than MAX_VALUE_DEPTH, and
  // a parent hierarchy with a cycle (as Cedar refuses such a store).
  static Entities fromJson(const nlohmann::json& j, const std::string& sourceName);

  void add(EntityUid uid, Value::Record attrs, std::vector<EntityUid> parents);  // replaces
  const Entity* find(const EntityUid& uid) const;
  bool contains(const EntityUid& uid) const { return find(uid) != nullptr; }
  // a == b, or b is an ancestor of a. Entities missing from the store have no parents. Cycles
  // (which add() does not refuse) terminate. One walk; use Ancestors for many questions.
  bool in(const EntityUid& a, const EntityUid& b) const;
  // Calls visit(u) for every ancestor u of a (each once, breadth-first, parents missing from
  // the store included) until it returns true. Returns whether it did.
  template <typename F>
  bool anyAncestor(const EntityUid& a, F visit) const;
  // A cycle in the parent hierarchy (this layer and the base), as the uids along it with the
  // first repeated at the end; empty if there is none. Linear in entities and parent links.
  std::vector<EntityUid> findCycle() const;
  size_t size() const { return map_.size(); }  // this layer only

  // The same JSON format, sorted by uid (this layer and the base, merged).
  nlohmann::json toJson() const;

 private:
  const Entities* base_ = nullptr;
  std::unordered_map<EntityUid, Entity, EntityUidHash> map_;
};

// The ancestors of each entity asked about, resolved once (one anyAncestor walk) and then
// answered from memory. Lives for one request, and the store must not change meanwhile: the
// sets point into its parent lists. Not thread-safe (the supervisor decides on one thread).
class Ancestors {
 public:
  explicit Ancestors(const Entities& entities) : entities_(entities) {}
  // The same answer as Entities::in.
  bool in(const EntityUid& a, const EntityUid& b);
  size_t walks() const { return walks_; }  // how many entities were resolved (for tests)

 private:
  using Set = std::unordered_set<const EntityUid*, EntityUidPtrHash, EntityUidPtrEq>;
  const Entities& entities_;
  std::unordered_map<EntityUid, Set, EntityUidHash> sets_;
  size_t walks_ = 0;
};

template <typename F>
bool Entities::anyAncestor(const EntityUid& a, F visit) const {
  const Entity* start = find(a);
  if (start == nullptr) return false;
  // A hash set, not a list: a hierarchy of 400 groups with 50 parents each has 20,000 links.
  std::unordered_set<const EntityUid*, EntityUidPtrHash, EntityUidPtrEq> seen{&start->uid};
  std::vector<const EntityUid*> queue;
  for (const EntityUid& p : start->parents) queue.push_back(&p);
  for (size_t i = 0; i < queue.size(); ++i) {
    const EntityUid* u = queue[i];
    if (!seen.insert(u).second) continue;
    if (visit(*u)) return true;
    if (const Entity* e = find(*u)) {
      for (const EntityUid& p : e->parents) queue.push_back(&p);
    }
  }
  return false;
}

}  // namespace chitin::policy
