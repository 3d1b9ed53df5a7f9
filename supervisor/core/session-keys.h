// SPDX-License-Identifier: Apache-2.0
// Session keys: which conversation a message belongs to, derived so that no client or bridge can
// steer a sender into someone else's session.
// Runs in: supervisor
//
//   agent:<agent>:<channel>:direct:<sender>   one per sender (OpenClaw's shared-DM default leaks
//   agent:<agent>:<channel>:group:<chat>      context between people; chitin does not share)

#pragma once

#include <string>

namespace chitin {

// Checks a session key: agent:<agent>:<channel>:(direct|group):<id>. Returns "" if valid, else a
// message naming the key (shortened) and the expected form.
std::string checkSessionKey(const std::string& key);

// The session of a local client holding the token: agent:<agent>:<client>:direct:<user>, the
// client kind and user lower-cased and reduced to key characters.
std::string defaultSessionKey(const std::string& agentId, const std::string& clientId,
                              const std::string& user);

// The session of a channel sender (direct) or chat (group). `id` is the platform's own id and
// maps one-to-one onto the key (ids that are not plain lower-case key characters are hashed).
std::string channelSessionKey(const std::string& agentId, const std::string& channel,
                              const std::string& chatType, const std::string& id);

}  // namespace chitin
