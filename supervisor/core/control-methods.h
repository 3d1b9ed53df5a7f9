// SPDX-License-Identifier: Apache-2.0
// The owner's control methods on the gateway: approvals, pairing, policy reload, rollback,
// memory search.
// Runs in: supervisor
//
// Owns: the table of control methods and what each does. Everyone who reaches these holds the
// gateway token, so every caller is the local operator (the owner); each method still checks
// its parameters and records what it changed in the audit log. It may call the approval book,
// the policy host, the pairing store, the audit log and the snapshots - nothing of sessions or
// turns except asking the guard whether a mutating call is in progress.

#pragma once

#include <google/protobuf/struct.pb.h>
#include <kj/async.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "agent-service.h"
#include "approvals.h"
#include "audit-log.h"
#include "guard.h"
#include "pairing.h"
#include "policy-host.h"
#include "snapshots.h"
#include "taint.h"
#include "task-errors.h"
#include "tool-runner.h"

namespace chitin {

// What the core consults and records to; owned by the supervisor.
struct Safeguards {
  PolicyHost& policy;
  PairingStore& pairing;
  audit::AuditLog& audit;
  audit::Snapshots& snapshots;
  UntrustedFiles& untrusted;
};

class ControlMethods final {
 public:
  ControlMethods(Safeguards safeguards, ApprovalBook& approvals, Guard& guard,
                 std::string auditDir);

  // nullopt if `method` is not one of these.
  std::optional<gateway::Result<google::protobuf::Struct>> call(
      const std::string& method, const google::protobuf::Struct& params);
  // The methods answered later (workspace.rollback: the restore runs on the snapshot thread).
  // false if `method` is not one of these; otherwise `reply` is called exactly once (never after
  // this object is gone).
  bool callLater(const std::string& method, const google::protobuf::Struct& params,
                 gateway::AgentService::ControlReply reply);
  std::vector<std::string> methods() const;

  // Re-reads policies and entities (SIGHUP, `chitin policy reload`); audited either way.
  gateway::PolicyReloadResult reloadPolicy(const std::string& by);

  // memory.search runs `search` (the ToolRunner's memory worker call for the agent's workspace);
  // without it the method is not offered.
  using MemorySearch =
      std::function<kj::Promise<ToolOutcome>(const std::string& query, uint32_t maxResults)>;
  void setMemorySearch(MemorySearch search) { memorySearch_ = std::move(search); }

 private:
  void rollback(const gateway::RollbackParams& params, gateway::AgentService::ControlReply reply);
  void searchMemory(const gateway::MemorySearchParams& params,
                    gateway::AgentService::ControlReply reply);
  gateway::Result<google::protobuf::Struct> rolledBack(const audit::Record& target,
                                                       const audit::Restored& restored);

  Safeguards safeguards_;
  ApprovalBook& approvals_;
  Guard& guard_;
  std::string auditDir_;
  MemorySearch memorySearch_;
  LogTaskErrors taskErrors_{"control method", spdlog::level::err};
  kj::TaskSet tasks_{taskErrors_};  // rollbacks in progress; destroyed first, so they end with us
};

}  // namespace chitin
