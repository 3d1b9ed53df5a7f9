// SPDX-License-Identifier: Apache-2.0
// `chitin memory status | index | search QUERY [--max N] [--agent NAME]`: the agent's memory
// index as the owner sees it. A search of the config's agent asks the running gateway first
// (memory.search: its memory worker, with the embeddings only it can reach); otherwise every
// command is one call of the real memory worker, in its shipped sandbox profile (`memory`),
// started here by the spawner exactly as the gateway's ToolRunner starts it: a sandbox that
// cannot be set up means the command does not run. It works whether or not the gateway is
// running: the two processes' workers share the index in
// $CHITIN_HOME/state/memory/<agent>/, and the index's lock (workers/memory/memory-index.h) lets
// one of them at a time use it.
// Runs in: the `chitin` command's process (chitin-supervisor), as the owner of $CHITIN_HOME
//
// Trust: the worker's answer is JSON of a known shape (tool.capnp) and nothing else is believed;
// every text from it (paths, snippets: anybody's bytes) is printed as display text.

#pragma once

#include <cstdint>
#include <ctime>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "spawner.h"
#include "tool-runner.h"

namespace chitin::memory {

enum class MemoryCommand { STATUS, INDEX, SEARCH };

struct MemoryCliRequest {
  MemoryCommand command = MemoryCommand::STATUS;
  std::string query;         // search
  uint32_t maxResults = 10;  // search: 1..MAX_MEMORY_HITS
  std::string agent;         // --agent; "" = the agent of chitin.conf
};

// Parses the arguments after `memory`. "" when valid, else the problem, naming the input and
// what was expected.
std::string parseMemoryArgs(const std::vector<std::string>& args, MemoryCliRequest& out);

// What `status` and `index` print for the worker's JSON answer; `now` for the age of the last
// update. Throws std::runtime_error when the answer is not of the contract's shape.
std::string formatMemoryStatus(const std::string& workerJson, MemoryCommand command,
                               const std::string& agent, std::time_t now);
// What `search` prints: one block per hit (path:lines, score, snippet), best first.
std::string formatMemorySearch(const std::string& workerJson, const std::string& query);

// One memory worker call for `request` over `workspaceDir`, the index in `stateDir`.
using MemoryWorkerCall = std::function<ToolOutcome(
    const MemoryCliRequest& request, const std::string& workspaceDir, const std::string& stateDir)>;

// What the running gateway answered to memory.search.
struct GatewayMemoryAnswer {
  bool reached = false;  // a gateway answered (else none runs, or it could not be reached)
  bool ok = false;       // with the memory worker's JSON in `text`; else `text` says why not
  std::string text;
};
using GatewayMemorySearch = std::function<GatewayMemoryAnswer(const MemoryCliRequest& request)>;

struct MemoryCliEnv {
  std::string home;          // $CHITIN_HOME
  std::string defaultAgent;  // chitin.conf's agent.id
  MemoryWorkerCall call;     // runMemoryWorker with the real spawner; a fake in tests
  // `search` of the config's agent asks the running gateway first: its memory_search ranks by
  // meaning too when model.embedding_model is set, and only it may reach the provider. With no
  // gateway (or one that fails) the search runs here, by keywords. Unset: always here.
  GatewayMemorySearch gatewaySearch;
};

// Exit codes: 0 ok (a search without matches too); 1 the worker did not run or failed (the
// sandbox could not be set up, the index is busy); 2 usage.
int memoryCommand(const std::vector<std::string>& args, const MemoryCliEnv& env, std::ostream& out,
                  std::ostream& err);

// The real call: a ToolRunner on an event loop of its own, with a spawner of `settings`; returns
// when the worker has answered or ended. Never throws for an expected failure (those are the
// outcome's error text).
ToolOutcome runMemoryWorker(const spawn::SpawnerSettings& settings, const MemoryCliRequest& request,
                            const std::string& workspaceDir, const std::string& stateDir);

}  // namespace chitin::memory
