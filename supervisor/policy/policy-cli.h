// SPDX-License-Identifier: Apache-2.0
// `chitin policy check|explain|test`: validate policies, explain one decision, run expected-
// decision files. Library functions; the supervisor binary wires them to its command line.
// Runs in: supervisor (as a command-line tool; reads only the files it is given)

#pragma once

#include <iosfwd>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "policy.h"

namespace chitin::policy {

struct PolicyCliEnv {
  std::vector<std::string> policyDirs;  // the shipped policies, then $CHITIN_HOME/policies
  std::string entitiesFile;             // $CHITIN_HOME/entities.json (missing: defaults)
};

// `args` excludes the word "policy". Exit codes: 0 ok, 1 test mismatches, 2 bad input or
// policy errors. Output goes to `out`, diagnostics to `err`.
int policyCommand(const std::vector<std::string>& args, const PolicyCliEnv& env, std::ostream& out,
                  std::ostream& err);

// Reads an entities file; a missing file gives defaultEntities() when missingIsDefault.
// Returns the error message on failure.
std::variant<Entities, std::string> loadEntitiesFile(const std::string& path,
                                                     bool missingIsDefault);

// `chat` or `Action::"chat"` -> Action::"chat"; the id must be a known action.
std::optional<EntityUid> parseActionArg(const std::string& text, std::string* error);

}  // namespace chitin::policy
