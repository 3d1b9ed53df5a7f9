// SPDX-License-Identifier: Apache-2.0
// chitin-worker-write: serves one `write {path, content}` call in the workspace.
// Runs in: worker (sandboxed)

#include "file-worker.h"

int main(int argc, char** argv) {
  return chitin::runWorker(
      argc, argv, "write",
      chitin::fileWorkerFactory(argc, argv, chitin::rpc::ToolInvocation::WRITE,
                                [](int rootFd, chitin::rpc::ToolInvocation::Reader invocation) {
                                  auto args = invocation.getWrite();
                                  return chitin::writeWorkspaceFile(rootFd, args.getPath(),
                                                                    args.getContent().asArray());
                                }));
}
