// SPDX-License-Identifier: Apache-2.0
// The WhatsApp channel: a C++ adapter that runs the Node bridge (bridge/bridge.mjs, Baileys)
// as its child and translates its JSON lines to chitin's Platform.
// Runs in: worker (sandboxed)
//
// run() starts the bridge (`node bridge.mjs --state <stateDir>/whatsapp --media <tmp dir>
// --egress /run/chitin/egress.sock`), says hello, and turns its events into Host calls:
// connection states into status() (loginRequired -> LOGIN_REQUIRED, open -> CONNECTED with
// our number as identity), qr/pairingCode into login(), messages into deliver() on a thread of
// their own, so that results for send/typing/react keep flowing while a delivery waits on the
// supervisor. When the bridge exits (it does after every lost connection, and may crash) the
// adapter starts a new one with jittered backoff; calls waiting on the old one fail.
//
// Inbound: chat = the jid Baileys gave, sender = the phone number or "<lid>@lid"
// (bridge/mapping.mjs), message id = WhatsApp's id, mentioned = our jid in mentionedJid or a
// reply to one of our messages; our own messages are dropped. Media: the bridge writes each
// inbound file into a private directory under /tmp, the adapter reads it (up to
// maxAttachmentBytes) and removes it; outbound files go the other way.
//
// What "nothing lost" means here: WhatsApp keeps messages for a linked device while it is
// offline and delivers them when it reconnects. Baileys acknowledges a message to WhatsApp
// when it has decrypted it, before the bridge hands it over: a message in flight when the
// bridge or the worker dies between the two is lost. Duplicates the supervisor drops by id.
//
// Options: wsUrl (WhatsApp Web's WebSocket, default wss://web.whatsapp.com/ws/chat; tests
// point it elsewhere). No credential: the link to the phone is the auth state under /state.

#pragma once

#include <memory>
#include <string>
#include <vector>

#include "platform.h"

namespace chitin::channel {

// The bridge as installed beside the worker and mounted into its sandbox (channel-whatsapp
// profile), and the Node.js that runs it.
inline constexpr const char* WHATSAPP_NODE = "/usr/bin/node";
inline constexpr const char* WHATSAPP_BRIDGE = "/opt/chitin/whatsapp-bridge/bridge.mjs";

std::unique_ptr<Platform> makeWhatsApp(Settings& settings, Host& host);

// Tests: the same adapter around another bridge command (argv[0] an absolute path); the
// adapter appends --state, --media and --egress.
std::unique_ptr<Platform> makeWhatsAppWithBridge(Settings& settings, Host& host,
                                                 std::vector<std::string> bridgeCommand);

}  // namespace chitin::channel
