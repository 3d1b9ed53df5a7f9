// SPDX-License-Identifier: Apache-2.0
// chitin-worker-model: serves one model provider (OpenAI-compatible or Anthropic) to the
// supervisor, holding that provider's API key and nothing else.
// Runs in: worker (sandboxed)

#include <kj/memory.h>

#include "http.h"
#include "provider.h"
#include "worker-main.h"

int main(int argc, char** argv) {
  return chitin::runWorker(argc, argv, "model", [](chitin::WorkerContext&) {
    // Before any thread exists and before the lockdown: libcurl and OpenSSL initialise here.
    chitin::model::initHttpGlobal();
    return capnp::Capability::Client(kj::heap<chitin::model::ModelProviderServer>());
  });
}
