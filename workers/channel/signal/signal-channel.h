// SPDX-License-Identifier: Apache-2.0
// The Signal channel: a user-run signal-cli daemon's HTTP interface (JSON-RPC + SSE).
// Runs in: worker (sandboxed)
//
// chitin runs no Java and holds no Signal keys: the owner runs
// `signal-cli -a +NUMBER daemon --http 127.0.0.1:8080 --receive-mode=manual` (README
// "Channels"), and this worker talks to it through the egress broker:
//   GET  /api/v1/check                  before each connection;
//   GET  /api/v1/events?account=NUMBER  SSE, one `receive` event per envelope (signal-wire.h);
//   POST /api/v1/rpc                    JSON-RPC 2.0: send, sendTyping, sendReaction,
//                                       getAttachment (inbound files, base64).
//
// What "nothing lost" means here: SSE has no replay. With --receive-mode=manual the daemon
// takes messages from Signal's servers only while an event stream is open, so whatever arrives
// while this worker is disconnected waits on Signal's servers and comes on the next stream.
// What can still be lost: an envelope the daemon took from the server and was writing into a
// stream that just broke (the daemon drops it), and, with the default --receive-mode=on-start,
// everything that arrives while no stream is open. Duplicates cannot arise from the daemon;
// the supervisor deduplicates by message id anyway.
//
// Options: url (the daemon, "http://127.0.0.1:8080"; required), account (our number; required),
// accountUuid (our ACI, so mentions that carry only the ACI are recognised), mentionNames
// (comma-separated names that address us in a group, e.g. "chitin"), idleTimeoutSeconds (no
// byte, not even the daemon's 15 s keep-alive, for this long = a dead stream; default 45). The
// credential is unused (signal-cli holds the keys) and may be empty.

#pragma once

#include <memory>

#include "platform.h"

namespace chitin::channel {

std::unique_ptr<Platform> makeSignal(Settings& settings, Host& host);

}  // namespace chitin::channel
