// SPDX-License-Identifier: Apache-2.0
// The ToolWorker server of the read, write and edit workers (see file-worker.h).
// Runs in: worker (sandboxed)

#include "file-worker.h"

#include <kj/debug.h>
#include <signal.h>

#include "beneath.h"
#include "tool-worker-common.h"

namespace chitin {

namespace {

// Cap'n Proto 0.9.2's generated Server bases have no virtual destructor; kj::heap's disposer
// destroys the concrete type, so -Wnon-virtual-dtor's concern does not arise.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class FileToolWorker final : public rpc::ToolWorker::Server {
 public:
  FileToolWorker(WorkerContext& worker, rpc::ToolInvocation::Which which, kj::AutoCloseFd rootFd,
                 FileOperation operation)
      : oneCall(worker, which), rootFd(kj::mv(rootFd)), operation(kj::mv(operation)) {}

  kj::Promise<void> run(RunContext context) override {
    auto invocation = context.getParams().getInvocation();
    oneCall.begin(invocation);
    return oneCall.finish(kj::evalNow([&]() -> kj::Promise<void> {
      FileOutcome outcome = operation(rootFd, invocation);
      auto result = context.getResults().initResult();
      if (outcome.failed) {
        result.setFailed(outcome.text);
      } else {
        result.setOk(outcome.text);
      }
      result.setTruncated(outcome.truncated);
      return kj::READY_NOW;
    }));
  }

 private:
  OneCall oneCall;
  kj::AutoCloseFd rootFd;
  FileOperation operation;
};
#pragma GCC diagnostic pop

}  // namespace

BootstrapFactory fileWorkerFactory(int argc, char** argv, rpc::ToolInvocation::Which which,
                                   FileOperation operation) {
  return [argc, argv, which, operation = kj::mv(operation)](
             WorkerContext& worker) mutable -> capnp::Capability::Client {
    // Past RLIMIT_FSIZE, write() must fail with EFBIG (a result the model sees) rather than
    // SIGXFSZ killing the worker mid-call.
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    KJ_SYSCALL(sigaction(SIGXFSZ, &ignore, nullptr));

    auto rootFd = openWorkspaceRoot(workspaceRootFromArgs(argc, argv));
    rpc::ToolWorker::Client client =
        kj::heap<FileToolWorker>(worker, which, kj::mv(rootFd), kj::mv(operation));
    return client;
  };
}

}  // namespace chitin
