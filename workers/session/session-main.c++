// SPDX-License-Identifier: Apache-2.0
// chitin-worker-session: one per active session key; runs the agent loop.
// Runs in: worker (sandboxed: no network, no files, no credentials)

#include "agent-loop.h"
#include "worker-main.h"

int main(int argc, char** argv) {
  return chitin::runWorker(argc, argv, "session", [](chitin::WorkerContext& context) {
    // Idle: runWorker gives back the heap's free pages and the dead stack, from its own frame.
    auto giveBack = [&context]() {
      if (context.idle.get() != nullptr) context.idle->fulfill();
    };
    return capnp::Capability::Client(
        kj::heap<chitin::SessionWorkerImpl>(&context.io.provider->getTimer(), giveBack));
  });
}
