// SPDX-License-Identifier: Apache-2.0
// How the channel host starts a real channel worker: a sandbox from the `channel-<kind>`
// profile, built by the spawner (the only code that builds sandboxes) with the account's state
// directory and its egress socket, watched by a WorkerHost (pidfd exit, output log, cgroup).
// Runs in: supervisor
//
// Proved end to end by e2e `test_channel_signal.py` and red-team 21 (real sandboxed workers);
// the host's own logic is unit-tested with an in-process launcher (channels-test-support.h).

#pragma once

#include <kj/async-io.h>
#include <uv.h>

#include "channel-host.h"
#include "spawner.h"

namespace chitin::channels {

// The production launcher: a sandbox from the `channel-<kind>` profile (spawner.h), watched by
// a WorkerHost.
class SandboxLauncher final : public WorkerLauncher {
 public:
  SandboxLauncher(uv_loop_t* loop, kj::AsyncIoContext& io, spawn::Spawner& spawner)
      : loop_(loop), io_(io), spawner_(spawner) {}
  kj::Own<LaunchedWorker> launch(const LaunchRequest& request) override;

 private:
  uv_loop_t* loop_;
  kj::AsyncIoContext& io_;
  spawn::Spawner& spawner_;
};

}  // namespace chitin::channels
