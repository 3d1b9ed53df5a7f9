// SPDX-License-Identifier: Apache-2.0
// The ToolWorker server shared by the read, write and edit workers: each main supplies its
// kind and the one operation it performs.
// Runs in: worker (sandboxed)

#pragma once

#include <kj/function.h>

#include "file-ops.h"
#include "tool.capnp.h"
#include "worker-main.h"

namespace chitin {

using FileOperation = kj::Function<FileOutcome(int rootFd, rpc::ToolInvocation::Reader)>;

// The bootstrap factory for runWorker(): opens the workspace root (`--workspace-root=`,
// default /workspace; see tool-worker-common.h) before the worker locks down, and serves one
// `run` of kind `which` by calling `operation`.
BootstrapFactory fileWorkerFactory(int argc, char** argv, rpc::ToolInvocation::Which which,
                                   FileOperation operation);

}  // namespace chitin
