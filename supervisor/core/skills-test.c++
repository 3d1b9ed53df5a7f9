// SPDX-License-Identifier: Apache-2.0
// Tests for skills.h: front matter (bounds, types, errors), precedence, gating, the prompt list,
// and the bundled skills.
// Runs in: tests

#include "skills.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include <regex>
#include <set>

#include "skills-test-util.h"
#include "tool-runner.h"

using namespace chitin::skills;
using chitin::skills::testing::put;
using chitin::skills::testing::skillMd;
using chitin::skills::testing::TempDir;

namespace {

std::string parseError(const std::string& text) {
  std::string error;
  auto fm = parseFrontMatter(text, error);
  CHECK_FALSE(fm.has_value());
  return error;
}

// A /usr of our own: bin/ holding the named executables.
SandboxView sandboxWith(const std::string& usr, std::initializer_list<const char*> bins) {
  for (const char* b : bins) put(usr + "/bin/" + b, "#!/bin/sh\n", 0755);
  SandboxView v;
  v.usrRoot = usr;
  return v;
}

}  // namespace

TEST_CASE("skills: front matter with name, description and OpenClaw's nested requirements") {
  std::string error;
  auto fm = parseFrontMatter(
      "---\nname: weather\ndescription: \"Weather: today's forecast\"\nmetadata: "
      "{\"openclaw\": {\"requires\": {\"bins\": [\"curl\"], \"env\": [\"API_KEY\"]}, "
      "\"os\": [\"linux\", \"darwin\"]}}\n---\nbody\n",
      error);
  REQUIRE_MESSAGE(fm, error);
  CHECK(fm->name == "weather");
  CHECK(fm->description == "Weather: today's forecast");
  CHECK(fm->requires_.bins == std::vector<std::string>{"curl"});
  CHECK(fm->requires_.env == std::vector<std::string>{"API_KEY"});
  CHECK(fm->requires_.os == std::vector<std::string>{"linux", "darwin"});

  fm = parseFrontMatter(
      "---\r\nname: a\r\ndescription: b\r\nmetadata:\r\n  requires:\r\n    bins: "
      "ls\r\n---\r\n",
      error);
  REQUIRE_MESSAGE(fm, error);
  CHECK(fm->requires_.bins == std::vector<std::string>{"ls"});
}

TEST_CASE("skills: every front matter error names the field and what was expected") {
  CHECK(parseError("name: x\n") ==
        "SKILL.md must start with a `---` line opening the YAML front matter");
  CHECK(parseError("---\nname: x\ndescription: y\n") ==
        "the front matter has no closing `---` line");
  CHECK(parseError("---\n---\n") == "the front matter is empty");
  CHECK(parseError("---\n- a\n- b\n---\n").find("must be a mapping") != std::string::npos);
  CHECK(parseError("---\ndescription: y\n---\n").rfind("name: expected", 0) == 0);
  CHECK(parseError("---\nname: Bad_Name\ndescription: y\n---\n").rfind("name: expected", 0) == 0);
  CHECK(parseError("---\nname: [a]\ndescription: y\n---\n").rfind("name: expected", 0) == 0);
  CHECK(parseError("---\nname: x\n---\n").rfind("description: expected", 0) == 0);
  CHECK(parseError("---\nname: x\ndescription: {a: b}\n---\n").rfind("description: expected", 0) ==
        0);
  CHECK(parseError("---\nname: x\ndescription: " + std::string(1100, 'd') + "\n---\n")
            .rfind("description: expected", 0) == 0);
  CHECK(parseError("---\nname: x\ndescription: y\nmetadata: [1]\n---\n") ==
        "metadata: expected a mapping");
  CHECK(parseError("---\nname: x\ndescription: y\nmetadata: {requires: {bins: {a: b}}}\n---\n") ==
        "metadata.requires.bins: expected a list of strings, got a mapping");
  CHECK(parseError("---\nname: x\ndescription: y\nmetadata: {requires: {config: [a]}}\n---\n") ==
        "metadata.requires.config: unknown requirement (expected bins or env)");
  CHECK(parseError("---\nname: x\ndescription: y\nmetadata: {requires: {env: [[a]]}}\n---\n")
            .find("one-line strings") != std::string::npos);
  CHECK(parseError("---\nname: x\nname: y\ndescription: y\n---\n") ==
        "the key \"name\" appears twice");
  CHECK(
      parseError("---\nname: x\ndescription: y\n  bad: [\n---\n").rfind("YAML error at line", 0) ==
      0);
}

