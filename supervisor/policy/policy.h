// SPDX-License-Identifier: Apache-2.0
// chitin's Cedar policy engine: policy sets, authorization, and the three-outcome decision
// (allow / ask / deny) the supervisor applies to every tool call.
// Runs in: supervisor
//
// The supported language is docs/cedar-subset.md; the request model (principals, actions,
// resources, context) is docs/policy-model.md. Default deny; a satisfied forbid wins; order
// does not matter. The engine has no built-in allowances.

#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "cedar-ast.h"
#include "cedar-eval.h"
#include "cedar-parser.h"
#include "cedar-value.h"
#include "entities.h"
#include "policy-model.h"

namespace chitin::policy {

class PolicySet {
 public:
  // Parses and validates one file's text. Returns the errors (empty = ok); only a file without
  // errors adds its policies. A duplicate @id is an error at the second policy.
  std::vector<ParseError> addFile(const std::string& text, const std::string& fileName);
  // Reads every *.cedar in each dir (sorted by name, not recursive). A missing dir is fine; an
  // unreadable file or a dir that is not a directory is an error (line 0).
  static std::variant<PolicySet, std::vector<ParseError>> loadDirs(
      const std::vector<std::string>& dirs);

  size_t size() const { return policies_.size(); }
  size_t fileCount() const { return files_; }
  const std::vector<std::shared_ptr<const Policy>>& policies() const { return policies_; }
  const Policy* find(const std::string& id) const;
  // Indices (in order) of the policies whose action scope can match `action`.
  const std::vector<uint32_t>& candidates(const EntityUid& action) const;

 private:
  std::vector<std::shared_ptr<const Policy>> policies_;
  std::unordered_map<std::string, size_t> ids_;
  // Policies scoped `action == A` are only looked at for A; the rest (any action, `in`, which
  // depends on the entity store) for every request.
  std::unordered_map<EntityUid, std::vector<uint32_t>, EntityUidHash> byAction_;
  std::vector<uint32_t> general_;
  size_t files_ = 0;
  void reindex();
};

// Reads one policy file for addFile: at most one byte more than MAX_POLICY_FILE_BYTES, so a
// huge file costs no memory before addFile refuses it. Returns the error (line 0) or nullopt.
std::optional<ParseError> readPolicyFile(const std::string& path, std::string* text);

struct PolicyTrace {
  std::string id;
  bool permit;
  bool scopeMatched;
  enum class Cond { NOT_EVALUATED, TRUE, FALSE, ERROR } condition;
  std::string error;
  std::string location;  // file:line
};

struct Decision {
  bool allow = false;
  // The policies that decided: the satisfied forbids if any, else the satisfied permits.
  std::vector<std::string> determining;
  std::vector<std::string> errors;  // "policyId: message"
  std::vector<PolicyTrace> trace;   // every policy, only when asked
};

Decision isAuthorized(const PolicySet& policies, const Entities& entities, const Request& request,
                      bool withTrace = false);

enum class Outcome { ALLOW, ASK, DENY };
const char* outcomeName(Outcome outcome);  // "allow" "ask" "deny"

struct Verdict {
  Outcome outcome = Outcome::DENY;
  std::vector<std::string> policies;  // the determining ids of the decisive evaluation
  std::vector<std::string> errors;    // from both evaluations, without repeats
  // ASK only: the forbids that denied the unconfirmed call, i.e. what holds it until the owner
  // confirms (empty when the only permits need context.confirmed).
  std::vector<std::string> heldBy;
};

// Two evaluations: with context.confirmed = false, allow => ALLOW; else with
// context.confirmed = true, allow => ASK; else DENY (policies: the forbids that denied, if any).
// request.context must be a Record (otherwise DENY with an error); decide() sets "confirmed".
Verdict decide(const PolicySet& policies, const Entities& entities, const Request& request);

// decide() plus both evaluations' traces, for `chitin policy explain`.
struct Explanation {
  Verdict verdict;
  Decision unconfirmed, confirmed;
};
Explanation explain(const PolicySet& policies, const Entities& entities, const Request& request);

}  // namespace chitin::policy
