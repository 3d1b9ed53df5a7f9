// SPDX-License-Identifier: Apache-2.0
// Skills (the AgentSkills format): folders holding a SKILL.md whose YAML front matter names the
// skill, says in one line what it is for, and may list requirements. This module finds them,
// checks them, decides which are usable, and renders the compact list the system prompt carries.
// Runs in: supervisor (and the `chitin skills` commands, as the invoking user)
//
// Trust: a skill is text the model reads plus files it may run through `exec`; nothing here
// runs a skill's code, and nothing a skill says can widen the policy. The supervisor only reads
// SKILL.md's front matter, bounded (size, nesting, no aliases) before libyaml sees it, every field
// type-checked. The workspace `skills/` is written by the agent itself, so it is read as hostile:
// symlinks, special files and oversized files are refused, a broken skill becomes a Problem and
// never an exception.
//
// Precedence (OpenClaw's): the workspace's `skills/` > `$CHITIN_HOME/skills/` (the owner's) >
// bundled (`share/chitin/skills`, or the repository's `skills/` in a build tree). A name found in
// a higher source hides the lower ones (reported as `shadowed`).
//
// Gating, against what the exec sandbox really offers (sandbox-profiles/exec.textproto):
// - requires.bins: a program name found executable under the sandbox's /usr (/usr/local/bin,
//   /usr/bin, /usr/sbin; /bin and /sbin are links into /usr there);
// - requires.env: the exec sandbox starts from an empty environment (PATH, HOME and LANG are all
//   chitin sets), so any other variable is unmet, and the reason says so;
// - os: must include "linux" when given.

#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "file-stamp.h"

namespace chitin::skills {

// Bounds checked before anything is parsed.
constexpr size_t MAX_SKILL_MD_BYTES = 64 * 1024;     // the whole SKILL.md
constexpr size_t MAX_FRONT_MATTER_BYTES = 8 * 1024;  // the YAML between the two `---` lines
constexpr int MAX_YAML_DEPTH = 6;                    // nested mappings/sequences
constexpr size_t MAX_YAML_NODES = 512;
constexpr size_t MAX_NAME_CHARS = 64;
constexpr size_t MAX_DESCRIPTION_CHARS = 1024;
constexpr size_t MAX_LIST_ITEMS = 32;  // entries of requires.bins / env / os
constexpr size_t MAX_SKILLS_PER_SOURCE = 256;

enum class Source { WORKSPACE, OWNER, BUNDLED };
const char* sourceName(Source s);  // "workspace", "owner", "bundled"

struct Requirements {
  std::vector<std::string> bins, env, os;
};

// What SKILL.md's front matter says, checked.
struct FrontMatter {
  std::string name, description;
  Requirements requires_;
};

// Parses the front matter of a SKILL.md's full text. Returns the error (naming the field and
// what was expected) in `error` and nullopt on any problem.
std::optional<FrontMatter> parseFrontMatter(const std::string& skillMd, std::string& error);

struct Skill {
  FrontMatter meta;
  Source source;
  std::string dir;                   // host path of the skill folder
  std::string skillMdPath;           // host path of its SKILL.md
  bool eligible = false;             // every requirement met
  std::vector<std::string> unmet;    // one sentence per unmet requirement
  std::optional<Source> shadowedBy;  // a higher source has a skill of the same name
};

struct Problem {
  std::string path;  // the folder or file at fault
  std::string what;
};

// One place skills come from, in precedence order (the first wins).
struct SkillDir {
  Source source;
  std::string path;  // a missing directory is simply empty
};

// What the exec sandbox offers, passed in so tests can describe another one.
struct SandboxView {
  std::string usrRoot = "/usr";               // the host directory bound at /usr inside
  std::map<std::string, std::string> env = {  // the environment commands get (exec-env.c++)
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
      {"HOME", "/home/sandbox"},
      {"LANG", "C.UTF-8"}};
  std::string os = "linux";
};

struct Catalog {
  std::vector<Skill> skills;  // every valid skill, winners first in name order, then shadowed
  std::vector<Problem> problems;
  // The usable skills (eligible and not shadowed), in name order.
  std::vector<const Skill*> usable() const;
  const Skill* find(const std::string& name) const;  // the winner of that name, or nullptr
};

// Each SKILL.md's parsed front matter (or why it was refused), remembered by the file's stamp
// (file-stamp.h). The catalog is read every turn, so that a skill installed or edited shows at
// the next one; with this only what changed is read and parsed again, the rest costs a stat. A
// file changed within RACY_NANOS of the load is not remembered (it could change again with the
// same stamp). Forgets files a load no longer sees.
class FrontMatterCache {
 public:
  struct Entry {
    std::optional<FrontMatter> frontMatter;
    std::string error;  // when frontMatter is empty
    uint64_t load = 0;  // the last load that saw it
  };

  // The entry for `path` if `st` still describes the file it was made from.
  const Entry* find(const std::string& path, const struct stat& st);
  void put(const std::string& path, const struct stat& st, std::optional<FrontMatter> frontMatter,
           std::string error);
  void beginLoad();
  void endLoad();  // drops what beginLoad's load did not see

 private:
  StampedValues<Entry> entries_;
  uint64_t load_ = 0;
  int64_t loadStartNanos_ = 0;
};

// Reads every source (never throws for what is in them: problems are collected) and gates.
// With a cache, unchanged SKILL.md files are not read again (the cache is the caller's: one
// thread at a time).
Catalog loadCatalog(const std::vector<SkillDir>& dirs, const SandboxView& sandbox = {},
                    FrontMatterCache* cache = nullptr);

// The unmet requirements of `r` in `sandbox`, one sentence each (empty: eligible).
std::vector<std::string> unmetRequirements(const Requirements& r, const SandboxView& sandbox);

// Where exec's sandbox shows the owner's installed skills, read-only (sandbox-profiles/exec).
inline constexpr char OWNER_SKILLS_INSIDE[] = "/skills";

// Where the model can read a skill's SKILL.md with its tools: the workspace-relative path for a
// workspace skill (the `read` tool's), /skills/<folder>/SKILL.md for one the owner installed
// (exec's sandbox), the same absolute path for one under /usr (the read and exec sandboxes see
// /usr read-only), else "" (not visible inside the sandboxes).
std::string modelReadPath(const Skill& skill, const std::string& workspaceDir);

struct PromptListLimits {
  size_t maxSkills = 40;
  size_t maxChars = 4000;  // the whole block, marker included
  size_t maxDescriptionChars = 160;
};

// The compact list of usable skills for the system prompt: one line per skill (name, its
// description on one line, where to read the full instructions), within the limits; what does
// not fit is left out and the last line says how many were. "" when no skill is usable. For the
// prompt assembly (owned elsewhere): this is text from the workspace, the owner and the package.
std::string promptList(const Catalog& catalog, const std::string& workspaceDir,
                       const PromptListLimits& limits = {});

}  // namespace chitin::skills
