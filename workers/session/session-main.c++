// SPDX-License-Identifier: Apache-2.0
// chitin-worker-session: one per active session key; runs the agent loop.
// Runs in: worker (sandboxed: no network, no files, no credentials)

#include "agent-loop.h"
#include "worker-main.h"

int main(int argc, char** argv) {
  return chitin::runWorker(argc, argv, "session", [](chitin::WorkerContext& context) {
    return capnp::Capability::Client(
        kj::heap<chitin::SessionWorkerImpl>(&context.io.provider->getTimer()));
  });
}
