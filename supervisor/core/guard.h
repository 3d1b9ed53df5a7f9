// SPDX-License-Identifier: Apache-2.0
// The guard: the one path every tool call the model makes takes to become an effect.
// Runs in: supervisor
//
//   arguments checked → policy decision (audited) → deny: the model is told
//                                                  → ask: wait for the owner; re-check the call
//                                                  → allow
//   → snapshot of the workspace (mutating tools) → intent record, synced → the tool runs in its
//   sandbox → outcome record → changed files record → taint: what the call brought into the
//   session's context, and what it wrote while untrusted content was there (taint.h)
//
// If the audit log cannot take the intent record, or the snapshot cannot be made, the tool
// does not run (fail closed): an effect nobody can see or undo is worse than no effect.

#pragma once

#include <kj/async.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "approvals.h"
#include "audit-log.h"
#include "policy-host.h"
#include "rules.h"
#include "snapshots.h"
#include "taint.h"
#include "tool-runner.h"

namespace chitin {

// What the policy needs to know about the turn a call belongs to.
struct TurnFacts {
  // Marks the session's context as holding untrusted content from `source` (the first reason
  // is kept: it is the one the prompt and `chitin sessions` show).
  void taint(const std::string& source) {
    if (!tainted || taintSource.empty()) taintSource = source;
    tainted = true;
  }

  std::string sessionKey;
  std::string runId;
  policy::EntityUid principal;
  std::string channel = "local";
  std::string chatType = "direct";
  bool mentioned = false;
  // The session's context holds content from outside (a non-owner's message, an untrusted
  // file, anything a tainted turn derived from them, still in the replayed history): the policy
  // sees context.tainted.
  bool tainted = false;
  std::string taintSource;  // why, for the prompt, the audit log and `chitin sessions`
  // A turn that sessions_send started: the caller's session. Such a turn may not send on.
  std::string sentFrom;
};

struct GuardSettings {
  std::string agentId = "main";
  std::string workspaceDir;
  std::vector<std::string> untrustedPaths;  // workspace-relative prefixes
};

// The files chitin injects into every session's system prompt, at the workspace root. Whoever
// changes them steers every later session, so the shipped policy asks before a write or edit of
// one, and an exec that changed one is decided as a `write` afterwards (undone unless allowed).
const std::vector<std::string>& promptFiles();

// exec's command as the policy sees it: the program (first word; /bin/, /usr/bin/ and
// /usr/local/bin/ stripped, any other path kept whole) and whether
// the command is plain words only (no quoting, expansion, redirection, chaining or newlines).
struct CommandShape {
  std::string program;
  bool simple = false;
};
CommandShape commandShape(const std::string& command);

// What every request of a turn carries in its policy context (docs/policy-model.md): tainted,
// confirmed, channel, chatType, mentioned and the call's `args`.
policy::Value::Record policyContext(const TurnFacts& turn, bool confirmed, policy::Value args);

// What a file path names right now, beneath the workspace: the resolved relative path and the
// inode (or the parent's, plus the name, for a file that does not exist yet). Part of an
// approval's fingerprint, so a symlink swapped while the owner decides voids the approval.
std::string resolvedIdentity(const std::string& workspaceDir, const std::string& relativePath);

class Guard final : private kj::TaskSet::ErrorHandler {
 public:
  Guard(PolicyHost& policy, ApprovalBook& approvals, audit::AuditLog& audit,
        audit::Snapshots& snapshots, ToolExecutor& tools, UntrustedFiles& untrusted,
        GuardSettings settings);

  // Runs one tool call the model made. Never rejects for expected outcomes (bad arguments,
  // denial, no approval, tool failure). `onAwaitingApproval` is called when the call starts to
  // wait for the owner. Cancelling the promise withdraws a pending approval or kills the tool.
  kj::Promise<ToolOutcome> run(std::shared_ptr<TurnFacts> turn, std::string callId,
                               std::string tool, std::string argumentsJson,
                               std::function<void()> onAwaitingApproval);

  // Mutating tool calls in progress (a rollback must not race them).
  uint32_t mutatingInProgress() const { return mutating_; }

  audit::AuditLog& auditLog() { return audit_; }

 private:
  struct Call;
  class Scope;  // the CallScope a running call gets (tool-runner.h)
  kj::Promise<ToolOutcome> execute(std::shared_ptr<Call> call);
  // A further destination of a running call, decided and audited like the call (CallScope):
  // `host` with `args` (the call's, plus what names the destination) as context.args. At most
  // MAX_DESTINATIONS_PER_CALL are decided per call, at most MAX_REFUSED_DESTINATIONS_PER_CALL
  // of them refused (each refusal is a synced record); past either, one record says so and
  // every new destination is refused undecided. A connection's verdict is kept for the call.
  static constexpr uint32_t MAX_DESTINATIONS_PER_CALL = 256;
  static constexpr uint32_t MAX_REFUSED_DESTINATIONS_PER_CALL = 32;
  std::string decideDestination(Call& call, const std::string& action, const egress::Rule& host,
                                nlohmann::json args, Initiator initiator);
  std::string decideConnectionOf(Call& call, const std::string& action, const std::string& host,
                                 uint16_t port);
  // Expires with the guard: what a decider handed out after a call checks before using it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // TOOL_END, then (mutating calls) the changed files, compared off the loop.
  kj::Promise<ToolOutcome> afterTool(std::shared_ptr<Call> call, bool mutating,
                                     std::vector<audit::Skipped> skippedBefore,
                                     ToolOutcome outcome);
  uint64_t record(audit::Record r, bool sync);
  // Has the records of a call's end (TOOL_END, FILE_CHANGE) synced in the background.
  void endSynced();
  void taskFailed(kj::Exception&& exception) override;
  // Taint (taint.h). Before the call: what untrusted content it can reach. After it: what it
  // brought into the session's context (true: it tainted the session just now), and what it
  // wrote (what it changed, plus what the comparison could not see).
  void noteWhatCallCanSee(Call& call, bool mutating);
  bool noteWhatCallSaw(Call& call, const std::string& fromOutside);
  void recordWhatCallWrote(Call& call, const audit::Comparison& compared);
  // An exec changed prompt files: each change is decided as a `write`; the refused ones are
  // restored from the call's snapshot (off the loop). Resolves to a note for the model ("" if
  // none).
  kj::Promise<std::string> guardPromptFiles(std::shared_ptr<Call> call,
                                            const std::vector<audit::FileChange>& changes);

  PolicyHost& policy_;
  ApprovalBook& approvals_;
  audit::AuditLog& audit_;
  audit::Snapshots& snapshots_;
  ToolExecutor& tools_;
  UntrustedFiles& untrusted_;
  GuardSettings settings_;
  uint32_t mutating_ = 0;
  // Mutating calls of tainted sessions in progress, and how many have started: a call that
  // overlaps one may have seen what it was writing.
  uint32_t taintedWriters_ = 0;
  uint64_t taintedWritersStarted_ = 0;
  kj::TaskSet endSyncs_;  // endSynced()'s, in flight
};

}  // namespace chitin
