// SPDX-License-Identifier: Apache-2.0
// Parser and validator for chitin's Cedar subset (docs/cedar-subset.md).
// Runs in: supervisor
//
// Reads policy text written by the operator (trusted, but typo-prone): every error carries
// file:line:column and names what was expected, and parsing resumes after the next `;` so one
// run reports every broken policy.

#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cedar-ast.h"

namespace chitin::policy {

struct ParseError {
  std::string file;
  int line = 0, column = 0;
  std::string message;
  std::string str() const;  // "file:line:col: message"
};

// Parses one file's policies into `out`. Ids come from @id("...") or are "<basename>:<line>".
// Also validates entity types and action ids against policy-model.h. Returns the errors.
std::vector<ParseError> parsePolicies(const std::string& text, const std::string& fileName,
                                      std::vector<std::shared_ptr<const Policy>>& out);

// Parses a whole string as one entity literal, `Type::"id"` (namespaced types allowed). No
// validation against the known types. On failure returns nullopt and sets *error to a message
// saying what was expected.
std::optional<EntityUid> parseEntityUid(const std::string& text, std::string* error);

}  // namespace chitin::policy
