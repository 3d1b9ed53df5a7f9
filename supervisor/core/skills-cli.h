// SPDX-License-Identifier: Apache-2.0
// `chitin skills list | info NAME | check | install DIR [--yes]`: reads the same three sources the
// agent's prompt list comes from, locally (no running gateway needed), and installs a skill into
// $CHITIN_HOME/skills (skills-install.h).
// Runs in: the `chitin` command's process (chitin-supervisor), as the invoking user

#pragma once

#include <istream>
#include <ostream>
#include <string>
#include <vector>

namespace chitin::skills {

struct SkillsCliEnv {
  std::string home;        // $CHITIN_HOME
  std::string bundledDir;  // share/chitin/skills, or the repository's skills/ in a build tree
  std::istream& in;        // where the y/N answer is read
  bool inIsTerminal;       // without a terminal (and without --yes) install refuses to guess
  std::string principal;   // who runs it, as the audit log names people: User::"alice"
};

// Exit codes: 0 ok; 1 `check` found problems or an install was refused or failed; 2 usage.
int skillsCommand(const std::vector<std::string>& args, const SkillsCliEnv& env, std::ostream& out,
                  std::ostream& err);

}  // namespace chitin::skills
