// SPDX-License-Identifier: Apache-2.0
// The system prompt of one turn: who the assistant is, what it can do and where, when and to
// whom it is talking, and what in its context is not to be trusted. Every sentence is a fact
// the supervisor knows; nothing the model or a worker said goes in, except the workspace files
// (workspace-files.h), which the session worker appends under "Project Context".
// Runs in: supervisor

#pragma once

#include <ctime>
#include <string>
#include <vector>

namespace chitin {

struct PromptFacts {
  std::string persona;  // agent.system_prompt, or the built-in first paragraph when empty
  std::string agentId = "main";
  struct Tool {
    std::string name;
    std::string summary;  // the first sentence of its description
  };
  std::vector<Tool> tools;
  std::string channel = "local";  // telegram, webchat, local, ...
  std::string chatType = "direct";
  bool ownerPrivate = false;  // an owner's own direct session: MEMORY.md is loaded
  std::time_t now = 0;
  std::string timeZone;  // e.g. "Europe/Berlin"; "" = the host's (named by %Z)
  bool tainted = false;
  std::string taintSource;
  std::vector<std::string> untrustedDirs;  // policy.untrusted_paths ("downloads/", "inbox/")
  std::string skills;                      // the skills list (skills.h), "" when none
};

// The built-in first paragraph, used when agent.system_prompt is empty.
extern const char DEFAULT_PERSONA[];

std::string buildSystemPrompt(const PromptFacts& facts);

// "2026-12-02 14:05 (Wednesday), time zone Europe/Berlin (CET, UTC+01:00)" for `now` in the
// process's local time zone (TZ or /etc/localtime), named `timeZone` if given.
std::string describeNow(std::time_t now, const std::string& timeZone);

// The host's time zone name: $TZ if set (without a leading ':'), else what /etc/timezone or the
// /etc/localtime link names, else "" (then %Z is all there is).
std::string hostTimeZone();

}  // namespace chitin
