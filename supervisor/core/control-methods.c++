// SPDX-License-Identifier: Apache-2.0
// The owner's control methods (see control-methods.h).
// Runs in: supervisor

#include "control-methods.h"

#include <spdlog/spdlog.h>

#include <regex>

#include "frames.h"
#include "utf8.h"

namespace chitin {

ControlMethods::ControlMethods(Safeguards safeguards, ApprovalBook& approvals, Guard& guard,
                               std::string auditDir)
    : safeguards_(safeguards),
      approvals_(approvals),
      guard_(guard),
      auditDir_(std::move(auditDir)) {}

std::vector<std::string> ControlMethods::methods() const {
  std::vector<std::string> out = {"approvals.list", "approval.get",      "approval.resolve",
                                  "pairing.list",   "pairing.approve",   "pairing.deny",
                                  "policy.reload",  "workspace.rollback"};
  if (memorySearch_) out.push_back("memory.search");
  return out;
}

gateway::PolicyReloadResult ControlMethods::reloadPolicy(const std::string& by) {
  gateway::PolicyReloadResult result;
  std::string problem = safeguards_.policy.reload();
  result.set_ok(problem.empty());
  result.set_error(problem);
  result.set_policies(static_cast<uint32_t>(safeguards_.policy.policyCount()));
  audit::Record r;
  r.set_kind(audit::CONFIG_CHANGE);
  r.set_principal(by);
  r.set_outcome(problem.empty() ? "reloaded" : "refused");
  r.set_detail(problem.empty() ? std::to_string(result.policies()) + " policies in force"
                               : "kept the previous policy: " + problem);
  safeguards_.audit.appendOrLog(std::move(r), true);
  if (problem.empty()) {
    spdlog::info("policy reloaded by {}: {} policies", by, result.policies());
  } else {
    spdlog::error("policy reload by {} refused, the previous policy stays:\n{}", by, problem);
  }
  return result;
}

std::optional<gateway::Result<google::protobuf::Struct>> ControlMethods::call(
    const std::string& method, const google::protobuf::Struct& params) {
  // Everyone holding the gateway token is the local operator (the owner).
  const std::string by = localOperator().id;
  auto fail = [](const gateway::UserError& e) -> gateway::Result<google::protobuf::Struct> {
    return e;
  };
  if (method == "approvals.list") {
    gateway::ApprovalsList list;
    for (auto& a : approvals_.list()) *list.add_approvals() = a;
    return gateway::frames::toStruct(list);
  }
  if (method == "approval.get") {
    auto p = gateway::frames::paramsAs<gateway::ApprovalGetParams>(params, method);
    if (auto* e = std::get_if<gateway::UserError>(&p)) return fail(*e);
    auto info = approvals_.get(std::get<gateway::ApprovalGetParams>(p).id());
    if (!info)
      return fail({"NOT_FOUND", "no pending approval with id or code \"" +
                                    clipUtf8(std::get<gateway::ApprovalGetParams>(p).id(), 64) +
                                    "\" (it may have been answered or expired)"});
    return gateway::frames::toStruct(*info);
  }
  if (method == "approval.resolve") {
    auto p = gateway::frames::paramsAs<gateway::ApprovalResolveParams>(params, method);
    if (auto* e = std::get_if<gateway::UserError>(&p)) return fail(*e);
    auto& q = std::get<gateway::ApprovalResolveParams>(p);
    if (q.decision() != "approve" && q.decision() != "deny")
      return fail({"INVALID_REQUEST", "decision: expected \"approve\" or \"deny\""});
    auto resolved = approvals_.resolve(q.id(), q.decision() == "approve", by);
    if (auto* e = std::get_if<gateway::UserError>(&resolved)) return fail(*e);
    return gateway::frames::toStruct(std::get<gateway::ApprovalResolved>(resolved));
  }
  if (method == "pairing.list") {
    gateway::PairingList list;
    for (auto& r : safeguards_.pairing.list()) {
      auto* info = list.add_requests();
      info->set_code(r.code);
      info->set_channel(r.channel);
      info->set_sender(r.sender);
      info->set_requested_at(rfc3339(r.requestedAt));
      info->set_expires_at(rfc3339(r.expiresAt));
    }
    return gateway::frames::toStruct(list);
  }
  if (method == "pairing.approve" || method == "pairing.deny") {
    auto p = gateway::frames::paramsAs<gateway::PairingDecisionParams>(params, method);
    if (auto* e = std::get_if<gateway::UserError>(&p)) return fail(*e);
    auto& q = std::get<gateway::PairingDecisionParams>(p);
    bool approve = method == "pairing.approve";
    static const std::regex namePattern("[A-Za-z0-9_.@+-]{1,64}");
    if (!q.user().empty() && !q.group().empty())
      return fail({"INVALID_REQUEST", "give either user or group, not both"});
    for (const std::string* name : {&q.user(), &q.group()}) {
      if (!name->empty() && !std::regex_match(*name, namePattern))
        return fail({"INVALID_REQUEST", "user/group: expected 1-64 of A-Z a-z 0-9 _ . @ + -"});
    }
    auto request = safeguards_.pairing.take(q.code());
    if (!request)
      return fail({"NOT_FOUND", "no pending pairing request with code \"" +
                                    clipUtf8(q.code(), 200) + "\" (it may have expired)"});
    policy::EntityUid sender{"Sender", request->channel + ":" + request->sender};
    policy::EntityUid parent = !q.group().empty()  ? policy::EntityUid{"Group", q.group()}
                               : !q.user().empty() ? policy::EntityUid{"User", q.user()}
                                                   : policy::EntityUid{"User", "owner"};
    if (approve) {
      try {
        safeguards_.policy.addSender(sender, parent);
      } catch (const std::exception& e) {
        spdlog::error("pairing: {}", e.what());
        return fail({"INTERNAL", std::string("cannot save the entity store: ") + e.what()});
      }
    }
    audit::Record r;
    r.set_kind(audit::PAIRING);
    r.set_principal(sender.str());
    r.set_outcome(approve ? "approved" : "denied");
    r.set_detail(approve ? "added to " + parent.str() + " by " + by : "denied by " + by);
    safeguards_.audit.appendOrLog(std::move(r), true);
    gateway::PairingDecision d;
    d.set_code(request->code);
    d.set_principal(sender.str());
    if (approve) d.set_parent(parent.str());
    d.set_decision(approve ? "approved" : "denied");
    return gateway::frames::toStruct(d);
  }
  if (method == "policy.reload") return gateway::frames::toStruct(reloadPolicy(by));
  return std::nullopt;
}

bool ControlMethods::callLater(const std::string& method, const google::protobuf::Struct& params,
                               gateway::AgentService::ControlReply reply) {
  if (method == "memory.search" && memorySearch_) {
    auto p = gateway::frames::paramsAs<gateway::MemorySearchParams>(params, method);
    if (auto* e = std::get_if<gateway::UserError>(&p)) {
      reply(*e);
    } else {
      searchMemory(std::get<gateway::MemorySearchParams>(p), std::move(reply));
    }
    return true;
  }
  if (method != "workspace.rollback") return false;
  auto p = gateway::frames::paramsAs<gateway::RollbackParams>(params, method);
  if (auto* e = std::get_if<gateway::UserError>(&p)) {
    reply(*e);
  } else {
    rollback(std::get<gateway::RollbackParams>(p), std::move(reply));
  }
  return true;
}

void ControlMethods::searchMemory(const gateway::MemorySearchParams& params,
                                  gateway::AgentService::ControlReply reply) {
  const std::string& query = params.query();
  if (query.find_first_not_of(" \t\r\n") == std::string::npos)
    return reply(gateway::UserError{"INVALID_REQUEST", "query: expected words to search for"});
  if (query.size() > MAX_MEMORY_QUERY_BYTES ||
      !isValidUtf8(kj::ArrayPtr<const char>(query.data(), query.size())))
    return reply(gateway::UserError{"INVALID_REQUEST", "query: expected at most 4 KiB of UTF-8"});
  uint32_t most = params.max_results() == 0 ? 10 : params.max_results();
  if (most > rpc::MAX_MEMORY_HITS)
    return reply(gateway::UserError{"INVALID_REQUEST", "maxResults: expected 1 to 50"});
  auto shared = std::make_shared<gateway::AgentService::ControlReply>(std::move(reply));
  tasks_.add(memorySearch_(query, most)
                 .then(
                     [shared](ToolOutcome outcome) {
                       if (outcome.status != ToolOutcome::Status::OK) {
                         (*shared)(gateway::UserError{"UNAVAILABLE", outcome.content});
                         return;
                       }
                       gateway::MemorySearchResult result;
                       result.set_answer_json(outcome.content);
                       (*shared)(gateway::frames::toStruct(result));
                     },
                     [shared](kj::Exception&& e) {
                       (*shared)(gateway::UserError{"INTERNAL", e.getDescription().cStr()});
                     }));
}

void ControlMethods::rollback(const gateway::RollbackParams& params,
                              gateway::AgentService::ControlReply reply) {
  if (params.seq() == 0 && !params.last())
    return reply(gateway::UserError{"INVALID_REQUEST", "give seq (an audit record) or last: true"});
  if (guard_.mutatingInProgress() > 0)
    return reply(gateway::UserError{"UNAVAILABLE",
                                    "a tool call is changing the workspace right now; roll back "
                                    "when it has finished"});
  audit::Record target;
  try {
    target = audit::findSnapshotRecord(
        auditDir_, params.seq() == 0 ? std::nullopt : std::optional<uint64_t>(params.seq()),
        params.session_key());
  } catch (const std::invalid_argument& e) {
    return reply(gateway::UserError{"NOT_FOUND", e.what()});
  } catch (const std::exception& e) {
    return reply(gateway::UserError{"INTERNAL", e.what()});
  }
  // On the snapshot thread, after any snapshot already queued: the loop serves everyone else
  // meanwhile. The state being replaced is snapshotted first: a rollback can itself be undone.
  auto shared = std::make_shared<gateway::AgentService::ControlReply>(std::move(reply));
  tasks_.add(
      safeguards_.snapshots
          .restoreAsync(target.snapshot(),
                        "before rollback to record " + std::to_string(target.seq()))
          .then([this, target,
                 shared](audit::Restored restored) { (*shared)(rolledBack(target, restored)); },
                [target, shared](kj::Exception&& e) {
                  spdlog::error("rollback to {}: {}", target.snapshot(), e.getDescription().cStr());
                  (*shared)(gateway::UserError{"INTERNAL", std::string("the rollback failed: ") +
                                                               e.getDescription().cStr()});
                }));
}

gateway::Result<google::protobuf::Struct> ControlMethods::rolledBack(
    const audit::Record& target, const audit::Restored& restored) {
  if (restored.pruned) return gateway::UserError{"NOT_FOUND", restored.problem};
  audit::Record r;
  r.set_kind(audit::ROLLBACK);
  r.set_principal(localOperator().str());
  r.set_session(target.session());
  r.set_snapshot(target.snapshot());
  r.set_outcome(restored.notRestored.empty() ? "restored" : "partly restored");
  r.set_detail("workspace restored to its state before record " + std::to_string(target.seq()) +
               " (" + target.tool() + " " + target.call_id() +
               "); the state it replaced is snapshot " + restored.before +
               (restored.notRestored.empty() ? "" : "; `skipped` lists what was left as it was"));
  audit::addFiles(r, restored.files);
  audit::addSkipped(r, restored.notRestored, false);
  gateway::RollbackResult result;
  for (auto& c : restored.files) {
    auto* g = result.add_files();
    g->set_path(audit::printablePath(c.path));
    g->set_before(c.before);
    g->set_after(c.after);
  }
  for (auto& s : restored.notRestored) {
    auto* n = result.add_not_restored();
    n->set_path(audit::printablePath(s.path));
    n->set_reason(audit::printablePath(s.reason));
  }
  uint64_t seq = safeguards_.audit.appendOrLog(r, true);
  result.set_to_seq(target.seq());
  result.set_snapshot(target.snapshot());
  result.set_before_snapshot(restored.before);
  result.set_audit_seq(seq);
  return gateway::frames::toStruct(result);
}

}  // namespace chitin
