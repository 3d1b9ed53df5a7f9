// SPDX-License-Identifier: Apache-2.0
// Pending confirmations (see approvals.h).
// Runs in: supervisor

#include "approvals.h"

#include <sodium.h>

#include <algorithm>

#include "pairing.h"

namespace chitin {

namespace {

constexpr size_t CODE_LENGTH = 6;

std::string randomHex(size_t bytes) {
  std::vector<unsigned char> raw(bytes);
  randombytes_buf(raw.data(), raw.size());
  std::string hex(bytes * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), raw.data(), raw.size());
  hex.pop_back();
  return hex;
}

}  // namespace

// Owned by the waiting promise: when the caller drops it (the run was aborted), the request is
// withdrawn so nobody can approve a call that no longer waits.
class ApprovalBook::Withdrawal {
 public:
  Withdrawal(ApprovalBook& book, std::string id) : book_(book), id_(std::move(id)) {}
  ~Withdrawal() noexcept {
    auto it = book_.pending_.find(id_);
    if (it == book_.pending_.end()) return;
    gateway::ApprovalResolved resolved;
    resolved.set_id(id_);
    resolved.set_decision("cancelled");
    resolved.set_by("run ended");
    resolved.set_session_key(it->second.info.session_key());
    resolved.set_tool(it->second.info.tool());
    book_.pending_.erase(it);
    book_.onResolved_(resolved);
  }

 private:
  ApprovalBook& book_;
  std::string id_;
};

ApprovalBook::ApprovalBook(kj::Timer& timer, uint32_t timeoutSeconds, RequestedHook onRequested,
                           ResolvedHook onResolved)
    : timer_(timer),
      timeoutSeconds_(timeoutSeconds),
      onRequested_(std::move(onRequested)),
      onResolved_(std::move(onResolved)) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
}

ApprovalBook::~ApprovalBook() {
  // Outstanding waiters belong to runs that are being torn down with us.
  pending_.clear();
}

kj::Promise<ApprovalOutcome> ApprovalBook::request(ApprovalRequest r) {
  std::string id = randomHex(8);
  std::string code;
  do {
    code = randomCode(CODE_LENGTH);
  } while (hasCode(code));

  gateway::ApprovalInfo info;
  info.set_id(id);
  info.set_code(code);
  info.set_session_key(r.sessionKey);
  info.set_run_id(r.runId);
  info.set_principal(r.principal);
  info.set_tool(r.tool);
  info.set_arguments_json(r.argumentsJson);
  // Never shortened silently: a cut line says how much is missing and where the whole call is.
  info.set_description(r.description.lineWithHint("chitin approvals show " + id));
  info.set_description_omitted_bytes(r.description.omittedBytes);
  info.set_full_call(r.description.full);
  info.set_fingerprint(r.fingerprint);
  int64_t now = unixNow();
  info.set_requested_at(rfc3339(now));
  info.set_expires_at(rfc3339(now + timeoutSeconds_));
  for (auto& p : r.policies) info.add_policies(p);

  auto paf = kj::newPromiseAndFulfiller<ApprovalOutcome>();
  pending_[id] = Pending{info, kj::mv(paf.fulfiller)};
  onRequested_(announced(info));

  auto timeout = timer_.afterDelay(timeoutSeconds_ * kj::SECONDS).then([this, id]() {
    ApprovalOutcome outcome{ApprovalOutcome::Answer::EXPIRED, id, "timeout"};
    finish(id, outcome, "expired");
    return outcome;
  });
  return paf.promise.exclusiveJoin(kj::mv(timeout)).attach(kj::heap<Withdrawal>(*this, id));
}

void ApprovalBook::finish(const std::string& id, ApprovalOutcome outcome, const char* decision) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  gateway::ApprovalResolved resolved;
  resolved.set_id(id);
  resolved.set_decision(decision);
  resolved.set_by(outcome.by);
  resolved.set_session_key(it->second.info.session_key());
  resolved.set_tool(it->second.info.tool());
  auto fulfiller = kj::mv(it->second.fulfiller);
  pending_.erase(it);  // single use: nothing can answer it again
  onResolved_(resolved);
  fulfiller->fulfill(kj::mv(outcome));
}

std::vector<gateway::ApprovalInfo> ApprovalBook::list() const {
  std::vector<gateway::ApprovalInfo> out;
  for (auto& [id, p] : pending_) out.push_back(announced(p.info));
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.requested_at() < b.requested_at(); });
  return out;
}

std::optional<gateway::ApprovalInfo> ApprovalBook::get(const std::string& idOrCode) const {
  std::string code = upperCase(idOrCode);
  for (auto& [id, p] : pending_) {
    if (id == idOrCode || p.info.code() == code) return p.info;
  }
  return std::nullopt;
}

gateway::ApprovalInfo ApprovalBook::announced(const gateway::ApprovalInfo& whole) {
  if (whole.full_call().size() <= MAX_ANNOUNCED_CALL_BYTES &&
      whole.arguments_json().size() <= MAX_ANNOUNCED_CALL_BYTES)
    return whole;
  gateway::ApprovalInfo out = whole;
  out.clear_full_call();
  out.clear_arguments_json();
  out.set_full_call_left_out(true);
  return out;
}

bool ApprovalBook::hasCode(const std::string& code) const {
  std::string wanted = upperCase(code);
  return std::any_of(pending_.begin(), pending_.end(),
                     [&](const auto& entry) { return entry.second.info.code() == wanted; });
}

gateway::Result<gateway::ApprovalResolved> ApprovalBook::resolve(const std::string& idOrCode,
                                                                 bool approve,
                                                                 const std::string& by) {
  std::string wanted = upperCase(idOrCode);
  auto it = std::find_if(pending_.begin(), pending_.end(), [&](const auto& entry) {
    return entry.first == idOrCode || entry.second.info.code() == wanted;
  });
  if (it == pending_.end()) {
    return gateway::UserError{"NOT_FOUND", "no pending approval with id or code \"" +
                                               idOrCode.substr(0, 64) +
                                               "\" (it may have been answered or expired)"};
  }
  gateway::ApprovalResolved resolved;
  resolved.set_id(it->first);
  resolved.set_decision(approve ? "approved" : "denied");
  resolved.set_by(by);
  resolved.set_session_key(it->second.info.session_key());
  resolved.set_tool(it->second.info.tool());
  std::string id = it->first;
  finish(id,
         ApprovalOutcome{
             approve ? ApprovalOutcome::Answer::APPROVED : ApprovalOutcome::Answer::DENIED, id, by},
         approve ? "approved" : "denied");
  return resolved;
}

}  // namespace chitin
