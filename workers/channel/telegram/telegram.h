// SPDX-License-Identifier: Apache-2.0
// The Telegram Bot API as a chitin channel platform: long-polled getUpdates in, sendMessage
// (HTML converted from Markdown, chunked at 4096 UTF-16 units) and friends out.
// Runs in: worker (sandboxed)
//
// Options (chitin.conf `channels.account { kind: "telegram" options {...} }`):
//   apiRoot      default https://api.telegram.org; http:// only to a loopback address (tests,
//                a local Bot API server), because the token travels in the URL
//   pollTimeout  getUpdates long-poll seconds, 0-50, default 50
// The credential is the bot token from @BotFather ("123456:ABC-..."). State (/state):
// `offset` (the next update to ask for, written only after the supervisor has the message, not
// synced: losing it only redelivers what the supervisor drops as duplicates) and
// `migrations` (groups that became supergroups: old id -> new id).

#pragma once

#include <memory>

#include "platform.h"

namespace chitin::channel::telegram {

// Throws ChannelError for a malformed token, a bad option or an unusable state directory.
std::unique_ptr<Platform> makeTelegram(Settings& settings, Host& host);

}  // namespace chitin::channel::telegram
