// SPDX-License-Identifier: Apache-2.0
// chitin's request model as the policy validator and the CLI know it: the entity types and
// actions a policy may name, and the entity store a new home starts with.
// Runs in: supervisor
//
// These lists are the one place the names live; docs/policy-model.md describes them for policy
// authors. Adding a tool means adding its action here and there.

#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

#include "entities.h"

namespace chitin::policy {

inline constexpr std::array<std::string_view, 9> KNOWN_ENTITY_TYPES = {
    "Sender", "User", "Group", "Agent", "File", "Host", "Recipient", "Session", "Action"};

inline constexpr std::array<std::string_view, 16> KNOWN_ACTIONS = {
    "chat", "exec", "read", "write", "edit", "message_send", "web_fetch", "web_search", "browse",
    "approve", "command",
    // memory_search on the Agent (its memory as a whole), memory_get on the File it reads.
    "memory_search", "memory_get",
    // The session tools: sessions_list on the Agent (and, to filter what it shows, on each
    // Session), sessions_history and sessions_send on the Session they read or send to.
    "sessions_list", "sessions_history", "sessions_send"};

// The chat platforms a Sender id can name ("telegram:123"): the channel kinds of the config.
// A session key's channel part that is none of these names a local client kind ("cli",
// "webchat"), whose sessions belong to the token holder, Sender::"local:operator".
inline constexpr std::array<std::string_view, 7> CHAT_CHANNEL_KINDS = {
    "telegram", "discord", "slack", "signal", "irc", "email", "whatsapp"};

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

// The Host entity of a network tool's request (web_fetch, web_search, browse), as the supervisor
// builds it: Host::"<host>" with attrs {name: "<host>", port: <port>} and no parents. `host` is
// canonical (egress::normalizeHost: lower case, no trailing dot, IDN as punycode, IP literals
// in inet_ntop form, IPv6 without brackets), so a policy compares one spelling per host.
Entity hostEntity(const std::string& host, int64_t port);

// For the CLI's explain/test: if `resource` is a Host the store lacks, adds it as the supervisor
// would, the port taken from `context.args.url` (its explicit port, else 80 for http and 443
// otherwise).
void addImplicitHostEntity(Entities& entities, const EntityUid& resource, const Value& context);

// The Session entity of a session key (agent:<agent>:<channel>:(direct|group):<id>), as the
// supervisor builds it per request: Session::"<key>" with attrs {agent, channel, chat ("direct"
// or "group"), id} and, for a direct session, the parent Sender it belongs to (sessionSender), so
// `resource in principal` is the speaker's own session and `resource in Group::"owners"` is any
// direct session of an owner, on any channel. A group session, and a direct one whose sender
// cannot be named, is in nothing. Throws std::invalid_argument on a key of another form.
Entity sessionEntity(const std::string& key);

// The Sender a direct session belongs to: Sender::"<channel>:<id>" on a chat platform
// (CHAT_CHANNEL_KINDS), Sender::"local:operator" for a local client's session. None for a
// group session, and for an id the key holds only as a hash ("h-..."; the platform id had upper
// case or ':'), which names no sender: such a session is in nothing.
std::optional<EntityUid> sessionSender(const std::string& key);

// For the CLI's explain/test: if `resource` is a Session the store lacks, adds it as the
// supervisor would (nothing for a malformed key).
void addImplicitSessionEntity(Entities& entities, const EntityUid& resource);

}  // namespace chitin::policy
