// SPDX-License-Identifier: Apache-2.0
// Tests for the bootstrap files: templates written once and never over anything, the prompt's
// budgets with the cut said, comments not sent, MEMORY.md only in an owner's private session,
// and an untrusted file reported.
// Runs in: test

#include "workspace-files.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

namespace chitin {
namespace {

struct Dir {
  std::string path;
  Dir() {
    char tmpl[] = "/tmp/chitin-ws-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~Dir() { [[maybe_unused]] int rc = std::system(("rm -rf '" + path + "'").c_str()); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path + "/" + name) << text;
  }
  std::string read(const std::string& name) const {
    std::ifstream in(path + "/" + name);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

std::vector<PromptFile> load(const Dir& d, bool owner, PromptFileBudget budget = {},
                             std::vector<std::string>* why = nullptr,
                             PromptFileCache* cache = nullptr) {
  std::vector<std::string> tainted;
  auto files = loadPromptFiles(
      d.path, owner, budget,
      [](const std::string& name, const struct stat&) {
        return name == "TOOLS.md" ? std::string("TOOLS.md was written by a tainted session") : "";
      },
      tainted, cache);
  if (why != nullptr) *why = tainted;
  return files;
}

TEST_CASE("workspace files: the templates are written once, never over an existing name") {
  Dir d;
  d.write("SOUL.md", "my own soul\n");
  REQUIRE(symlink("/etc/passwd", (d.path + "/USER.md").c_str()) == 0);
  auto created = bootstrapWorkspace(d.path);
  CHECK(created == std::vector<std::string>{"AGENTS.md", "IDENTITY.md", "TOOLS.md", "MEMORY.md",
                                            "HEARTBEAT.md", "memory/"});
  CHECK(d.read("SOUL.md") == "my own soul\n");  // the owner's file, as it was
  char target[64] = {};
  CHECK(readlink((d.path + "/USER.md").c_str(), target, sizeof target - 1) > 0);
  CHECK(std::string(target) == "/etc/passwd");   // a link is left alone, not followed
  CHECK(d.read("AGENTS.md").find("<!--") == 0);  // commented templates
  struct stat st {};
  CHECK(stat((d.path + "/memory").c_str(), &st) == 0);
  CHECK(S_ISDIR(st.st_mode));

  // Once: with the marker, a template deleted on purpose stays deleted.
  Dir state;
  std::string marker = state.path + "/bootstrapped-main";
  unlink((d.path + "/AGENTS.md").c_str());
  CHECK(bootstrapWorkspaceOnce(d.path, marker) == std::vector<std::string>{"AGENTS.md"});
  unlink((d.path + "/AGENTS.md").c_str());
  CHECK(bootstrapWorkspaceOnce(d.path, marker).empty());
  CHECK(access((d.path + "/AGENTS.md").c_str(), F_OK) != 0);
}

// What loadPromptFiles returned, as one comparable text.
std::string shown(const std::vector<PromptFile>& files) {
  std::string all;
  for (const auto& f : files) all += f.name + (f.cut ? " (cut)" : "") + ":\n" + f.content + "\n";
  return all;
}

TEST_CASE("workspace files: with the cache, a turn sees exactly what it would without it") {
  Dir d;
  d.write("AGENTS.md", "<!-- note -->\nwork words\n");
  d.write("SOUL.md", "soul words\n");
  d.write("TOOLS.md", "tool words\n");
  d.write("MEMORY.md", "remembered\n");
  PromptFileCache cache;
  auto same = [&](bool owner) {
    std::vector<std::string> whyCached, whyPlain;
    std::string cached = shown(load(d, owner, {}, &whyCached, &cache));
    CHECK(cached == shown(load(d, owner, {}, &whyPlain)));
    CHECK(whyCached == whyPlain);  // the taint is judged every time, cached or not
    return cached;
  };
  auto path = [&](const char* name) { return d.path + "/" + name; };
  auto statOf = [&](const char* name) {
    struct stat st {};
    REQUIRE(lstat(path(name).c_str(), &st) == 0);
    return st;
  };

  // Fresh files are not remembered (their stamp could hide a rewrite in the same tick).
  same(true);
  CHECK(cache.find("SOUL.md", statOf("SOUL.md")) == nullptr);
  std::this_thread::sleep_for(std::chrono::nanoseconds(RACY_NANOS + 50'000'000));
  CHECK(same(true).find("soul words") != std::string::npos);
  CHECK(cache.find("SOUL.md", statOf("SOUL.md")) != nullptr);
  CHECK(same(false).find("remembered") == std::string::npos);  // MEMORY.md: owners only, still

  // Rewritten at the same size with its modification time put back: the change time tells.
  struct stat before = statOf("SOUL.md");
  d.write("SOUL.md", "SOUL WORDS\n");
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  REQUIRE(utimensat(AT_FDCWD, path("SOUL.md").c_str(), times, 0) == 0);
  CHECK(same(true).find("SOUL WORDS") != std::string::npos);

  // Replaced by a symlink (to a copy with other words) or removed: not shown, as without it.
  std::this_thread::sleep_for(std::chrono::nanoseconds(RACY_NANOS + 50'000'000));
  same(true);
  d.write("elsewhere.md", "linked words\n");
  REQUIRE(unlink(path("AGENTS.md").c_str()) == 0);
  REQUIRE(symlink("elsewhere.md", path("AGENTS.md").c_str()) == 0);
  REQUIRE(unlink(path("TOOLS.md").c_str()) == 0);
  std::string now = same(true);
  CHECK(now.find("AGENTS.md") == std::string::npos);
  CHECK(now.find("linked words") == std::string::npos);
  CHECK(now.find("TOOLS.md") == std::string::npos);
}

TEST_CASE("workspace files: a workspace that cannot be written is an error naming the file") {
  if (geteuid() == 0) return;  // root writes anyway
  Dir d;
  chmod(d.path.c_str(), 0500);
  CHECK_THROWS_WITH_AS(bootstrapWorkspace(d.path), doctest::Contains("cannot create"),
                       std::runtime_error);
  chmod(d.path.c_str(), 0700);
}

TEST_CASE("workspace files: comments are the owner's and are not sent") {
  CHECK(withoutComments("<!--\nnote\n-->\n# Title\n\n<!-- x -->\n\nbody\n") == "# Title\n\nbody\n");
  CHECK(withoutComments("a <!-- hidden --> b\n") == "a  b\n");
  CHECK(withoutComments("kept\n<!-- never closed\nsecret\n") == "kept\n");
  CHECK(withoutComments("<!-- only a comment -->\n\n") == "");
}

TEST_CASE("workspace files: MEMORY.md goes only into an owner's private session") {
  Dir d;
  bootstrapWorkspace(d.path);
  d.write("MEMORY.md", "# Memory\nThe owner's PIN hint is 1234.\n");
  auto names = [](const std::vector<PromptFile>& files) {
    std::vector<std::string> out;
    for (const auto& f : files) out.push_back(f.name);
    return out;
  };
  // The templates hold little besides comments; each that has text goes in.
  CHECK(names(load(d, true)) == std::vector<std::string>{"AGENTS.md", "SOUL.md", "USER.md",
                                                         "IDENTITY.md", "TOOLS.md", "MEMORY.md"});
  auto others = names(load(d, false));
  CHECK(std::find(others.begin(), others.end(), "MEMORY.md") == others.end());
  CHECK(std::find(others.begin(), others.end(), "HEARTBEAT.md") == others.end());
  // A file the taint record names is reported, and still shown (the session is then tainted).
  std::vector<std::string> why;
  load(d, false, {}, &why);
  CHECK(why == std::vector<std::string>{"TOOLS.md was written by a tainted session"});
}

TEST_CASE("workspace files: budgets per file and in all, the cut said, at a character") {
  Dir d;
  std::string line = "\xc3\xa9t\xc3\xa9 " + std::string(95, 'x') + "\n";  // 100 characters
  std::string big;
  for (int i = 0; i < 50; ++i) big += line;  // 5000 characters, more bytes
  d.write("AGENTS.md", big);
  d.write("SOUL.md", big);
  d.write("USER.md", "short\n");
  PromptFileBudget budget;
  budget.perFile = 1050;
  budget.total = 1500;
  auto files = load(d, true, budget);
  REQUIRE(files.size() == 3);
  // Cut at the line end before 1050 characters: 10 lines.
  CHECK(files[0].cut);
  CHECK(files[0].content.rfind(line, 0) == 0);
  CHECK(files[0].content.find("[chitin: cut here; 4000 more characters of AGENTS.md are not "
                              "shown. Read AGENTS.md with the read tool for the rest.]") !=
        std::string::npos);
  // What is left of the total (500) is what SOUL.md gets.
  CHECK(files[1].cut);
  CHECK(files[1].content.find("4500 more characters of SOUL.md") != std::string::npos);
  // Nothing is left for USER.md: it is named, not shown.
  CHECK(files[2].content.find("not shown; the files before it used the prompt's budget") !=
        std::string::npos);
  bool cut = false;
  CHECK(cutToCharacters("\xc3\xa9\xc3\xa9\xc3\xa9", 2, cut) == "\xc3\xa9\xc3\xa9");
  CHECK(cut);
  CHECK(cutToCharacters("abc", 3, cut) == "abc");
  CHECK_FALSE(cut);
}

}  // namespace
}  // namespace chitin
