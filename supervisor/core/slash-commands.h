// SPDX-License-Identifier: Apache-2.0
// Slash commands (`/status`, `/new`, `/stop`, ...): typed at the start of a message on any
// channel, the web chat or `chitin agent -m`, answered by the supervisor itself without a model
// call.
// Runs in: supervisor
//
// Trust: the text comes from a sender the policy already let talk (Action::"chat"). Each
// command is one more policy decision, Action::"command" on the Agent with context.args.name
// (and /approve, /deny: Action::"approve", the action an answer typed on a chat already uses),
// audited as a decision whatever its outcome. A command acts only on the sender's own session
// (its key comes from the channel and sender, never from the text).

#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "agent-service.h"
#include "approvals.h"
#include "audit-log.h"
#include "guard.h"
#include "policy-host.h"

namespace chitin {

struct SlashCommand {
  std::string name;  // lower-cased, without the '/'
  std::string args;  // the rest of the message, trimmed
};

// A message that starts with '/' and a command word (letters, digits, '_' or '-', ended by
// whitespace or the end): the command. Anything else ("/etc/hosts is ...", "hi /status") is a
// message for the model: nullopt.
std::optional<SlashCommand> parseSlashCommand(std::string_view text);

// The commands and what each does, for /help and for unknown commands.
std::string slashHelpText();

// What the dispatcher needs of the agent core that owns the sessions.
class SlashHost {
 public:
  virtual ~SlashHost() = default;
  struct SessionState {
    size_t messages = 0;          // transcript entries
    std::string untrustedSource;  // why the replayed history is tainted, or ""
    bool running = false;         // a turn in progress
    size_t queued = 0;            // messages waiting behind it
  };
  virtual SessionState sessionState(const std::string& key) = 0;
  // Aborts the session's running turn and drops its queued messages; returns how many runs.
  virtual size_t stopSession(const std::string& key) = 0;
  // Archives the session's transcript (the session starts over). The archived file's name, ""
  // if there was no transcript, or the error (a run in progress, an I/O failure).
  virtual gateway::Result<std::string> resetSession(const std::string& key,
                                                    const policy::EntityUid& by) = 0;
  virtual gateway::StatusPayload status() = 0;
};

// What a command comes to: a reply now, or (/compact) a compaction the agent core queues in the
// session like a message, answered when it is done.
struct SlashAnswer {
  std::string reply;
  std::optional<std::string> compact;  // the instructions of an allowed /compact ("" for none)
};

class SlashCommands {
 public:
  SlashCommands(SlashHost& host, PolicyHost& policy, audit::AuditLog& audit,
                ApprovalBook& approvals, std::string agentId);

  // The answer to `command` from the sender in `facts` (its session: facts.sessionKey), decided
  // by the policy and audited. `sender` is the platform's id of the sender ("" for local
  // clients).
  SlashAnswer run(const SlashCommand& command, const TurnFacts& facts, const std::string& sender);

 private:
  SlashHost& host_;
  PolicyHost& policy_;
  audit::AuditLog& audit_;
  ApprovalBook& approvals_;
  std::string agentId_;

  bool allowed(const char* action, const SlashCommand& command, const TurnFacts& facts);
  std::string status(const TurnFacts& facts);
  std::string reset(const SlashCommand& command, const TurnFacts& facts);
  std::string model(const SlashCommand& command);
  std::string whoami(const TurnFacts& facts, const std::string& sender);
  std::string answer(const SlashCommand& command, const TurnFacts& facts);
};

}  // namespace chitin
