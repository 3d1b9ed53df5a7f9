// SPDX-License-Identifier: Apache-2.0
// How workspace names are spelled inside snapshot trees, and the manifest each snapshot carries.
// Runs in: supervisor
//
// Git trees cannot hold every name a workspace can: libgit2 refuses a component named `.git`
// (and, with its default NTFS protection, aliases of it such as `GIT~1`, `.git.` or
// `.git::$INDEX_ALLOCATION`), yet a workspace's own repositories must be in history like any
// other bytes. So every name is stored encoded:
//
//   encodeName(n): every '%' byte, every byte below 0x20 and 0x7f becomes "%XX" (two upper-case
//   hex digits); and if n, lower-cased with its non-ASCII bytes dropped, starts with ".git" or
//   "git~", its first byte becomes "%XX" too. All other bytes stay as they are.
//
// Injective: '%' never survives unescaped, so "%XX" -> byte inverts it exactly; decodeName()
// accepts only the canonical form (encodeName(decodeName(s)) == s), so two different stored
// names never decode to the same workspace name. No encoded name starts with ".git"/"git~" (its
// first byte would be '%'), and none is "", "." or "..", so libgit2 accepts every one.
//
// Reserved: the root entry MANIFEST ("%chitin": '%' not followed by two hex digits, which
// encodeName never produces) holds the manifest; no workspace name can collide with it.
// A snapshot without it is a format-1 snapshot (before this encoding): names literal, and no
// `.git` entry at any depth was recorded (restore leaves every `.git` alone for it).
//
// Manifest (a blob, text): line 1 "chitin-snapshot 2"; then "incomplete\t<why>" if the scan was
// stopped or its skip list cut off (restore then deletes nothing the snapshot does not list);
// then one "skipped\t<encoded path>\t<why>" per entry left out. Paths in the manifest are
// encoded component by component (so they hold no tab or newline); "." is the whole workspace.

#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chitin::audit {

// An entry that a snapshot, a comparison or a restore left out, and why.
struct Skipped {
  std::string path;  // workspace-relative, '/'-separated; "." = the whole workspace
  std::string reason;
};

namespace names {

inline constexpr char MANIFEST[] = "%chitin";

std::string encodeName(std::string_view name);
// nullopt: not an encoded name (not canonical, empty, ".", "..", or holds '/' or NUL).
std::optional<std::string> decodeName(std::string_view stored);

// '/'-joined paths, component by component. decodePath() refuses any bad component.
std::string encodePath(std::string_view path);
std::optional<std::string> decodePath(std::string_view stored);

struct Manifest {
  bool incomplete = false;
  std::string incompleteReason;
  std::vector<Skipped> skipped;
};
std::string writeManifest(const Manifest& m);
// nullopt: not a manifest this code wrote.
std::optional<Manifest> readManifest(std::string_view text);

}  // namespace names
}  // namespace chitin::audit
