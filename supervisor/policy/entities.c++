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
  std::vector<EntityUid> cycle = out.findCycle();
  if (!cycle.empty()) {
    std::string path;
    for (size_t i = 0; i < cycle.size() && i < 8; ++i) path += (i ? " -> " : "") + cycle[i].str();
    if (cycle.size() > 8) path += " -> ...";
    throw std::invalid_argument(sourceName + ": the parents form a cycle (" + path +
                                "); Cedar requires a hierarchy without cycles");
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
  return a == b || anyAncestor(a, [&](const EntityUid& u) { return u == b; });
}

std::vector<EntityUid> Entities::findCycle() const {
  // Depth-first with an explicit stack (a hierarchy may be thousands deep): an entity is on
  // the path while its parents are being walked; reaching one on the path closes a cycle.
  enum class Mark : uint8_t { ON_PATH, DONE };
  std::unordered_map<const EntityUid*, Mark, EntityUidPtrHash, EntityUidPtrEq> marks;
  struct Frame {
    const Entity* entity;
    size_t next;  // the next parent to look at
  };
  // Roots in uid order, so the cycle named is the same on every run.
  std::vector<const Entity*> roots;
  for (const Entities* layer = this; layer != nullptr; layer = layer->base_) {
    for (const auto& [uid, e] : layer->map_) {
      if (find(uid) == &e) roots.push_back(&e);  // not hidden by an upper layer
    }
  }
  std::sort(roots.begin(), roots.end(),
            [](const Entity* a, const Entity* b) { return a->uid < b->uid; });
  for (const Entity* root : roots) {
    if (marks.count(&root->uid)) continue;
    std::vector<Frame> path{{root, 0}};
    marks.emplace(&root->uid, Mark::ON_PATH);
    while (!path.empty()) {
      Frame& f = path.back();
      if (f.next == f.entity->parents.size()) {
        marks[&f.entity->uid] = Mark::DONE;
        path.pop_back();
        continue;
      }
      const EntityUid& p = f.entity->parents[f.next++];
      const Entity* parent = find(p);
      if (parent == nullptr) continue;
      auto mark = marks.find(&parent->uid);
      if (mark == marks.end()) {
        marks.emplace(&parent->uid, Mark::ON_PATH);
        path.push_back({parent, 0});
      } else if (mark->second == Mark::ON_PATH) {
        std::vector<EntityUid> cycle;
        size_t k = path.size();
        while (k > 0 && !(path[k - 1].entity->uid == parent->uid)) --k;
        for (size_t i = k - 1; i < path.size(); ++i) cycle.push_back(path[i].entity->uid);
        cycle.push_back(parent->uid);
        return cycle;
      }
    }
  }
  return {};
}

bool Ancestors::in(const EntityUid& a, const EntityUid& b) {
  if (a == b) return true;
  auto it = sets_.find(a);
  if (it == sets_.end()) {
    Set set;
    entities_.anyAncestor(a, [&](const EntityUid& u) {
      set.insert(&u);
      return false;
    });
    ++walks_;
    it = sets_.emplace(a, std::move(set)).first;
  }
  return it->second.count(&b) > 0;
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
