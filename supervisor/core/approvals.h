// SPDX-License-Identifier: Apache-2.0
// Pending confirmations: tool calls the policy permits only with the owner's confirmation.
// Runs in: supervisor
//
// A call that needs confirmation waits here until the owner approves or denies it (on the chat
// it came from, in the web chat, or with `chitin approvals approve|deny`) or until it times out,
// which counts as denied. An approval answers exactly one waiting call: it is consumed when the
// call proceeds, and it names the fingerprint of the call it was shown (tool, arguments,
// resolved paths, session), which the caller re-checks before acting.

#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent-service.h"
#include "call-description.h"
#include "gateway.pb.h"

namespace chitin {

struct ApprovalRequest {
  std::string sessionKey;
  std::string runId;
  std::string principal;
  std::string tool;
  std::string argumentsJson;
  CallDescription description;  // what the owner is shown (describeCall)
  std::string fingerprint;
  std::vector<std::string> policies;
};

struct ApprovalOutcome {
  enum class Answer { APPROVED, DENIED, EXPIRED };
  Answer answer = Answer::DENIED;
  std::string id;
  std::string by;  // who answered: "local:operator", "telegram:123", "timeout"
};

class ApprovalBook {
 public:
  using RequestedHook = std::function<void(const gateway::ApprovalInfo&)>;
  using ResolvedHook = std::function<void(const gateway::ApprovalResolved&)>;

  ApprovalBook(kj::Timer& timer, uint32_t timeoutSeconds, RequestedHook onRequested,
               ResolvedHook onResolved);
  ~ApprovalBook();

  // Registers the request (announcing it through `onRequested`) and waits for the answer.
  // Dropping the promise withdraws the request (announced as "cancelled").
  kj::Promise<ApprovalOutcome> request(ApprovalRequest request);

  // Pending approvals, oldest first, each as announced: its full call and arguments left out
  // when larger than 64 KiB (see ApprovalInfo.full_call_left_out).
  std::vector<gateway::ApprovalInfo> list() const;
  // One pending approval by id or code, whole; nullopt if there is none.
  std::optional<gateway::ApprovalInfo> get(const std::string& idOrCode) const;

  // Answers the pending request with this id or code. `by` names who answered.
  gateway::Result<gateway::ApprovalResolved> resolve(const std::string& idOrCode, bool approve,
                                                     const std::string& by);

  // Is there a pending request with this code (for "approve CODE" typed on a chat)?
  bool hasCode(const std::string& code) const;

 private:
  struct Pending {
    gateway::ApprovalInfo info;
    kj::Own<kj::PromiseFulfiller<ApprovalOutcome>> fulfiller;
  };
  class Withdrawal;

  void finish(const std::string& id, ApprovalOutcome outcome, const char* decision);
  // What lists and events carry of an approval: without a full call or arguments over 64 KiB.
  static gateway::ApprovalInfo announced(const gateway::ApprovalInfo& whole);
  static constexpr size_t MAX_ANNOUNCED_CALL_BYTES = 64 << 10;

  kj::Timer& timer_;
  uint32_t timeoutSeconds_;
  RequestedHook onRequested_;
  ResolvedHook onResolved_;
  std::map<std::string, Pending> pending_;
};

}  // namespace chitin
