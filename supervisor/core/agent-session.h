// SPDX-License-Identifier: Apache-2.0
// A session as the agent core keeps it: its worker, its running turn and its queue. Internal to
// the agent core's files (agent-core.c++, agent-turn.c++).
// Runs in: supervisor

#pragma once

#include <deque>
#include <memory>
#include <string>

#include "agent-core.h"
#include "session.capnp.h"
#include "worker-host.h"

namespace chitin {

struct AgentCore::Session {
  std::string key;
  kj::Own<WorkerHost> host;
  kj::Maybe<rpc::SessionWorker::Client> client;
  std::shared_ptr<Run> current;
  std::deque<std::shared_ptr<Run>> queue;
  IdleTimer* idle = nullptr;
  uint64_t generation = 0;
  std::string violation;  // why the current worker was killed, if it broke the protocol
};

}  // namespace chitin
