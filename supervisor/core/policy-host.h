// SPDX-License-Identifier: Apache-2.0
// The policy in force: the Cedar policy set and the entity store, loaded from files, reloaded
// atomically, and asked for every chat message and every tool call.
// Runs in: supervisor
//
// Policies come from the shipped policies/ directory (unless the config leaves it out) and
// $CHITIN_HOME/policies/; who is who comes from $CHITIN_HOME/entities.json. A reload parses
// everything first and swaps only if all of it is valid: a bad file keeps the old policy and
// the reason is returned (and logged, and audited). Nothing a worker can reach is read here.

#pragma once

#include <memory>
#include <string>
#include <vector>

#include "policy-model.h"
#include "policy.h"

namespace chitin {

struct PolicyHostSettings {
  std::vector<std::string> policyDirs;
  std::string entitiesPath;
  std::string agentId = "main";
};

class PolicyHost {
 public:
  // Loads everything; writes the built-in entities file when it is missing. Throws
  // std::runtime_error with every file:line:column problem when the policy cannot be loaded
  // (the gateway then refuses to start: no policy, no effects).
  explicit PolicyHost(PolicyHostSettings settings);

  // Re-reads policies and entities. Returns "" on success, else why nothing changed.
  std::string reload();

  size_t policyCount() const { return policies_->size(); }
  const std::vector<std::string>& policyDirs() const { return settings_.policyDirs; }

  // An entity that exists for one request only (the File a tool call touches).
  struct ExtraEntity {
    policy::EntityUid uid;
    policy::Value::Record attrs;
    std::vector<policy::EntityUid> parents;
  };

  // One decision (allow / ask / deny) with the policies that made it.
  policy::Verdict decide(const policy::Request& request,
                         const std::vector<ExtraEntity>& extra = {});

  // Is `who` a member (transitively) of `group`?
  bool memberOf(const policy::EntityUid& who, const policy::EntityUid& group) const;
  // Is `who` in the entity store at all (a known sender)?
  bool known(const policy::EntityUid& who) const;
  // `who`'s parents in the entity store (none when it is not there).
  std::vector<policy::EntityUid> parentsOf(const policy::EntityUid& who) const;

  // Adds (or re-parents) a sender and saves the entity store atomically. Throws on I/O errors.
  void addSender(const policy::EntityUid& sender, const policy::EntityUid& parent);

 private:
  PolicyHostSettings settings_;
  std::shared_ptr<const policy::PolicySet> policies_;
  policy::Entities entities_;
};

// The principal of the token-authenticated local operator (CLI, web chat).
policy::EntityUid localOperator();
policy::EntityUid ownersGroup();

}  // namespace chitin
