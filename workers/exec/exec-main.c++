// SPDX-License-Identifier: Apache-2.0
// chitin-worker-exec: serves one `exec {command, workdir, timeoutSeconds}` call with bash in
// the workspace (mounted read-write), streaming the output back.
// Runs in: worker (sandboxed)
//
// Flags: --workspace-root=DIR and --home=DIR (tests only; the defaults are the sandbox's
// /workspace and /home/sandbox) and --max-output-bytes=N (how much output the result keeps and
// the live stream carries; default 64 KiB).

#include <kj/debug.h>

#include "beneath.h"
#include "exec-runner.h"
#include "tool-worker-common.h"
#include "worker-main.h"

namespace chitin {
namespace {

// Cap'n Proto 0.9.2's generated Server bases have no virtual destructor; kj::heap's disposer
// destroys the concrete type, so -Wnon-virtual-dtor's concern does not arise.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class ExecToolWorker final : public rpc::ToolWorker::Server {
 public:
  ExecToolWorker(WorkerContext& worker, kj::AutoCloseFd rootFd, kj::StringPtr home,
                 size_t maxOutputBytes)
      : io(worker.io),
        oneCall(worker, rpc::ToolInvocation::EXEC),
        rootFd(kj::mv(rootFd)),
        home(home),
        maxOutputBytes(maxOutputBytes),
        // bash for the call, started ahead of it from the event loop: runWorker loads the
        // worker's seccomp filter before the loop first runs, so bash inherits it, as a bash
        // started for the call does.
        warming(
            kj::evalLater([this]() {
              warm = WarmShell::start(this->rootFd, this->home);
            }).eagerlyEvaluate([](kj::Exception&& e) { KJ_LOG(WARNING, "no warm shell", e); })) {}

  kj::Promise<void> run(RunContext context) override {
    auto params = context.getParams();
    oneCall.begin(params.getInvocation());
    ExecSettings settings{rootFd, home, maxOutputBytes};
    auto work = kj::evalNow([&]() {
      return runExec(io, settings, params.getInvocation().getExec(), params.getOutput(),
                     kj::mv(warm));
    });
    return oneCall.finish(work.then([context](ExecOutcome outcome) mutable {
      auto result = context.getResults().initResult();
      if (outcome.failed) {
        result.setFailed(outcome.text);
      } else {
        result.setOk(outcome.text);
      }
      result.setExitCode(outcome.exitCode);
      result.setTruncated(outcome.truncated);
      result.setTimedOut(outcome.timedOut);
    }));
  }

 private:
  kj::AsyncIoContext& io;
  OneCall oneCall;
  kj::AutoCloseFd rootFd;
  kj::StringPtr home;  // points into argv
  size_t maxOutputBytes;
  kj::Own<WarmShell> warm;  // null until started, and once the call has it
  kj::Promise<void> warming;
};
#pragma GCC diagnostic pop

}  // namespace
}  // namespace chitin

int main(int argc, char** argv) {
  return chitin::runWorker(
      argc, argv, "exec", [argc, argv](chitin::WorkerContext& worker) -> capnp::Capability::Client {
        size_t maxOutputBytes = chitin::maxOutputBytesFromArgs(argc, argv);
        kj::StringPtr rootPath = chitin::workspaceRootFromArgs(argc, argv);
        chitin::rpc::ToolWorker::Client client =
            kj::heap<chitin::ExecToolWorker>(worker, chitin::openWorkspaceRoot(rootPath),
                                             chitin::homeFromArgs(argc, argv), maxOutputBytes);
        return client;
      });
}
