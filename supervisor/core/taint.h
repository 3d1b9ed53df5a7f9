// SPDX-License-Identifier: Apache-2.0
// What counts as untrusted content in a workspace, decided by what a file is rather than how its
// path is spelled, and the record of the files untrusted content has written.
// Runs in: supervisor
//
// A session is tainted while content from outside (a downloaded file, a stranger's message,
// anything derived from them) is in what the model sees; the policy then makes writes, commands
// and sends ask (policies/default.cedar, `tainted-asks`). Content is untrusted when
//   - it lies in an untrusted directory (`downloads/`, `inbox/`: config policy.untrusted_paths),
//     judged by the real path the file resolves to beneath the workspace (a symlink into
//     `downloads/` is `downloads/`);
//   - it is a regular file with more than one hard link: its other names could be anywhere,
//     `downloads/` included, and nothing cheap can tell where;
//   - it was written by a call that ran while untrusted content was in (or visible to) its
//     session's context: such files are recorded in `UntrustedFiles` until a trusted write
//     replaces them or they are deleted.
// Owns: those rules and the record. Calls nothing but the filesystem.

#pragma once

#include <sys/stat.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace chitin {

// Files (or whole directories) outside the untrusted directories that hold untrusted content.
// Persisted as JSON in $CHITIN_HOME/state/untrusted/<agent>.json (written whole, atomically).
// Bounded: past MAX_ENTRIES, entries collapse into their top-level directory, so the record
// never grows without bound and never forgets (it can only over-approximate).
class UntrustedFiles {
 public:
  static constexpr size_t MAX_ENTRIES = 10000;

  // Loads `path` if it exists. A file that cannot be read or parsed makes the whole workspace
  // count as untrusted (fail closed), and says so in `error()` and the log; removing the file
  // (the owner's decision) starts an empty record.
  explicit UntrustedFiles(std::string path);
  ~UntrustedFiles();  // flushes

  // `relPath` (clean, workspace-relative; "" = the whole workspace) now holds untrusted content
  // that came from `source`. In memory until flush().
  void mark(const std::string& relPath, const std::string& source);
  // `relPath` no longer holds what was recorded (deleted, or replaced by a trusted write).
  void clear(const std::string& relPath);
  // Writes the record if it changed (whole, atomically). A failure is logged; the record in
  // memory stays as it is (it only ever over-approximates until the next successful write).
  void flush();

  // The recorded source if `relPath` is marked or lies beneath a marked directory, else "".
  std::string sourceOf(const std::string& relPath) const;

  // The first marked entry that still exists beneath `workspaceDir` (entries that are gone are
  // forgotten on the way), or nullopt: a command started now could read it.
  std::optional<std::pair<std::string, std::string>> anyPresent(const std::string& workspaceDir);

  size_t size() const { return entries_.size(); }
  const std::string& error() const { return error_; }

 private:
  void save();
  void collapse();

  std::string path_;
  std::map<std::string, std::string> entries_;  // path -> source
  std::string error_;
  bool dirty_ = false;
};

// openat2(dirFd, path, flags) following symlinks only beneath dirFd (RESOLVE_BENEATH, no magic
// links): a descriptor, or -1 with errno set.
long openBeneath(int dirFd, const char* path, uint64_t flags);

// What `relPath` resolves to beneath `workspaceDir` right now, following symlinks only beneath
// it (openat2 RESOLVE_BENEATH, no magic links): the real workspace-relative path and its stat.
struct Resolved {
  int error = 0;  // errno, or 0
  std::string realPath;
  struct stat st {};
};
Resolved resolveBeneath(const std::string& workspaceDir, const std::string& relPath);

// Why reading `relPath` brings untrusted content into the model's context, or "" if it does not
// (or if it cannot be resolved: then the read fails too). `relPath` is clean and
// workspace-relative; symlinks are followed beneath the workspace only, as the file workers do.
std::string untrustedSourceOfFile(const std::string& workspaceDir, const std::string& relPath,
                                  const std::vector<std::string>& untrustedDirs,
                                  const UntrustedFiles& files);

// Why a workspace file injected into every prompt (AGENTS.md, ...) must be treated as untrusted,
// or "": `st` is the stat of the very descriptor its content was read from (such files are
// opened without following symlinks: a link is never injected at all).
std::string untrustedSourceOfPromptFile(const std::string& name, const struct stat& st,
                                        const UntrustedFiles& files);

// Is `relPath` (a real, workspace-relative path) inside one of `untrustedDirs` ("downloads/")?
bool inUntrustedDir(const std::string& relPath, const std::vector<std::string>& untrustedDirs);

}  // namespace chitin
