// SPDX-License-Identifier: Apache-2.0
// The agent's bootstrap files: written from commented templates into a new workspace, and read
// back, within budgets, into every session's system prompt.
// Runs in: supervisor
//
// OpenClaw's names and roles, at the workspace root: AGENTS.md (how the agent works), SOUL.md
// (personality and limits), USER.md (who the owner is), IDENTITY.md (the agent's name and
// manner), TOOLS.md (notes on the owner's tools and conventions), MEMORY.md (curated long-term
// memory) and HEARTBEAT.md (kept for scheduled check-ins; not injected). The first five go into
// every session's prompt; MEMORY.md only into the owners' own private sessions (never a group
// chat, never another sender's session: what the owner asked the agent to remember is theirs).
//
// Trust: the files are the workspace's, which the agent itself writes. They are read beneath the
// workspace without following a symlink at the root (O_NOFOLLOW), and one the taint record says a
// tainted session wrote (or that has other hard links) taints the session it is injected into
// (taint.h). HTML comments (<!-- ... -->) are the owner's notes and are not sent to the model, so
// the templates can explain themselves without costing the prompt anything.

#pragma once

#include <sys/stat.h>

#include <functional>
#include <string>
#include <vector>

#include "file-stamp.h"

namespace chitin {

// The files a new workspace gets, in the order they are injected.
struct WorkspaceTemplate {
  const char* name;
  const char* text;
  bool injected;   // goes into the prompt (HEARTBEAT.md does not)
  bool ownerOnly;  // only into the owners' private sessions (MEMORY.md)
};
const std::vector<WorkspaceTemplate>& workspaceTemplates();

// Writes each template that does not exist yet, and the memory/ directory; never overwrites or
// follows a symlink (a name that exists as anything at all is left alone). Returns the names it
// created. Throws std::runtime_error naming the file when one cannot be written.
std::vector<std::string> bootstrapWorkspace(const std::string& workspaceDir);

// bootstrapWorkspace once per workspace: `marker` (a file in the supervisor's state) records
// that it ran, so a template the owner deleted on purpose is not written again at the next
// start. Returns what it created (nothing once the marker exists).
std::vector<std::string> bootstrapWorkspaceOnce(const std::string& workspaceDir,
                                                const std::string& marker);

struct PromptFileBudget {
  size_t perFile = 20000;  // characters of one file
  size_t total = 60000;    // characters of all files together
};

struct PromptFile {
  std::string name;
  std::string content;  // comments removed, cut to the budget (the cut said at its end)
  bool cut = false;
};

// The bootstrap files' texts (comments removed) by their stamps, so a file unchanged since the
// last turn costs one stat, not an open, a read and the comment stripping. Only a file whose
// last change had settled when it was read is remembered (file-stamp.h), and only one of at
// most MAX_TEXT_BYTES. The caller's: one thread at a time.
class PromptFileCache {
 public:
  static constexpr size_t MAX_TEXT_BYTES = 64 << 10;

  // The text of `name` if `st` still describes the file it was read from.
  const std::string* find(const std::string& name, const struct stat& st) {
    return texts_.find(name, st);
  }
  void put(const std::string& name, const struct stat& st, const std::string& text,
           int64_t readStartNanos);
  void forget(const std::string& name) { texts_.erase(name); }

 private:
  StampedValues<std::string> texts_;
};

// What goes into a session's prompt: the injected files that exist and are not empty (after
// comments are removed), MEMORY.md only when `ownerPrivate`. `untrustedSource(name, stat)`
// returns why a file is untrusted ("" if it is not); each such reason is appended to `tainted`.
// With a cache, unchanged files are not read again (the result is the same).
std::vector<PromptFile> loadPromptFiles(
    const std::string& workspaceDir, bool ownerPrivate, const PromptFileBudget& budget,
    const std::function<std::string(const std::string& name, const struct stat& st)>&
        untrustedSource,
    std::vector<std::string>& tainted, PromptFileCache* cache = nullptr);

// `text` without its <!-- ... --> comments (an unclosed one runs to the end), and with the blank
// lines they leave collapsed; leading and trailing blank lines removed.
std::string withoutComments(const std::string& text);

// At most `max` characters (code points) of valid UTF-8 `text`, cut at a line end when one is
// within the last fifth. Sets `cut`.
std::string cutToCharacters(const std::string& text, size_t max, bool& cut);

}  // namespace chitin
