// SPDX-License-Identifier: Apache-2.0
// `chitin skills ...` (see skills-cli.h).
// Runs in: the `chitin` command's process

#include "skills-cli.h"

#include "skills-install.h"
#include "skills.h"

namespace chitin::skills {

namespace {

constexpr int EXIT_FAIL = 1;
constexpr int EXIT_USAGE = 2;

std::vector<SkillDir> sourcesFor(const SkillsCliEnv& env, const std::string& agent) {
  return {{Source::WORKSPACE, env.home + "/workspace/" + agent + "/skills"},
          {Source::OWNER, env.home + "/skills"},
          {Source::BUNDLED, env.bundledDir}};
}

std::string status(const Skill& s) {
  if (s.shadowedBy) return std::string("shadowed by the ") + sourceName(*s.shadowedBy) + " skill";
  return s.eligible ? "usable" : "unavailable";
}

void printProblems(const Catalog& c, std::ostream& out) {
  for (const auto& p : c.problems) out << "problem: " << p.path << ": " << p.what << "\n";
}

int list(const Catalog& c, std::ostream& out) {
  if (c.skills.empty()) out << "no skills\n";
  for (const auto& s : c.skills) {
    std::string desc = s.meta.description.substr(0, 100);
    for (char& ch : desc)
      if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
    out << s.meta.name << "  [" << sourceName(s.source) << ", " << status(s) << "]  " << desc
        << (s.meta.description.size() > 100 ? "…" : "") << "\n";
  }
  if (!c.problems.empty())
    out << c.problems.size() << " broken skill folder(s): see `chitin skills check`\n";
  return 0;
}

void printRequirements(const Requirements& r, std::ostream& out) {
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (auto& x : v) s += (s.empty() ? "" : ", ") + x;
    return s.empty() ? std::string("-") : s;
  };
  out << "  requires.bins: " << join(r.bins) << "\n  requires.env: " << join(r.env)
      << "\n  os: " << join(r.os) << "\n";
}

int info(const Catalog& c, const std::string& name, const std::string& workspace, std::ostream& out,
         std::ostream& err) {
  bool any = false;
  for (const auto& s : c.skills) {
    if (s.meta.name != name) continue;
    any = true;
    out << s.meta.name << " (" << sourceName(s.source) << ", " << status(s) << ")\n"
        << "  description: " << s.meta.description << "\n  SKILL.md: " << s.skillMdPath << "\n";
    std::string readPath = modelReadPath(s, workspace);
    out << "  the agent reads it at: "
        << (readPath.empty() ? "(not visible inside the sandbox)" : readPath) << "\n";
    printRequirements(s.meta.requires_, out);
    for (const auto& u : s.unmet) out << "  unmet: " << u << "\n";
  }
  if (!any) {
    err << "chitin skills info: no skill named \"" << name << "\"\n";
    return EXIT_FAIL;
  }
  return 0;
}

int check(const Catalog& c, std::ostream& out) {
  for (const auto& s : c.skills) {
    out << s.meta.name << " (" << sourceName(s.source) << "): " << status(s) << "\n";
    for (const auto& u : s.unmet) out << "  unmet: " << u << "\n";
  }
  printProblems(c, out);
  out << c.usable().size() << " usable, " << c.skills.size() - c.usable().size()
      << " unavailable or shadowed, " << c.problems.size() << " broken\n";
  return c.problems.empty() ? 0 : EXIT_FAIL;
}

int installCommand(const std::string& source, bool yes, const SkillsCliEnv& env, std::ostream& out,
                   std::ostream& err) {
  std::string error;
  auto plan = planInstall(source, error);
  if (!plan) {
    err << "chitin skills install: " << error << "\n";
    return EXIT_FAIL;
  }
  printPlan(*plan, env.home + "/skills/" + plan->meta.name, out);
  if (!yes) {
    if (!env.inIsTerminal) {
      err << "chitin skills install: not asked on a terminal; pass --yes to install without "
             "asking\n";
      return EXIT_FAIL;
    }
    out << "Install this skill? [y/N] " << std::flush;
    std::string answer;
    std::getline(env.in, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") {
      out << "not installed\n";
      return EXIT_FAIL;
    }
  }
  try {
    InstallResult r = install(*plan, env.home, env.principal);
    out << "installed " << r.destination << " (audit record " << r.auditSeq << ", snapshot "
        << (r.snapshotAfter.empty() ? "failed" : r.snapshotAfter.substr(0, 12)) << ")\n";
  } catch (const std::exception& e) {
    err << "chitin skills install: " << e.what() << "\n";
    return EXIT_FAIL;
  }
  return 0;
}

}  // namespace

int skillsCommand(const std::vector<std::string>& args, const SkillsCliEnv& env, std::ostream& out,
                  std::ostream& err) {
  auto usage = [&] {
    err << "usage: chitin skills list | info NAME | check [--agent NAME]\n"
           "       chitin skills install DIR [--yes]\n";
    return EXIT_USAGE;
  };
  if (args.empty()) return usage();
  const std::string& cmd = args[0];
  std::string agent = "main", positional;
  bool yes = false, havePositional = false;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--agent" && i + 1 < args.size()) {
      agent = args[++i];
    } else if (args[i] == "--yes" && cmd == "install") {
      yes = true;
    } else if (!havePositional && !args[i].empty() && args[i][0] != '-') {
      positional = args[i];
      havePositional = true;
    } else {
      err << "chitin skills " << cmd << ": unknown argument \"" << args[i] << "\"\n";
      return usage();
    }
  }
  if (agent.empty() || agent.find('/') != std::string::npos || agent[0] == '.') {
    err << "chitin skills: --agent: expected an agent name, got \"" << agent << "\"\n";
    return EXIT_USAGE;
  }
  if (cmd == "install") {
    if (!havePositional) return usage();
    return installCommand(positional, yes, env, out, err);
  }
  if ((cmd == "info") != havePositional) return usage();
  Catalog c = loadCatalog(sourcesFor(env, agent));
  if (cmd == "list") return list(c, out);
  if (cmd == "info") return info(c, positional, env.home + "/workspace/" + agent, out, err);
  if (cmd == "check") return check(c, out);
  return usage();
}

}  // namespace chitin::skills
