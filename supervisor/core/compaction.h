// SPDX-License-Identifier: Apache-2.0
// Compaction: keeping a long conversation inside the model's context window without losing it.
// Runs in: supervisor
//
// The transcript is never rewritten. Compacting appends one entry, role "compaction", holding a
// summary the model wrote of the older part of what it saw, and `kept`: how many entries just
// before it stay as they are. From then on the model sees that summary, then the kept entries,
// then everything after (`compactedView`). The entry is one fdatasync'd line, so a crash at any
// moment leaves either the old view or the new one, and every original line stays on disk.
//
// Trust: the summary is model output. It inherits the taint of what it summarizes (a summary
// of a stranger's message is still the stranger's words), so compaction never launders
// untrusted content into trusted context. It goes to the model as a user-role message marked as
// a summary, never into the system prompt.
//
// The orchestration (the memory-flush turn, the summary call) is AgentCore's, in agent-turn.c++;
// what is here is pure and unit-tested.

#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.pb.h"
#include "transcript.h"

namespace chitin {

struct CompactionSettings {
  uint32_t contextWindowTokens = 128000;  // what the model accepts in one request
  uint32_t reserveTokens = 16384;         // kept free for the reply and the turn's tool results
  uint32_t keepRecentTokens = 20000;      // the newest turns stay verbatim up to this much
  bool memoryFlush = true;                // a silent turn to write memory/ notes first
  std::string memoryFlushPrompt;          // "" = memoryFlushPrompt()
  std::string instructions;               // added to every summary request (agent.compaction)

  // Compaction is due once a request would be estimated above this.
  size_t threshold() const { return contextWindowTokens - reserveTokens; }
};

// agent.compaction as the core uses it (defaults are filled in by the config loader).
CompactionSettings compactionSettingsFrom(const config::Compaction& c);

// "" if the settings can work, else why not (naming agent.compaction's fields).
std::string checkCompactionSettings(const CompactionSettings& settings);

// Tokens, estimated without the provider's tokenizer: one per three bytes of UTF-8, rounded up.
// BPE tokenizers give about four bytes per token of English prose and code and fewer for other
// scripts; erring high compacts a little early, erring low sends a request the provider refuses.
size_t estimateTokens(std::string_view text);
size_t estimateTokens(const TranscriptEntry& entry);
size_t estimateTokens(const std::vector<TranscriptEntry>& entries);

// What the model sees of a transcript: after the last compaction entry, that entry, the `kept`
// entries before it (skipping older compaction entries) and everything after it. Memory-flush
// turns are left out (and not counted in `kept`). Without a compaction entry, the rest as it is.
std::vector<TranscriptEntry> compactedView(std::vector<TranscriptEntry> entries);

// How to compact a view (as compactedView returns it): summarize its first `summarized` entries
// (an earlier summary at its start included) and keep the rest. The kept part starts at a user
// message, so a tool call and its result are never split, and is the longest such tail within
// `keepTokens`; when even the newest turn is bigger, nothing is kept. nullopt if there is
// nothing to summarize (an empty view, or only an earlier summary before the cut).
struct CompactionPlan {
  size_t summarized = 0;
  size_t kept = 0;
  size_t summarizedTokens = 0;
  size_t keptTokens = 0;
};
std::optional<CompactionPlan> planCompaction(const std::vector<TranscriptEntry>& view,
                                             size_t keepTokens);

// True if a memory-flush turn was run since the last compaction entry: flush once per cycle,
// even when the summary call then fails.
bool memoryFlushedSinceCompaction(const std::vector<TranscriptEntry>& entries);

// The part to summarize as plain text for the summary request: one block per entry, each tool
// result and argument list cut (the cut said), the whole at most `maxBytes` (the oldest entries
// after an earlier summary give way first, and that is said too).
std::string renderForSummary(const std::vector<TranscriptEntry>& part, size_t maxBytes);

// The summary request's system prompt and its one user message.
std::string summarySystemPrompt();
std::string summaryRequestText(const std::string& rendered, const std::string& instructions);

// The built-in prompt of the memory-flush turn, naming today's daily note (`date` YYYY-MM-DD).
std::string memoryFlushPrompt(const std::string& date);

// How a compaction entry reaches the model: a user-role message that says what it is.
std::string compactionMessageText(const TranscriptEntry& entry);

// A summary longer than this is cut: it must leave room in the window for what it replaces.
constexpr size_t MAX_COMPACTION_SUMMARY_BYTES = 32 << 10;

}  // namespace chitin
