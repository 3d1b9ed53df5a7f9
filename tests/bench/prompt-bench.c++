// SPDX-License-Identifier: Apache-2.0
// Prompt assembly cost per turn, for scripts/bench (not a test: it prints figures).
// Runs in: benchmark only
//
// What AgentCore::prepareTurn does before each turn, on a freshly bootstrapped workspace with
// the repository's bundled skills and a transcript of `entries` entries: load the injected
// workspace files, read the skills catalog and list it, build the system prompt, and load and
// replay the transcript (with its compacted view). Each part is timed over many rounds.
//
//   prompt-bench SKILLS_DIR [ROUNDS]

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>

#include "compaction.h"
#include "skills.h"
#include "system-prompt.h"
#include "tool-runner.h"
#include "transcript.h"
#include "turn.h"
#include "workspace-files.h"

using namespace chitin;
using Clock = std::chrono::steady_clock;

namespace {

template <typename F>
double microsecondsPerRound(int rounds, F&& body) {
  auto start = Clock::now();
  for (int i = 0; i < rounds; ++i) body();
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count() / rounds;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: prompt-bench SKILLS_DIR [ROUNDS]\n");
    return 2;
  }
  std::string skillsDir = argv[1];
  int rounds = argc > 2 ? atoi(argv[2]) : 2000;
  if (rounds <= 0) {
    fprintf(stderr, "prompt-bench: ROUNDS: expected a positive number, got \"%s\"\n", argv[2]);
    return 2;
  }
  char tmpl[] = "/tmp/chitin-prompt-bench-XXXXXX";
  std::string root = mkdtemp(tmpl);
  std::string workspace = root + "/workspace";
  mkdir(workspace.c_str(), 0700);
  bootstrapWorkspace(workspace);
  std::vector<skills::SkillDir> dirs = {{skills::Source::WORKSPACE, workspace + "/skills"},
                                        {skills::Source::OWNER, root + "/skills"},
                                        {skills::Source::BUNDLED, skillsDir}};
  TranscriptStore transcripts(root + "/sessions");
  mkdir((root + "/sessions").c_str(), 0700);
  const std::string key = "agent:main:bench:direct:prompt";
  for (int i = 0; i < 50; ++i) {
    TranscriptEntry user, reply;
    user.role = "user";
    user.content = "question " + std::to_string(i) + ": " + std::string(200, 'q');
    reply.role = "assistant";
    reply.content = "answer " + std::to_string(i) + ": " + std::string(600, 'a');
    transcripts.append(key, user);
    transcripts.append(key, reply);
  }

  size_t sink = 0;
  auto noTaint = [](const std::string&, const struct stat&) { return std::string(); };
  // As a turn reads them: each file read once, then only stat'd while unchanged (AgentCore's
  // cache, which remembers a file only once its last change has settled: file-stamp.h).
  std::this_thread::sleep_for(std::chrono::nanoseconds(RACY_NANOS + 50'000'000));
  PromptFileCache fileCache;
  double files = microsecondsPerRound(rounds, [&] {
    std::vector<std::string> tainted;
    sink += loadPromptFiles(workspace, true, {}, noTaint, tainted, &fileCache).size();
  });
  // As a turn reads it: SKILL.md files parsed once, then only stat'd (AgentCore's cache).
  skills::FrontMatterCache cache;
  double catalog = microsecondsPerRound(rounds, [&] {
    sink += skills::promptList(skills::loadCatalog(dirs, {}, &cache), workspace).size();
  });
  std::string list = skills::promptList(skills::loadCatalog(dirs), workspace);
  double prompt = microsecondsPerRound(rounds, [&] {
    PromptFacts p;
    for (const auto& spec : toolSpecs()) p.tools.push_back({spec.name, spec.description});
    p.now = std::time(nullptr);
    p.skills = list;
    sink += buildSystemPrompt(p).size();
  });
  double history = microsecondsPerRound(rounds / 4 + 1, [&] {
    sink += replayWindow(transcripts.load(key)).size();
  });
  printf("{\"files_us\": %.1f, \"skills_us\": %.1f, \"system_prompt_us\": %.1f, "
         "\"history_100_entries_us\": %.1f, \"rounds\": %d, \"sink\": %zu}\n",
         files, catalog, prompt, history, rounds, sink);
  [[maybe_unused]] int rc = system(("rm -rf '" + root + "'").c_str());
  return 0;
}
