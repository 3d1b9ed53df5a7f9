// SPDX-License-Identifier: Apache-2.0
// What every tool worker shares: exactly one ToolWorker.run of its own kind, then the process
// ends; and where the workspace is.
// Runs in: worker (sandboxed)
//
// Header-only so the exec worker uses the same rules without a library shared between
// workers/exec/ and workers/file/.
//
// Worker flags (besides the spawner's --chitin-limits):
//   --workspace-root=DIR  where the workspace is; default /workspace (the sandbox mount).
//                         The spawner never passes it; tests use it to run a worker
//                         unsandboxed against a temporary directory.

#pragma once

#include <kj/async-io.h>
#include <kj/debug.h>

#include <algorithm>
#include <initializer_list>
#include <vector>

#include "tool.capnp.h"
#include "worker-main.h"
#include "workspace-path.h"

namespace chitin {

constexpr const char WORKSPACE_ROOT_FLAG[] = "--workspace-root=";

// The value of the last `--workspace-root=` in argv, or WORKSPACE_MOUNT.
inline kj::StringPtr workspaceRootFromArgs(int argc, char** argv) {
  kj::StringPtr root = WORKSPACE_MOUNT;
  for (int i = 1; i < argc; ++i) {
    kj::StringPtr arg = argv[i];
    if (arg.startsWith(WORKSPACE_ROOT_FLAG)) root = arg.slice(sizeof(WORKSPACE_ROOT_FLAG) - 1);
  }
  KJ_REQUIRE(root.startsWith("/"), "--workspace-root must be an absolute path", root);
  return root;
}

// Why wait at all before exiting: the Return message is written by the RPC system after our
// promise resolves, and a large result may need several writes if the supervisor is slow to
// read. Exiting early would cut it off. The supervisor normally hangs up as soon as it has
// the result (we then exit at once on EOF); this bound only matters if it does not.
constexpr auto TOOL_WORKER_EXIT_GRACE = 2 * kj::SECONDS;

inline kj::StringPtr invocationName(rpc::ToolInvocation::Which which) {
  switch (which) {
    case rpc::ToolInvocation::EXEC:
      return "exec";
    case rpc::ToolInvocation::READ:
      return "read";
    case rpc::ToolInvocation::WRITE:
      return "write";
    case rpc::ToolInvocation::EDIT:
      return "edit";
    case rpc::ToolInvocation::MEMORY_SEARCH:
      return "memory_search";
    case rpc::ToolInvocation::MEMORY_GET:
      return "memory_get";
    case rpc::ToolInvocation::MEMORY_STATUS:
      return "memory status";
    case rpc::ToolInvocation::MEMORY_INDEX:
      return "memory index";
  }
  return "unknown";
}

class OneCall {
 public:
  OneCall(WorkerContext& context, rpc::ToolInvocation::Which kind)
      : context(context), kind(kind), kinds({kind}) {}
  // A worker that serves one call of any of several kinds (the memory worker).
  OneCall(WorkerContext& context, std::initializer_list<rpc::ToolInvocation::Which> kinds)
      : context(context), kind(*kinds.begin()), kinds(kinds) {}

  // First thing in run(). A second call, or a call of another kind, is a protocol error: it
  // throws, and the worker ends as it would after a good call.
  void begin(rpc::ToolInvocation::Reader invocation) {
    KJ_REQUIRE(!called, "ToolWorker.run called twice; a tool worker serves exactly one call",
               invocationName(kind));
    called = true;
    if (std::find(kinds.begin(), kinds.end(), invocation.which()) == kinds.end()) {
      scheduleExit();
      KJ_FAIL_REQUIRE("tool worker got an invocation of another kind", invocationName(kind),
                      invocationName(invocation.which()));
    }
  }

  // Wraps the call's work: whatever its outcome, the worker exits after it.
  kj::Promise<void> finish(kj::Promise<void> work) {
    return work.then([this]() { scheduleExit(); },
                     [this](kj::Exception&& e) {
                       scheduleExit();
                       kj::throwFatalException(kj::mv(e));
                     });
  }

 private:
  WorkerContext& context;
  rpc::ToolInvocation::Which kind;
  std::vector<rpc::ToolInvocation::Which> kinds;
  bool called = false;
  bool exitArmed = false;
  kj::Promise<void> exitTimer = nullptr;

  void scheduleExit() {
    if (exitArmed) return;
    exitArmed = true;
    exitTimer = context.io.provider->getTimer()
                    .afterDelay(TOOL_WORKER_EXIT_GRACE)
                    .then([this]() { context.done->fulfill(); })
                    .eagerlyEvaluate(nullptr);
  }
};

}  // namespace chitin