TEST_CASE("skills: hostile YAML is bounded before it costs anything") {
  // Aliases (the billion laughs) are refused outright.
  CHECK(parseError("---\nname: x\ndescription: &d y\nother: *d\n---\n") ==
        "YAML anchors (&name) are not accepted");
  CHECK(parseError("---\na: [1]\nb: *a\n---\n") == "YAML aliases (*name) are not accepted");
  // Nesting past the bound.
  CHECK(parseError("---\nname: x\ndescription: y\nmetadata: " + std::string(50, '[') +
                   std::string(50, ']') + "\n---\n")
            .find("nested deeper than") != std::string::npos);
  // Size: the whole file, and the front matter.
  CHECK(parseError("---\nname: x\ndescription: y\n---\n" + std::string(70000, 'x'))
            .find("larger than 65536 bytes") != std::string::npos);
  CHECK(parseError("---\nname: x\ndescription: y\npad: \"" + std::string(9000, 'p') + "\"\n---\n")
            .find("the front matter is larger than") != std::string::npos);
  // Many small nodes.
  std::string many = "---\nname: x\ndescription: y\nlist: [";
  for (int i = 0; i < 600; ++i) many += "1,";
  CHECK(parseError(many + "1]\n---\n").find("YAML nodes") != std::string::npos);
}

TEST_CASE("skills: the workspace beats the owner beats bundled; the loser is reported shadowed") {
  TempDir t;
  put(t.root + "/ws/skills/notes/SKILL.md", skillMd("notes", "workspace notes"));
  put(t.root + "/owner/notes/SKILL.md", skillMd("notes", "owner notes"));
  put(t.root + "/owner/digest/SKILL.md", skillMd("digest", "owner digest"));
  put(t.root + "/bundled/digest/SKILL.md", skillMd("digest", "bundled digest"));
  put(t.root + "/bundled/notes/SKILL.md", skillMd("notes", "bundled notes"));
  put(t.root + "/bundled/only-here/SKILL.md", skillMd("only-here", "bundled only"));
  Catalog c = loadCatalog({{Source::WORKSPACE, t.root + "/ws/skills"},
                           {Source::OWNER, t.root + "/owner"},
                           {Source::BUNDLED, t.root + "/bundled"}});
  CHECK(c.problems.empty());
  REQUIRE(c.find("notes"));
  CHECK(c.find("notes")->meta.description == "workspace notes");
  CHECK(c.find("notes")->source == Source::WORKSPACE);
  CHECK(c.find("digest")->meta.description == "owner digest");
  CHECK(c.find("only-here")->source == Source::BUNDLED);
  auto usable = c.usable();
  REQUIRE(usable.size() == 3);
  CHECK(usable[0]->meta.name == "digest");
  size_t shadowed = 0;
  for (const auto& s : c.skills)
    if (s.shadowedBy) {
      ++shadowed;
      if (s.meta.name == "notes") CHECK((*s.shadowedBy == Source::WORKSPACE));
    }
  CHECK(shadowed == 3);
}

