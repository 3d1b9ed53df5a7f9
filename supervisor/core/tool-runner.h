// SPDX-License-Identifier: Apache-2.0
// Runs one model-requested tool call: checks the arguments, starts a fresh worker in the tool's
// own sandbox profile, makes the one `run` call, and turns the outcome into what the model reads.
// Runs in: supervisor

#pragma once

#include <capnp/message.h>
#include <kj/async-io.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "memory-watch.h"
#include "memory-embedder.h"
#include "spawner.h"
#include "tool.capnp.h"

namespace chitin {

struct TurnFacts;  // guard.h

struct ToolSpecInfo {
  std::string name;
  std::string description;
  std::string parametersJson;
};

// The tools offered to the model, OpenClaw's names and parameters.
const std::vector<ToolSpecInfo>& toolSpecs();

struct ToolOutcome {
  enum class Status { OK, ERROR, DENIED };
  Status status = Status::ERROR;
  std::string content;  // what the model sees
  int exitCode = -1;
  bool timedOut = false;
  // Where the content came from when it is from outside (a web page: its URL): the
  // guard taints the session with it, whatever the status (a failure's text may be the page's).
  std::string untrustedSource;

  const char* statusName() const;
};

// Checks a tool call's JSON arguments and fills `invocation`. Returns "" when valid, else a
// message for the model naming the argument and what was expected.
std::string buildInvocation(const std::string& toolName, const std::string& argumentsJson,
                            uint32_t defaultTimeoutSeconds, uint32_t maxTimeoutSeconds,
                            rpc::ToolInvocation::Builder invocation);

// What the model reads of a tool worker's result: the text capped at about `maxOutputBytes`
// (the worker is not trusted to have capped it) and made valid UTF-8.
ToolOutcome toolOutcomeFrom(rpc::ToolResult::Reader result, uint32_t maxOutputBytes);

// Who chose a further destination of a running call: the policy sees it as context.initiator
// ("redirect", "page", "connection"; the call's own URL, which the model chose, is "model").
enum class Initiator { REDIRECT, PAGE, CONNECTION };
const char* initiatorName(Initiator initiator);

// What a running call may ask of the guard that runs it: whose call it is, and whether a further
// destination of the same call is allowed (a redirect, the browser's every document and
// connection). Lives until the call's promise settles.
class CallScope {
 public:
  virtual ~CallScope() = default;
  virtual const std::string& sessionKey() const = 0;
  // The turn the call belongs to (principal, taint), for tools the supervisor runs itself and
  // that decide more than the call (the session tools); null outside a guard.
  virtual const TurnFacts* turn() const { return nullptr; }
  // Decided like the call itself (same principal and context, `action` on the Host of `url`,
  // the URL in context.args.url, `initiator` in context.initiator) and audited as a DECISION.
  // "" when allowed as is; otherwise why not, for the model. One the policy would only allow
  // with the owner's confirmation is refused, unless it stays on the host:port of the URL the
  // owner confirmed for this call: the owner confirms calls, not requests in flight.
  virtual std::string decideHost(const std::string& action, const std::string& url,
                                 Initiator initiator) = 0;
  // The same for a connection the call's worker opens where only the host and port are known
  // (the browser's subresources, through the egress broker): context.args.connect is
  // "host:port", context.initiator "connection".
  virtual std::string decideConnection(const std::string& action, const std::string& host,
                                       uint16_t port) = 0;
  // decideConnection for after the call has ended: a page's scripts go on fetching between
  // calls, and what they reach is decided as requests of the last call that ran (its principal,
  // its turn's taint, its confirmation). Safe to keep and call at any time; once the guard is
  // gone it refuses.
  using ConnectionDecider =
      std::function<std::string(const std::string& action, const std::string& host, uint16_t port)>;
  virtual ConnectionDecider decideConnectionsAfterwards() = 0;
};

// How the guard runs a tool once it may: one fresh sandbox per call (ToolRunner), or a fake.
class ToolExecutor {
 public:
  virtual ~ToolExecutor() noexcept(false) = default;
  // Never rejects for expected failures; cancelling the promise stops the tool. `hiddenDirs`:
  // workspace-relative directories the call must not see (the untrusted ones, kept from an
  // untainted session's commands); each must be a real directory, or the call does not run.
  // `scope`: the guard's side of the call (null outside a guard: no further destination).
  virtual kj::Promise<ToolOutcome> run(const std::string& tool, const std::string& argumentsJson,
                                       const std::string& workspaceDir,
                                       const std::vector<std::string>& hiddenDirs,
                                       CallScope* scope = nullptr) = 0;
  // The one destination a tool always talks to, as an http(s) URL (web_search: its provider's
  // endpoint, whose host the guard decides the call on), or "" for none. Decorators forward.
  virtual std::string fixedEndpoint(const std::string& tool) const {
    (void)tool;
    return "";
  }
  // The session's context was reset: whatever a tool keeps for it (the browser and the pages it
  // has open) goes with the old context. Decorators forward.
  virtual void sessionEnded(const std::string& sessionKey) { (void)sessionKey; }
};

// A tool executor that runs one tool itself and passes every other call on to the executor it
// wraps (the message, web and browser tools). It forwards fixedEndpoint() too, so a decorator
// added later cannot hide what the tools beneath it answer (the guard would then refuse them).
class ToolDecorator : public ToolExecutor {
 public:
  explicit ToolDecorator(ToolExecutor& inner) : inner_(inner) {}
  std::string fixedEndpoint(const std::string& tool) const override {
    return inner_.fixedEndpoint(tool);
  }
  void sessionEnded(const std::string& sessionKey) override { inner_.sessionEnded(sessionKey); }

