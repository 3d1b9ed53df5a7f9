// SPDX-License-Identifier: Apache-2.0
// The memory tools' supervisor side: memory_search's hits are judged here, file by file, for
// untrusted content (taint.h), marked in what the model reads, and taint the session through
// the outcome's untrustedSource; memory_get runs as it is (the guard judges its one file like a
// read). The worker itself is run by the ToolRunner (profile `memory`).
// Runs in: supervisor
//
// The worker's answer is parsed as JSON of a known shape and nothing else is believed: a hit
// whose path is not a memory file is dropped, every text is cleaned and capped.

#pragma once

#include <functional>
#include <string>
#include <vector>

#include "taint.h"
#include "tool-runner.h"

namespace chitin {

// Why the content of workspace file `path` is untrusted, or "".
using UntrustedJudge = std::function<std::string(const std::string& path)>;

// What the model reads of a memory_search worker answer (`workerJson`), at most about
// `maxBytes`. `untrustedSource` is set when any hit came from an untrusted file. When the
// worker says its embeddings failed (it then ranked by keywords alone), `embeddingProblem`
// gets why, as one line of display text.
ToolOutcome memorySearchOutcome(const std::string& workerJson, const std::string& query,
                                const UntrustedJudge& judge, uint32_t maxBytes,
                                std::string* embeddingProblem = nullptr);

struct MemoryToolSettings {
  std::string workspaceDir;
  std::vector<std::string> untrustedPaths;  // config policy.untrusted_paths
  uint32_t maxOutputBytes = 65536;
};

class MemoryTool final : public ToolDecorator {
 public:
  MemoryTool(ToolExecutor& inner, UntrustedFiles& untrusted, MemoryToolSettings settings)
      : ToolDecorator(inner), untrusted_(untrusted), settings_(std::move(settings)) {}

  kj::Promise<ToolOutcome> run(const std::string& tool, const std::string& argumentsJson,
                               const std::string& workspaceDir,
                               const std::vector<std::string>& hiddenDirs,
                               CallScope* scope = nullptr) override;

 private:
  UntrustedFiles& untrusted_;
  MemoryToolSettings settings_;
};

}  // namespace chitin
