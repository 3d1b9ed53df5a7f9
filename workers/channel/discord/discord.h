// SPDX-License-Identifier: Apache-2.0
// The Discord channel: a bot account on Discord's gateway (receive) and REST API (send).
// Runs in: worker (sandboxed)
//
// Credential: the bot token (Developer Portal > the application > Bot > Reset Token), one line.
// Options (README "Channels"):
//   apiRoot     REST root, default https://discord.com/api/v10
//   gatewayUrl  a gateway URL to use instead of asking GET /gateway/bot (tests)
//   intents     comma-separated, default "guilds,guild_messages,direct_messages,message_content";
//               message_content is privileged: enable it in the Developer Portal, or leave it
//               out (then guild messages arrive without text unless they mention the bot)
// Egress: discord.com:443 (REST), gateway.discord.gg:443 and *.discord.gg:443 (gateway and
// resume URLs), cdn.discordapp.com:443 (attachments).

#pragma once

#include <memory>

#include "platform.h"

namespace chitin::channel::discord {

std::unique_ptr<Platform> makeDiscord(Settings& settings, Host& host);

}  // namespace chitin::channel::discord
