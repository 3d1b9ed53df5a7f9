// SPDX-License-Identifier: Apache-2.0
// chitin-worker-model: serves one model provider (OpenAI-compatible or Anthropic) to the
// supervisor, holding that provider's API key and nothing else.
// Runs in: worker (sandboxed)

#include <kj/memory.h>
#include <string.h>

#include <string>

#include "http.h"
#include "provider.h"
#include "sandbox-child.h"
#include "worker-main.h"

int main(int argc, char** argv) {
  // The egress broker's socket, which the spawner names whenever it binds one (always, for the
  // shipped profile); without it, direct connections (tests outside a sandbox).
  std::string egressSocket;
  for (int i = 1; i < argc; i++) {
    std::string arg = argv[i];
    if (arg.rfind(chitin::EGRESS_FLAG, 0) == 0) {
      egressSocket = arg.substr(strlen(chitin::EGRESS_FLAG));
    }
  }
  return chitin::runWorker(argc, argv, "model", [&](chitin::WorkerContext&) {
    // Before any thread exists and before the lockdown: libcurl and OpenSSL initialise here.
    chitin::model::initHttpGlobal();
    return capnp::Capability::Client(kj::heap<chitin::model::ModelProviderServer>(egressSocket));
  });
}
