// SPDX-License-Identifier: Apache-2.0
// Discord's MESSAGE_CREATE dispatch as a chitin Inbound: who wrote it, where, whether the bot
// was addressed, and which attachments to fetch.
// Runs in: worker (sandboxed)

#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "json-fields.h"
#include "platform.h"

namespace chitin::channel::discord {

struct Self {
  std::string id;    // the bot's user id (READY's user.id, or GET /users/@me)
  std::string name;  // its username
};

struct AttachmentRef {
  std::string name;
  std::string mimeType;
  std::string url;  // Discord's CDN; fetched without the bot token
  uint64_t size = 0;
};

struct Message {
  Inbound inbound;  // attachments still empty: the caller downloads `files` into it
  std::vector<AttachmentRef> files;
};

// nullopt for a message that is not for chitin: our own, another bot's or a webhook's, a
// system message (a join, a pin), or one without the fields every message has; `skipped` then
// says which, for the log.
std::optional<Message> parseMessageCreate(const Json& d, const Self& self, std::string& skipped);

// A Discord id: 1-20 decimal digits (a 64-bit snowflake).
bool isSnowflake(std::string_view id);
// The time a snowflake was made, ms since the Unix epoch; 0 when `id` is not one.
int64_t snowflakeMs(std::string_view id);

}  // namespace chitin::channel::discord
