// SPDX-License-Identifier: Apache-2.0
// Installing a skill into $CHITIN_HOME/skills/<name>/: checking the folder it comes from, and
// copying it in atomically, audited and snapshotted.
// Runs in: the `chitin skills install` command (the invoking user, normally the service user)
//
// Only a plain directory is accepted. A tarball is refused with the tar command that unpacks it:
// parsing archive formats (libarchive: tar, cpio, zip, xar, 7z, compressors) in a process that
// writes $CHITIN_HOME would add a large decoder for a step `tar` does as well, and the checks
// below then run on what was really unpacked, the same way for every source.
//
// Refused, before anything is written: symlinks (at any depth, the folder itself included),
// device files, fifos and sockets, more than MAX_FILES entries, a file over MAX_FILE_BYTES or a
// total over MAX_TOTAL_BYTES, nesting deeper than MAX_DEPTH, a name with control characters, and
// a SKILL.md whose front matter does not parse (skills.h). Names come from readdir one level at
// a time, so no absolute or `..` path can arise; files are opened with O_NOFOLLOW below the
// folder's descriptor, and each is checked again while copied (a file that changed type or size
// since it was shown is refused), so nothing outside the folder is read.
//
// The copy goes to $CHITIN_HOME/skills/.install-<name>-<pid>/ (files 0644, or 0755 when the
// source was executable; never setuid), is fsynced, and is renamed to <name> with
// RENAME_NOREPLACE: an existing skill is never overwritten (remove it first). Before the rename
// the state of $CHITIN_HOME/skills is snapshotted (state/snapshots/skills.git) and a SKILL_INSTALL
// record naming that snapshot is synced to the audit log; if the audit log cannot be opened (the
// gateway holds it while it runs) or written, nothing is installed.

#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "skills.h"

namespace chitin::skills {

constexpr size_t MAX_FILES = 256;
constexpr uint64_t MAX_FILE_BYTES = 1 << 20;   // 1 MiB
constexpr uint64_t MAX_TOTAL_BYTES = 8 << 20;  // 8 MiB
constexpr int MAX_DEPTH = 8;

struct PlannedFile {
  std::string path;  // relative to the skill folder, '/'-separated
  bool dir = false;
  uint64_t size = 0;
  bool executable = false;
};

struct InstallPlan {
  std::string source;  // the folder given
  FrontMatter meta;
  std::string frontMatter;  // the YAML text, as shown to the person
  std::vector<PlannedFile> files;
  uint64_t totalBytes = 0;
};

// Checks `source` (see the top of this file). nullopt and `error` (naming the path at fault and
// what was expected) on any refusal.
std::optional<InstallPlan> planInstall(const std::string& source, std::string& error);

// What the person is shown before being asked.
void printPlan(const InstallPlan& plan, const std::string& destination, std::ostream& out);

struct InstallResult {
  std::string destination;  // $CHITIN_HOME/skills/<name>
  uint64_t auditSeq = 0;    // the SKILL_INSTALL record
  std::string snapshotBefore, snapshotAfter;
};

// Copies the planned files into `chitinHome`/skills/<name> (see the top of this file).
// `principal` is who installs, as the audit log names people. Throws std::runtime_error naming
// the path and the cause; then nothing is installed (a staging folder is removed).
InstallResult install(const InstallPlan& plan, const std::string& chitinHome,
                      const std::string& principal);

}  // namespace chitin::skills
