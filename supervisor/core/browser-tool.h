// SPDX-License-Identifier: Apache-2.0
// The `browser` tool: one sandboxed headless Chromium per session (workers/browser/), driven
// action by action, every document it would load decided by the policy first.
// Runs in: supervisor
//
// OpenClaw's name and arguments: {action: "navigate"|"snapshot"|"click"|"type"|"press"|
// "screenshot"|"tabs"|"close", url?, ref?, text?, key?}. The guard decides the call as
// Action::"browse" (on Host::"<host>" for a navigation, else on the Agent) before it gets here.
// The session's browser worker starts at its first call, from sandbox-profiles/browser.textproto
// with this agent's profile directory (state/browser/<agent>/, 0700) and an egress endpoint of
// its own (any public host on 80/443, plus the owner's egress.allow_private entries). Cookies are
// per agent, so one session's browser runs at a time: a session that needs one stops another
// session's idle browser (one in the middle of an action makes it wait). The worker
// holds a NavigationGate served here: each document URL Chromium wants is decided through the
// running call's scope (Action::"browse" on its Host, context.initiator "page", audited), and so
// is every connection the pages open through the broker (context.initiator "connection",
// context.args.connect "host:port"): a host the policy refuses gets neither a document nor an
// image, script or beacon. With no call running, no document loads, and what the page's scripts
// go on connecting to is decided as requests of the session's last call. What comes back is
// untrusted: snapshot text is capped, the screenshot and downloads are written by this side
// beneath the workspace (openat2, no symlink followed), and every result taints the session with
// the page's URL as the source.

#pragma once

#include <kj/async-io.h>
#include <kj/timer.h>
#include <uv.h>

#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "broker.h"
#include "browser.capnp.h"
#include "config.pb.h"
#include "spawner.h"
#include "task-errors.h"
#include "tool-runner.h"

namespace chitin {

// What the model reads of a snapshot at most; the rest is cut, and the cut said.
constexpr size_t MAX_BROWSER_TEXT_BYTES = 50 << 10;

// Checks a `browser` call's parsed arguments; "" when valid, else a message for the model
// naming the argument and what was expected. A navigation's url must be http(s) (anything else
// is refused before the policy is asked).
std::string checkBrowserArguments(const nlohmann::json& args);

struct BrowserToolSettings {
  std::string agentId = "main";
  std::string stateDir;                 // <home>/state: profiles go in browser/<agent>/
  config::EgressConfig egress;          // allow_private: the owner's private destinations
  uint32_t idleSeconds = 600;           // a session's browser stops after this long unused
  uint32_t actionTimeoutSeconds = 120;  // one action (a navigation that never loads ...)
};

// Writes `data` as a new file `name` in the workspace directory `dir` (created 0755 if missing),
// opening both without following any symlink (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
// O_EXCL, so an existing name is never overwritten). "" when written, else why not.
std::string writeBeneathWorkspace(const std::string& workspaceDir, const std::string& dir,
                                  const std::string& name, const std::string& data);

// A download's suggested name made safe for one path component: letters, digits, '.', '-',
// '_' kept, anything else '_', no leading dot, at most 100 bytes; "download" if nothing is left.
std::string safeFileName(const std::string& suggested);

// What the model reads of a browser worker's `result` before any file is written: its text
// (valid UTF-8, cut at MAX_BROWSER_TEXT_BYTES and the cut said), the page's URL (at most 300
// bytes) as the untrusted source. BrowserTool adds the screenshot and downloads it saves.
ToolOutcome browserOutcomeFrom(rpc::BrowserResult::Reader result);

// The model's tool executor with `browser` handled here and every other tool passed on.
class BrowserTool final : public ToolDecorator {
 public:
  BrowserTool(ToolExecutor& inner, uv_loop_t* loop, kj::AsyncIoContext& io, spawn::Spawner& spawner,
              egress::Broker& broker, BrowserToolSettings settings);
  ~BrowserTool() noexcept(false);

  kj::Promise<ToolOutcome> run(const std::string& tool, const std::string& argumentsJson,
                               const std::string& workspaceDir,
                               const std::vector<std::string>& hiddenDirs,
                               CallScope* scope = nullptr) override;

  // Kills every session's browser (gateway shutdown).
  void shutdown();

  // A reset session's browser is stopped: its pages belong to the old context. (The agent's
  // profile, its cookies, stays.) Never called while the session has a run in progress.
  void sessionEnded(const std::string& sessionKey) override;

  // Sessions with a live browser now (tests, status).
  size_t running() const { return sessions_.size(); }

  struct Session;  // one session's worker, its endpoint, its gate

 private:
  Session& sessionFor(const std::string& key);
  // The worker's answer as the model reads it; the files written beneath the workspace.
  ToolOutcome outcomeOf(rpc::BrowserResult::Reader result, const std::string& action,
                        const std::string& workspaceDir);
  void forget(const std::string& key, uint64_t generation, const std::string& why);
  kj::Promise<ToolOutcome> act(Session& session, nlohmann::json args, std::string workspaceDir,
                               CallScope& scope);

  uv_loop_t* loop_;
  kj::AsyncIoContext& io_;
  spawn::Spawner& spawner_;
  egress::Broker& broker_;
  BrowserToolSettings settings_;
  std::map<std::string, std::unique_ptr<Session>> sessions_;
  uint64_t generations_ = 0;
  LogTaskErrors taskErrors_{"browser tool", spdlog::level::err};
  kj::TaskSet tasks_;
};

}  // namespace chitin
