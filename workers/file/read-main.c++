// SPDX-License-Identifier: Apache-2.0
// chitin-worker-read: serves one `read {path}` call over the workspace, mounted read-only.
// Runs in: worker (sandboxed)

#include "file-worker.h"

int main(int argc, char** argv) {
  return chitin::runWorker(
      argc, argv, "read",
      chitin::fileWorkerFactory(argc, argv, chitin::rpc::ToolInvocation::READ,
                                [](int rootFd, chitin::rpc::ToolInvocation::Reader invocation) {
                                  return chitin::readWorkspaceFile(rootFd,
                                                                   invocation.getRead().getPath());
                                }));
}