TEST_CASE("skills: the front matter cache re-reads exactly what changed and forgets what went") {
  TempDir t;
  std::string path = t.root + "/owner/notes/SKILL.md";
  put(path, skillMd("notes", "first words"));
  put(t.root + "/owner/broken/SKILL.md", "---\nname: broken\n---\n");  // no description
  std::vector<SkillDir> dirs = {{Source::OWNER, t.root + "/owner"}};
  FrontMatterCache cache;
  auto statOf = [](const std::string& p) {
    struct stat st;
    REQUIRE(stat(p.c_str(), &st) == 0);
    return st;
  };

  // Past the racy window: a file is remembered only once its last change is that old.
  std::this_thread::sleep_for(std::chrono::nanoseconds(chitin::RACY_NANOS + 50'000'000));
  Catalog first = loadCatalog(dirs, {}, &cache);
  REQUIRE(first.find("notes"));
  CHECK(first.find("notes")->meta.description == "first words");
  REQUIRE(first.problems.size() == 1);
  struct stat before = statOf(path);
  CHECK(cache.find(path, before) != nullptr);  // remembered, so the next load does not read it

  Catalog again = loadCatalog(dirs, {}, &cache);
  CHECK(again.find("notes")->meta.description == "first words");
  REQUIRE(again.problems.size() == 1);  // a refusal is remembered with its reason
  CHECK(again.problems[0].what == first.problems[0].what);

  // The same size, and the modification time put back: the change time still tells.
  put(path, skillMd("notes", "other words"));
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  REQUIRE(utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
  CHECK(statOf(path).st_size == before.st_size);
  CHECK(cache.find(path, statOf(path)) == nullptr);
  Catalog edited = loadCatalog(dirs, {}, &cache);
  CHECK(edited.find("notes")->meta.description == "other words");
  // The same catalog as without a cache.
  Catalog uncached = loadCatalog(dirs);
  CHECK(uncached.find("notes")->meta.description == "other words");
  CHECK(uncached.problems.size() == edited.problems.size());

  // A skill removed is forgotten by the next load.
  struct stat last = statOf(path);
  std::filesystem::remove_all(t.root + "/owner/notes");
  Catalog gone = loadCatalog(dirs, {}, &cache);
  CHECK_FALSE(gone.find("notes"));
  CHECK(cache.find(path, last) == nullptr);
}

TEST_CASE("skills: a SKILL.md changed just before the load is not remembered by its stamp") {
  // Its timestamps come from a coarse clock: written again within the same tick at the same
  // size, it would keep its stamp, and a remembered parse would hide the new text.
  TempDir t;
  std::string path = t.root + "/owner/notes/SKILL.md";
  put(path, skillMd("notes", "first words"));
  std::vector<SkillDir> dirs = {{Source::OWNER, t.root + "/owner"}};
  FrontMatterCache cache;
  struct stat st;

  CHECK(loadCatalog(dirs, {}, &cache).find("notes")->meta.description == "first words");
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK(cache.find(path, st) == nullptr);  // too fresh to trust its stamp

  std::this_thread::sleep_for(std::chrono::nanoseconds(chitin::RACY_NANOS + 50'000'000));
  CHECK(loadCatalog(dirs, {}, &cache).find("notes")->meta.description == "first words");
  CHECK(cache.find(path, st) != nullptr);  // settled: remembered
}

TEST_CASE("skills: a remembered skill whose folder or SKILL.md becomes a symlink is refused") {
  // With a cache, an unchanged SKILL.md costs one stat by path; that path must not let a folder
  // or a SKILL.md swapped for a symlink through, even one pointing at the very file read before.
  TempDir t;
  std::string ws = t.root + "/ws/skills";
  put(ws + "/notes/SKILL.md", skillMd("notes", "first words"));
  put(ws + "/plan/SKILL.md", skillMd("plan", "plan words"));
  std::vector<SkillDir> dirs = {{Source::WORKSPACE, ws}};
  FrontMatterCache cache;
  std::this_thread::sleep_for(std::chrono::nanoseconds(chitin::RACY_NANOS + 50'000'000));
  REQUIRE(loadCatalog(dirs, {}, &cache).skills.size() == 2);
  struct stat st;
  REQUIRE(stat((ws + "/notes/SKILL.md").c_str(), &st) == 0);
  REQUIRE(cache.find(ws + "/notes/SKILL.md", st) != nullptr);
  REQUIRE(loadCatalog(dirs, {}, &cache).skills.size() == 2);  // the remembered path

  // The folder moved away and a symlink to it put in its place: the same SKILL.md file.
  REQUIRE(rename((ws + "/notes").c_str(), (t.root + "/moved").c_str()) == 0);
  REQUIRE(symlink((t.root + "/moved").c_str(), (ws + "/notes").c_str()) == 0);
  // SKILL.md moved aside and a symlink to it in its place.
  REQUIRE(rename((ws + "/plan/SKILL.md").c_str(), (ws + "/plan/real.md").c_str()) == 0);
  REQUIRE(symlink("real.md", (ws + "/plan/SKILL.md").c_str()) == 0);

  Catalog c = loadCatalog(dirs, {}, &cache);
  CHECK(c.skills.empty());
  std::map<std::string, std::string> why;
  for (const auto& p : c.problems) why[p.path.substr(ws.size() + 1)] = p.what;
  CHECK(why["notes"].find("a symlink") != std::string::npos);
  CHECK(why["plan/SKILL.md"] == "SKILL.md is a symlink (not followed)");
}

TEST_CASE("skills: a broken or hostile skill folder is a problem, never a crash") {
  TempDir t;
  std::string ws = t.root + "/ws/skills";
  put(ws + "/good/SKILL.md", skillMd("good", "fine"));
  put(ws + "/noname/SKILL.md", "---\ndescription: y\n---\n");
  put(ws + "/mismatch/SKILL.md", skillMd("other", "y"));
  put(ws + "/empty/README.md", "no skill here");
  put(ws + "/big/SKILL.md", skillMd("big", "y") + std::string(70000, 'x'));
  put(t.root + "/outside/SKILL.md", skillMd("linked", "from outside"));
  REQUIRE(symlink((t.root + "/outside").c_str(), (ws + "/linked").c_str()) == 0);
  put(ws + "/mdlink/real.md", skillMd("mdlink", "y"));
  REQUIRE(symlink("real.md", (ws + "/mdlink/SKILL.md").c_str()) == 0);
  mkdir((ws + "/fifo").c_str(), 0755);
  mkfifo((ws + "/fifo/SKILL.md").c_str(), 0644);
  put(ws + "/plainfile", "x");
  Catalog c = loadCatalog({{Source::WORKSPACE, ws}});
  REQUIRE(c.skills.size() == 1);
  CHECK(c.skills[0].meta.name == "good");
  std::map<std::string, std::string> why;
  for (const auto& p : c.problems) why[p.path.substr(ws.size() + 1)] = p.what;
  CHECK(why.size() == 7);
  CHECK(why["noname/SKILL.md"].rfind("name: expected", 0) == 0);
  CHECK(why["mismatch/SKILL.md"] == "name: \"other\" differs from the folder's name \"mismatch\"");
  CHECK(why["empty/SKILL.md"] == "no SKILL.md in the folder");
  CHECK(why["big/SKILL.md"].find("larger than") != std::string::npos);
  CHECK(why["linked"].find("a symlink") != std::string::npos);
  CHECK(why["mdlink/SKILL.md"] == "SKILL.md is a symlink (not followed)");
  CHECK(why["fifo/SKILL.md"] == "SKILL.md is not a regular file");
  CHECK(why.count("plainfile") == 0);  // a file beside the folders (a README) is ignored

  // The skills folder itself a symlink (the agent can make one in its workspace): refused.
  REQUIRE(symlink((t.root + "/outside").c_str(), (t.root + "/ws2").c_str()) == 0);
  Catalog c2 = loadCatalog({{Source::WORKSPACE, t.root + "/ws2"}});
  CHECK(c2.skills.empty());
  REQUIRE(c2.problems.size() == 1);
  CHECK(c2.problems[0].what.find("symlink") != std::string::npos);
  // A missing folder is simply empty.
  CHECK(loadCatalog({{Source::OWNER, t.root + "/none"}}).problems.empty());
}

TEST_CASE("skills: gating checks programs in the sandbox's /usr, its environment and the OS") {
  TempDir t;
  SandboxView v = sandboxWith(t.root + "/usr", {"jq"});
  put(t.root + "/usr/sbin/noexec", "x", 0644);
  Requirements ok{{"jq"}, {"HOME", "PATH"}, {"linux", "darwin"}};
  CHECK(unmetRequirements(ok, v).empty());

  Requirements missingBin{{"ffmpeg"}, {}, {}};
  auto u = unmetRequirements(missingBin, v);
  REQUIRE(u.size() == 1);
  CHECK(u[0].find("\"ffmpeg\", which the exec sandbox does not have") != std::string::npos);
  // Not executable, or a path instead of a name: unmet.
  CHECK(unmetRequirements({{"noexec"}, {}, {}}, v).size() == 1);
  CHECK(unmetRequirements({{"../bin/jq"}, {}, {}}, v).size() == 1);
  CHECK(unmetRequirements({{"/usr/bin/jq"}, {}, {}}, v).size() == 1);

  // The exec sandbox's environment is empty but for what chitin sets: a key never arrives.
  u = unmetRequirements({{}, {"OPENAI_API_KEY"}, {}}, SandboxView{});
  REQUIRE(u.size() == 1);
  CHECK(u[0].find("OPENAI_API_KEY, which chitin does not give the exec sandbox") !=
        std::string::npos);
  CHECK(u[0].find("empty environment") != std::string::npos);

  u = unmetRequirements({{}, {}, {"darwin", "win32"}}, v);
  REQUIRE(u.size() == 1);
  CHECK(u[0] == "is for darwin, win32, not linux");

  // Through the loader: the real host /usr, and a skill gated out is listed but not usable.
  put(t.root + "/s/has-sh/SKILL.md",
      skillMd("has-sh", "y", "metadata: {requires: {bins: [sh]}}\n"));
  put(t.root + "/s/needs-key/SKILL.md",
      skillMd("needs-key", "y", "metadata: {requires: {env: [GITHUB_TOKEN]}}\n"));
  Catalog c = loadCatalog({{Source::OWNER, t.root + "/s"}});
  CHECK(c.find("has-sh")->eligible);
  CHECK_FALSE(c.find("needs-key")->eligible);
  REQUIRE(c.usable().size() == 1);
  CHECK(c.usable()[0]->meta.name == "has-sh");
}

TEST_CASE("skills: the prompt list is compact, within its budget, and says what it cut") {
  TempDir t;
  std::string ws = t.root + "/ws";
  for (int i = 0; i < 30; ++i) {
    char name[16];
    snprintf(name, sizeof name, "skill-%02d", i);
    put(ws + "/skills/" + name + "/SKILL.md",
        skillMd(name, std::string("does thing ") + name + " " + std::string(300, 'z')));
  }
  put(t.root + "/owner/private/SKILL.md", skillMd("private", "the owner's"));
  put(t.root + "/owner/gated/SKILL.md", skillMd("gated", "y", "metadata: {os: [darwin]}\n"));
  Catalog c =
      loadCatalog({{Source::WORKSPACE, ws + "/skills"}, {Source::OWNER, t.root + "/owner"}});
  REQUIRE(c.usable().size() == 31);

  PromptListLimits limits;
  limits.maxChars = 1500;
  std::string list = promptList(c, ws, limits);
  CHECK(list.size() <= 1500);
  CHECK(list.find("- private: the owner's (read /skills/private/SKILL.md)") != std::string::npos);
  CHECK(list.find("- skill-00: does thing skill-00 zzz") != std::string::npos);
  CHECK(list.find("(read skills/skill-00/SKILL.md)") != std::string::npos);
  CHECK(list.find("gated") == std::string::npos);  // gated out: never offered
  std::smatch m;
  REQUIRE(std::regex_search(
      list, m, std::regex(R"(\((\d+) more skills not listed: over the skills budget\)\n$)")));
  size_t lines = 0;
  for (char ch : list) lines += ch == '\n';
  CHECK(std::stoul(m[1]) + (lines - 2) == 31);  // header and marker are not skills

  // Each description is cut to its own bound and kept on one line.
  limits.maxChars = 100000;
  limits.maxDescriptionChars = 21;
  list = promptList(c, ws, limits);
  CHECK(list.find("- skill-05: does thing skill-05 z… (read") != std::string::npos);
  CHECK(list.find("more skills not listed") == std::string::npos);

  limits.maxSkills = 2;
  list = promptList(c, ws, limits);
  CHECK(list.find("(29 more skills not listed") != std::string::npos);

  CHECK(promptList(loadCatalog({}), ws).empty());
}

// ---- the bundled skills

namespace {

// Tool names a skill could mention: chitin's own (toolSpecs()) and OpenClaw's that chitin lacks
// or has under another name, so a skill that names one of those fails here.
std::set<std::string> mentionedTools(const std::string& text) {
  static const std::set<std::string> candidates = {
      "exec",        "read",          "write",         "edit",          "message",
      "web_fetch",   "web_search",    "browser",       "memory_search", "memory_get",
      "apply_patch", "process",       "bash",          "cron",          "canvas",
      "nodes",       "sessions_send", "sessions_list", "image",         "gateway"};
  std::set<std::string> out;
  std::regex tick("`([a-z_]+)`");
  for (std::sregex_iterator it(text.begin(), text.end(), tick), end; it != end; ++it)
    if (candidates.count((*it)[1])) out.insert((*it)[1]);
  return out;
}

}  // namespace

TEST_CASE("skills: the bundled skills load, are usable here, and name only chitin's tools") {
  Catalog c = loadCatalog({{Source::BUNDLED, CHITIN_BUNDLED_SKILLS_DIR}});
  for (const auto& p : c.problems) FAIL_CHECK(p.path << ": " << p.what);
  std::set<std::string> tools;
  for (const auto& t : chitin::toolSpecs()) tools.insert(t.name);
  for (const char* name : {"memory-notes", "summarize-file", "daily-digest"}) {
    CAPTURE(name);
    const Skill* s = c.find(name);
    REQUIRE(s);
    CHECK(s->source == Source::BUNDLED);
    // Gated on programs the exec sandbox really has (this host's /usr), with no environment
    // requirement it could never meet.
    CHECK_MESSAGE(s->eligible, (s->unmet.empty() ? "" : s->unmet[0]));
    CHECK(s->meta.requires_.env.empty());
    CHECK_FALSE(s->meta.requires_.bins.empty());
    // A host without the program: gated out.
    SandboxView bare;
    bare.usrRoot = "/nonexistent";
    CHECK_FALSE(unmetRequirements(s->meta.requires_, bare).empty());
    std::string text = chitin::skills::testing::slurp(s->skillMdPath);
    auto named = mentionedTools(text);
    CHECK_FALSE(named.empty());
    for (const auto& t : named) CHECK_MESSAGE(tools.count(t), name << " names `" << t << "`");
  }
  CHECK(c.find("memory-notes")->meta.description.find("MEMORY.md") != std::string::npos);
  std::string notes = chitin::skills::testing::slurp(c.find("memory-notes")->skillMdPath);
  CHECK(notes.find("memory/YYYY-MM-DD.md") != std::string::npos);
  // The mention check itself can fail: a name chitin lacks is caught.
  CHECK(mentionedTools("use `memory_search` then `read`") ==
        std::set<std::string>{"memory_search", "read"});
  CHECK(tools.count("exec") == 1);
}

TEST_CASE("skills: the model's read path is the workspace path, /skills, a /usr path, or none") {
  Skill ws;
  ws.source = Source::WORKSPACE;
  ws.skillMdPath = "/h/workspace/main/skills/a/SKILL.md";
  CHECK(modelReadPath(ws, "/h/workspace/main") == "skills/a/SKILL.md");
  Skill bundled;
  bundled.source = Source::BUNDLED;
  bundled.skillMdPath = "/usr/share/chitin/skills/b/SKILL.md";
  CHECK(modelReadPath(bundled, "/h/workspace/main") == bundled.skillMdPath);
  Skill owner;
  owner.source = Source::OWNER;
  owner.dir = "/h/skills/c";
  owner.skillMdPath = "/h/skills/c/SKILL.md";
  CHECK(modelReadPath(owner, "/h/workspace/main") == "/skills/c/SKILL.md");
  Skill source;  // a bundled skill run from a source tree: outside every sandbox
  source.source = Source::BUNDLED;
  source.skillMdPath = "/src/chitin/skills/d/SKILL.md";
  CHECK(modelReadPath(source, "/h/workspace/main").empty());
}
