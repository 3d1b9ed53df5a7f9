// SPDX-License-Identifier: Apache-2.0
// Tests for the system prompt: every fact in it is the supervisor's, and each changes with the
// session (chat kind, owner or not, taint, time zone).
// Runs in: test

#include "system-prompt.h"
#include "test-text.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <time.h>

namespace chitin {
namespace {

using chitin::testing::has;

PromptFacts base() {
  PromptFacts f;
  f.tools = {{"exec", "Run a shell command."}, {"web_fetch", "Fetch a web page."}};
  f.now = 1796212800;  // 2026-12-02 12:00:00 UTC
  f.ownerPrivate = true;
  return f;
}

TEST_CASE("system prompt: date and time in the configured zone, tools, sandbox, chat") {
  setenv("TZ", "Europe/Berlin", 1);
  tzset();
  PromptFacts f = base();
  f.timeZone = "Europe/Berlin";
  std::string p = buildSystemPrompt(f);
  CHECK(p.rfind(DEFAULT_PERSONA, 0) == 0);
  CHECK(has(p, "Now: 2026-12-02 13:00 (Wednesday), time zone Europe/Berlin (CET, UTC+01:00)."));
  CHECK(has(p, "- exec: Run a shell command.\n- web_fetch: Fetch a web page.\n"));
  CHECK(has(p, "a command has no network at all"));
  CHECK(has(p, "a private chat with your owner on the owner's command line."));
  CHECK_FALSE(has(p, "MEMORY.md) is not loaded"));
  CHECK_FALSE(has(p, "already contains content from outside"));
  setenv("TZ", "UTC", 1);
  tzset();
  CHECK(describeNow(f.now, "") == "2026-12-02 12:00 (Wednesday), time zone UTC (UTC, UTC+00:00)");
  unsetenv("TZ");
  tzset();
}

TEST_CASE("system prompt: a group chat, another sender and a tainted session say so") {
  PromptFacts f = base();
  f.persona = "You are Rex.";
  f.channel = "telegram";
  f.chatType = "group";
  f.ownerPrivate = false;
  f.tainted = true;
  f.taintSource = "web_fetch of https://evil.example/";
  f.untrustedDirs = {"downloads/", "inbox/"};
  std::string p = buildSystemPrompt(f);
  CHECK(p.rfind("You are Rex.\n", 0) == 0);
  CHECK(has(p, "a group chat on telegram: several people read what you write"));
  CHECK(has(p, "files in downloads/, inbox/, messages from other people"));
  CHECK(has(p, "(web_fetch of https://evil.example/)"));
  CHECK(has(p, "MEMORY.md) is not loaded in this conversation"));
  f.chatType = "direct";
  CHECK(has(buildSystemPrompt(f), "with someone who is not your owner"));
  f.skills = "- notes: Take notes (skills/notes/SKILL.md)\n";
  CHECK(has(buildSystemPrompt(f), "# Skills\n\n- notes: Take notes"));
}

}  // namespace
}  // namespace chitin
