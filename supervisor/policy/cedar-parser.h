// SPDX-License-Identifier: Apache-2.0
// Parser and validator for chitin's Cedar subset (docs/cedar-subset.md).
// Runs in: supervisor
//
// Reads policy text written by the operator (trusted, but typo-prone, and sometimes generated):
// every error carries file:line:column and names what was expected, and parsing resumes after
// the next `;` so one run reports every broken policy. The limits below keep any text, however
// crafted, from recursing deeply or stalling here or in the evaluator.

#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cedar-ast.h"

namespace chitin::policy {

// A policy file larger than this is refused whole (line 0). Ten times the largest generated
// allowlist seen in use (96 KB).
constexpr size_t MAX_POLICY_FILE_BYTES = 1 << 20;
// How deep one expression may nest: every parenthesis, set, record, if-then-else, operator,
// attribute access and attribute of a `has` path is a level; a chain of `&&`, `||` or `+ - *`
// is one level however long. Real policies use fewer than 15; the reference Cedar (cedar-wasm
// 4.13) itself fails past about 150 parentheses.
constexpr int MAX_EXPR_DEPTH = 100;

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
