// SPDX-License-Identifier: Apache-2.0
// chitin's request model as the policy validator and the CLI know it: the entity types and
// actions a policy may name, and the entity store a new home starts with.
// Runs in: supervisor
//
// These lists are the one place the names live; docs/policy-model.md describes them for policy
// authors. Adding a tool means adding its action here and there.

#pragma once

#include <array>
#include <string>
#include <string_view>

#include "entities.h"

namespace chitin::policy {

inline constexpr std::array<std::string_view, 8> KNOWN_ENTITY_TYPES = {
    "Sender", "User", "Group", "Agent", "File", "Host", "Recipient", "Action"};

inline constexpr std::array<std::string_view, 8> KNOWN_ACTIONS = {
    "chat", "exec", "read", "write", "edit", "message_send", "web_fetch", "approve"};

bool isKnownEntityType(std::string_view type);
bool isKnownAction(std::string_view id);
// "a, b, c" for error messages.
std::string knownEntityTypesList();
std::string knownActionsList();

// The store a home starts with when it has no entities.json: User::"owner" in
// Group::"owners", Sender::"local:operator" in User::"owner", Agent::"main" owned by
// User::"owner".
Entities defaultEntities();

// The File entity for a workspace path, as the supervisor adds it per request:
// File::"<agent>/<path>" with parent Agent::"<agent>" and attrs {agent, path}. `path` is relative
// to the workspace and already normalized. Returns the uid.
EntityUid addFileEntity(Entities& entities, const std::string& agent, const std::string& path);

// For the CLI's explain/test: if `resource` is a File::"<agent>/<path>" the store lacks, adds it
// as the supervisor would.
void addImplicitFileEntity(Entities& entities, const EntityUid& resource);

// The Recipient entity of a message to "<channel>:<chat id>", as the supervisor builds it per
// request: Recipient::"<channel>:<chat id>" with attrs {channel} and the parents of the Sender
// with the same id, so a message to one of the owner's own accounts is `in Group::"owners"` and
// a message to anyone else (or to a group chat) is in nothing. `senderParents` are those parents.
Entity recipientEntity(const std::string& to, std::vector<EntityUid> senderParents);

// For the CLI's explain/test: if `resource` is a Recipient the store lacks, adds it as the
// supervisor would (recipientEntity with the store's sender).
void addImplicitRecipientEntity(Entities& entities, const EntityUid& resource);

}  // namespace chitin::policy
