// SPDX-License-Identifier: Apache-2.0
// Which workspace files are memory: `MEMORY.md` (curated) and the files beneath `memory/` (daily
// notes, `memory/YYYY-MM-DD.md`). memory_get reads only these; memory_search indexes the
// Markdown ones.
// Runs in: supervisor (checks memory_get before the policy is asked) and the memory worker
// (checks again before it opens anything) -- pure functions, no system calls.

#pragma once

#include <string>

namespace chitin {

constexpr const char MEMORY_FILE[] = "MEMORY.md";
constexpr const char MEMORY_DIR[] = "memory";

// `clean` is a clean workspace-relative path (checkWorkspacePath). "" when it is a memory file,
// else why not, naming the path, for the model.
inline std::string memoryPathProblem(const std::string& clean) {
  if (clean == MEMORY_FILE) return "";
  std::string prefix = std::string(MEMORY_DIR) + "/";
  if (clean.size() > prefix.size() && clean.compare(0, prefix.size(), prefix) == 0) return "";
  return "memory_get reads only MEMORY.md or a file beneath memory/, not \"" + clean +
         "\" (use read for other workspace files)";
}

// Is `clean` a file memory_search indexes (MEMORY.md, or a *.md beneath memory/)?
inline bool isIndexedMemoryFile(const std::string& clean) {
  if (!memoryPathProblem(clean).empty()) return false;
  return clean.size() > 3 && clean.compare(clean.size() - 3, 3, ".md") == 0;
}

}  // namespace chitin
