// SPDX-License-Identifier: Apache-2.0
// The Slack channel: a Slack app's bot over Socket Mode (receive) and the Web API (send).
// Runs in: worker (sandboxed)
//
// Credential: two lines, in either order: the app-level token (xapp-..., scope
// connections:write: Socket Mode) and the bot token (xoxb-...). README "Channels" says where
// each comes from and which scopes and events the app needs.
// Options:
//   apiRoot         Web API root, default https://slack.com/api
//   threadReplies   true: answer a channel message in a thread under it (default false: a
//                   reply goes where the message was, in its thread if it was in one)
// Slack has no typing indicator for bots (capabilities.typing is false).
// Egress: slack.com:443 (Web API), *.slack.com:443 (Socket Mode's wss-primary.slack.com, file
// downloads and uploads on files.slack.com).

#pragma once

#include <memory>

#include "platform.h"

namespace chitin::channel::slack {

std::unique_ptr<Platform> makeSlack(Settings& settings, Host& host);

}  // namespace chitin::channel::slack
