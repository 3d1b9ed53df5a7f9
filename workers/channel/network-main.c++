// SPDX-License-Identifier: Apache-2.0
// workerMain() for the platforms that reach their servers themselves: libcurl and OpenSSL set
// up first. A file of its own, so that a binary calling only localWorkerMain() links neither.
// Runs in: worker (sandboxed)

#include "channel-worker.h"
#include "stream.h"

namespace chitin::channel {

int workerMain(int argc, char** argv, const char* kind, PlatformFactory factory) {
  // curl_global_init is not thread-safe, and OpenSSL reads its configuration here rather than
  // at the first connection, after the lockdown.
  return runChannelWorker(argc, argv, kind, std::move(factory), initNetworkGlobal);
}

}  // namespace chitin::channel
