// SPDX-License-Identifier: Apache-2.0
// chitin's request model: known names and the default entity store (see policy-model.h).
// Runs in: supervisor

#include "policy-model.h"

#include <algorithm>
#include <stdexcept>

namespace chitin::policy {

namespace {
template <size_t N>
std::string join(const std::array<std::string_view, N>& names) {
  std::string out;
  for (std::string_view n : names) {
    if (!out.empty()) out += ", ";
    out += n;
  }
  return out;
}
}  // namespace

bool isKnownEntityType(std::string_view type) {
  return std::find(KNOWN_ENTITY_TYPES.begin(), KNOWN_ENTITY_TYPES.end(), type) !=
         KNOWN_ENTITY_TYPES.end();
}

bool isKnownAction(std::string_view id) {
  return std::find(KNOWN_ACTIONS.begin(), KNOWN_ACTIONS.end(), id) != KNOWN_ACTIONS.end();
}

std::string knownEntityTypesList() { return join(KNOWN_ENTITY_TYPES); }
std::string knownActionsList() { return join(KNOWN_ACTIONS); }

Entities defaultEntities() {
  Entities e;
  e.add({"Group", "owners"}, {}, {});
  e.add({"User", "owner"}, {}, {{"Group", "owners"}});
  e.add({"Sender", "local:operator"}, {}, {{"User", "owner"}});
  e.add({"Agent", "main"}, {{"owner", Value::entity({"User", "owner"})}}, {});
  return e;
}

EntityUid addFileEntity(Entities& entities, const std::string& agent, const std::string& path) {
  EntityUid uid{"File", agent + "/" + path};
  entities.add(uid, {{"agent", Value::string(agent)}, {"path", Value::string(path)}},
               {{"Agent", agent}});
  return uid;
}

void addImplicitFileEntity(Entities& entities, const EntityUid& resource) {
  if (resource.type != "File" || entities.contains(resource)) return;
  size_t slash = resource.id.find('/');
  if (slash == std::string::npos || slash == 0) return;
  addFileEntity(entities, resource.id.substr(0, slash), resource.id.substr(slash + 1));
}

Entity recipientEntity(const std::string& to, std::vector<EntityUid> senderParents) {
  Value::Record attrs;
  attrs["channel"] = Value::string(to.substr(0, to.find(':')));
  return {{"Recipient", to}, Value::record(std::move(attrs)), std::move(senderParents)};
}

void addImplicitRecipientEntity(Entities& entities, const EntityUid& resource) {
  if (resource.type != "Recipient" || entities.contains(resource)) return;
  const Entity* sender = entities.find({"Sender", resource.id});
  Entity e = recipientEntity(resource.id, sender ? sender->parents : std::vector<EntityUid>{});
  entities.add(e.uid, e.attrs.asRecord(), e.parents);
}

Entity hostEntity(const std::string& host, int64_t port) {
  Value::Record attrs;
  attrs["name"] = Value::string(host);
  attrs["port"] = Value::integer(port);
  return {{"Host", host}, Value::record(std::move(attrs)), {}};
}

namespace {

// The port of `url` as the supervisor would connect: explicit, else by scheme.
int64_t urlPort(const std::string& url) {
  size_t scheme = url.find("://");
  int64_t fallback = url.rfind("http://", 0) == 0 ? 80 : 443;
  if (scheme == std::string::npos) return fallback;
  std::string authority = url.substr(scheme + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  size_t colon = authority.rfind(':');
  if (colon == std::string::npos || authority.find(']', colon) != std::string::npos) {
    return fallback;
  }
  std::string digits = authority.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 ||
      digits.find_first_not_of("0123456789") != std::string::npos) {
    return fallback;
  }
  return std::stoll(digits);
}

}  // namespace

namespace {

struct SessionKeyParts {
  std::string agent, channel, chat, id;
};

// agent:<agent>:<channel>:(direct|group):<id>; the parts are checked where keys enter
// (session-keys.h), here only the shape.
std::optional<SessionKeyParts> splitSessionKey(const std::string& key) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (int i = 0; i < 4; ++i) {
    size_t colon = key.find(':', start);
    if (colon == std::string::npos) return std::nullopt;
    parts.push_back(key.substr(start, colon - start));
    start = colon + 1;
  }
  parts.push_back(key.substr(start));
  if (parts[0] != "agent" || (parts[3] != "direct" && parts[3] != "group")) return std::nullopt;
  for (const auto& p : parts) {
    if (p.empty()) return std::nullopt;
  }
  return SessionKeyParts{parts[1], parts[2], parts[3], parts[4]};
}

}  // namespace

std::optional<EntityUid> sessionSender(const std::string& key) {
  auto parts = splitSessionKey(key);
  if (!parts || parts->chat != "direct") return std::nullopt;
  bool chatPlatform = std::find(CHAT_CHANNEL_KINDS.begin(), CHAT_CHANNEL_KINDS.end(),
                                parts->channel) != CHAT_CHANNEL_KINDS.end();
  if (!chatPlatform) return EntityUid{"Sender", "local:operator"};
  if (parts->id.rfind("h-", 0) == 0) return std::nullopt;
  return EntityUid{"Sender", parts->channel + ":" + parts->id};
}

Entity sessionEntity(const std::string& key) {
  auto parts = splitSessionKey(key);
  if (!parts) {
    throw std::invalid_argument("session key \"" + key.substr(0, 200) +
                                "\" is not of the form agent:<agent>:<channel>:direct|group:<id>");
  }
  Value::Record attrs;
  attrs["agent"] = Value::string(parts->agent);
  attrs["channel"] = Value::string(parts->channel);
  attrs["chat"] = Value::string(parts->chat);
  attrs["id"] = Value::string(parts->id);
  std::vector<EntityUid> parents;
  if (auto sender = sessionSender(key)) parents.push_back(*sender);
  return {{"Session", key}, Value::record(std::move(attrs)), std::move(parents)};
}

void addImplicitSessionEntity(Entities& entities, const EntityUid& resource) {
  if (resource.type != "Session" || entities.contains(resource) || !splitSessionKey(resource.id))
    return;
  Entity e = sessionEntity(resource.id);
  entities.add(e.uid, e.attrs.asRecord(), e.parents);
}

void addImplicitHostEntity(Entities& entities, const EntityUid& resource, const Value& context) {
  if (resource.type != "Host" || entities.contains(resource)) return;
  std::string url;
  if (context.isRecord()) {
    const auto& c = context.asRecord();
    auto args = c.find("args");
    if (args != c.end() && args->second.isRecord()) {
      auto u = args->second.asRecord().find("url");
      if (u != args->second.asRecord().end() && u->second.isString()) url = u->second.asString();
    }
  }
  Entity e = hostEntity(resource.id, urlPort(url));
  entities.add(e.uid, e.attrs.asRecord(), e.parents);
}

}  // namespace chitin::policy