 protected:
  ToolExecutor& inner_;
};

// memory_search's query at most (and memory.search's).
constexpr size_t MAX_MEMORY_QUERY_BYTES = 4 << 10;

struct ToolRunnerSettings {
  uint32_t defaultTimeoutSeconds = 120;
  uint32_t maxTimeoutSeconds = 3600;
  uint32_t maxOutputBytes = 65536;
  // The memory worker's state directory ($CHITIN_HOME/state/memory/<agent>), created on use.
  std::string memoryStateDir;
  // The owner's installed skills ($CHITIN_HOME/skills), read-only at /skills in exec's sandbox.
  std::string ownerSkillsDir;
  // memory_search's hybrid ranking: the model worker's embeddings (ModelHost::embed) under
  // `embeddingModel`; unset = keyword ranking alone (memory-embedder.h).
  EmbedFunction embed;
  std::string embeddingModel;
};

class SpareSandboxes;  // spare-sandboxes.h

class ToolRunner final : public ToolExecutor {
 public:
  // With `spares`, a session's call takes the sandbox built for it ahead of need when there is
  // one, and a call's end has the next one built (spare-sandboxes.h); without, every call
  // spawns its sandbox when it runs.
  ToolRunner(uv_loop_t* loop, kj::AsyncIoContext& io, spawn::Spawner& spawner,
             ToolRunnerSettings settings, SpareSandboxes* spares = nullptr);

  // Never rejects for expected failures (bad arguments, sandbox unavailable, tool failed,
  // worker died): those are outcomes. Cancelling the promise kills the worker.
  kj::Promise<ToolOutcome> run(const std::string& toolName, const std::string& argumentsJson,
                               const std::string& workspaceDir,
                               const std::vector<std::string>& hiddenDirs,
                               CallScope* scope = nullptr) override;

  // The session's spares go with its context.
  void sessionEnded(const std::string& sessionKey) override;

  // `chitin memory status|index|search`: one memory worker call of `which` (MEMORY_STATUS,
  // MEMORY_INDEX or MEMORY_SEARCH with `query` and `maxResults`, clamped to 1..MAX_MEMORY_HITS);
  // the outcome's content is the worker's JSON, whole.
  kj::Promise<ToolOutcome> runMemoryCommand(rpc::ToolInvocation::Which which,
                                            const std::string& query, uint32_t maxResults,
                                            const std::string& workspaceDir);

  // Where every tool profile mounts the workspace inside the sandbox.
  static constexpr const char* WORKSPACE_INSIDE = "/workspace";

 private:
  kj::Promise<ToolOutcome> runWorker(const std::string& tool,
                                     kj::Own<capnp::MallocMessageBuilder> message,
                                     const std::string& workspaceDir,
                                     const std::vector<std::string>& hiddenDirs,
                                     const std::string& session);

  uv_loop_t* loop_;
  kj::AsyncIoContext& io_;
  spawn::Spawner& spawner_;
  ToolRunnerSettings settings_;
  SpareSandboxes* spares_;
  // Per workspace, made at its first memory_search: lets a search skip its walk.
  std::map<std::string, std::unique_ptr<MemoryWatch>> memoryWatches_;
  // After a call: a worker that cannot write to the host ended, and the session's next sandbox
  // of the kind built, END_WORKER_AFTER later (neither is the caller's wait); destroying the
  // runner ends the rest at once.
  static constexpr kj::Duration END_WORKER_AFTER = 2 * kj::MILLISECONDS;
  class LogTaskErrors final : public kj::TaskSet::ErrorHandler {
   public:
    void taskFailed(kj::Exception&& exception) override;
  };
  LogTaskErrors taskErrors_;
  kj::TaskSet endings_{taskErrors_};
};

}  // namespace chitin
