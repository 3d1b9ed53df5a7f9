// SPDX-License-Identifier: Apache-2.0
// The ChannelWorker capability every channel worker serves: it builds the platform on `start`,
// runs its receive loop and its outbound calls on threads of their own, and stops them when the
// supervisor goes away.
// Runs in: worker (sandboxed)
//
// Threads: the RPC thread (Cap'n Proto, this server, HostBridge's pump), the receive thread
// (Platform::run) and the outbound thread (send/typing/react/login, one at a time, in the order
// the supervisor called them). An outbound call's result or ChannelError crosses back through a
// cross-thread fulfiller; a delivery crosses through HostBridge. At shutdown -- the server is
// destroyed on the RPC thread when the supervisor hangs up -- it stops the bridge (waking a
// blocked deliver() with Stopping), drops queued outbound calls, interrupts the platform and
// joins both threads. A platform that ignores interrupt() for `stopGrace` ends the process:
// a worker that cannot stop must not linger holding its credential.

#pragma once

#include <chrono>
#include <string>

#include "channel.capnp.h"
#include "platform.h"

namespace chitin::channel {

struct WorkerOptions {
  std::string kind;  // the worker kind, "channel-telegram": start() refuses another platform
  std::string egressSocket = EGRESS_SOCKET_IN_SANDBOX;  // "" in tests outside a sandbox
  std::string stateDir = STATE_DIR_IN_SANDBOX;
  std::chrono::milliseconds stopGrace{5000};
};

// Inbound attachments over this many bytes arrive without their data when the supervisor
// does not say otherwise (ChannelSettings.maxAttachmentBytes = 0).
inline constexpr uint64_t DEFAULT_MAX_ATTACHMENT_BYTES = 20u << 20;

kj::Own<rpc::ChannelWorker::Server> newChannelWorker(WorkerOptions options,
                                                     PlatformFactory factory);

// workerMain() and localWorkerMain() (platform.h): runWorker() with the ChannelWorker bootstrap,
// `beforeThreads` (if not null) called first, before any thread and the lockdown.
int runChannelWorker(int argc, char** argv, const char* kind, PlatformFactory factory,
                     void (*beforeThreads)());

}  // namespace chitin::channel
