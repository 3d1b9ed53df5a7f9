// SPDX-License-Identifier: Apache-2.0
// The session tools (OpenClaw's names): `sessions_list`, `sessions_history` and `sessions_send`
// let one session of the agent see and talk to its other sessions.
// Runs in: supervisor
//
// They run in the supervisor because they read transcripts, which no worker may see. Each call
// comes here through the guard like every tool: decided by the policy first (sessions_list on
// the Agent; sessions_history and sessions_send on the target `Session` entity,
// policy-model.h), audited intent-before-effect. Then:
//   sessions_list     shows only the sessions the policy lets this session list, each candidate
//                     decided as `sessions_list` on its Session (not audited one by one: the
//                     call's outcome record says how many were shown and hidden);
//   sessions_history  returns the last entries of the target's transcript, bounded in bytes;
//   sessions_send     runs a turn in the target with the message, as the caller's principal,
//                     and returns its reply (or says it is still running).
// Taint crosses with the content, never less (taint.h): what is read from a session holding
// untrusted content taints the reader; the reply of a tainted target taints the caller; a
// message from a tainted session is untrusted in the turn it starts. No cycles: a session does
// not send to itself, a turn started by sessions_send does not send on (depth 1), and a session
// waiting for a reply cannot be sent to (the two would wait for each other).
//
// Owns: the three tools' arguments, output and bounds. May call: the transcript store, the
// policy (to filter the list) and its SessionToolsHost (the agent core, to start a turn).

#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "agent-service.h"
#include "guard.h"
#include "policy-host.h"
#include "tool-runner.h"
#include "transcript.h"

namespace chitin {

// Bounds of what the tools return.
constexpr uint32_t SESSIONS_LIST_DEFAULT = 20;
constexpr uint32_t SESSIONS_LIST_MAX = 100;
constexpr uint32_t SESSIONS_HISTORY_DEFAULT = 20;
constexpr uint32_t SESSIONS_HISTORY_MAX = 200;
constexpr size_t SESSIONS_HISTORY_ENTRY_BYTES = 2000;  // one entry's text
constexpr size_t SESSIONS_OUTPUT_BYTES = 24 << 10;     // the whole result
constexpr size_t SESSIONS_SEND_MESSAGE_BYTES = 64 << 10;
constexpr uint32_t SESSIONS_SEND_DEFAULT_TIMEOUT = 60;
constexpr uint32_t SESSIONS_SEND_MAX_TIMEOUT = 600;

bool isSessionTool(const std::string& tool);

// Checks the arguments of a session tool (the types and sizes): "" when valid, else a message
// for the model naming the argument and what was expected. The target key is checked by
// sessionCallRefusal, which knows the calling turn.
std::string checkSessionToolArguments(const std::string& tool, const nlohmann::json& args);

// Why the guard refuses this call before the policy is asked ("" if it does not): the target is
// not a session key of this agent, or sessions_send would send to the caller's own session or
// from a turn that sessions_send started.
std::string sessionCallRefusal(const TurnFacts& turn, const std::string& tool,
                               const std::string& targetKey, const std::string& agentId);

// What the session tools need of the agent core.
class SessionToolsHost {
 public:
  virtual ~SessionToolsHost() = default;
  // Queues a turn in `facts->sessionKey` with `message` (why it is from outside in
  // `untrusted`, or ""), exactly like a message that arrived there, but spoken by
  // `facts->principal` and answered to `sink` only (nothing goes out on a chat). The policy's
  // decision is the caller's sessions_send. Returns the run id, or why it could not start.
  virtual gateway::Result<std::string> startSessionTurn(std::shared_ptr<TurnFacts> facts,
                                                        const std::string& message,
                                                        const std::string& untrusted,
                                                        std::shared_ptr<gateway::RunSink> sink) = 0;
};

class SessionTools final : public ToolDecorator {
 public:
  SessionTools(ToolExecutor& inner, SessionToolsHost& host, const TranscriptStore& transcripts,
               PolicyHost& policy, kj::Timer& timer, std::string agentId);

  kj::Promise<ToolOutcome> run(const std::string& tool, const std::string& argumentsJson,
                               const std::string& workspaceDir,
                               const std::vector<std::string>& hiddenDirs,
                               CallScope* scope) override;

 private:
  ToolOutcome list(const TurnFacts& caller, const nlohmann::json& args);
  ToolOutcome history(const nlohmann::json& args);
  kj::Promise<ToolOutcome> send(const TurnFacts& caller, const nlohmann::json& args);

  SessionToolsHost& host_;
  const TranscriptStore& transcripts_;
  PolicyHost& policy_;
  kj::Timer& timer_;
  std::string agentId_;
  // Sessions whose turn is waiting for a sessions_send reply, and how many such calls each.
  std::map<std::string, uint32_t> waiting_;
};

}  // namespace chitin
