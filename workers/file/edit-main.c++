// SPDX-License-Identifier: Apache-2.0
// chitin-worker-edit: serves one `edit {path, oldText, newText}` call in the workspace.
// Runs in: worker (sandboxed)

#include "file-worker.h"

int main(int argc, char** argv) {
  return chitin::runWorker(
      argc, argv, "edit",
      chitin::fileWorkerFactory(argc, argv, chitin::rpc::ToolInvocation::EDIT,
                                [](int rootFd, chitin::rpc::ToolInvocation::Reader invocation) {
                                  auto args = invocation.getEdit();
                                  return chitin::editWorkspaceFile(
                                      rootFd, args.getPath(), args.getOldText(), args.getNewText());
                                }));
}
