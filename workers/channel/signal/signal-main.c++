// SPDX-License-Identifier: Apache-2.0
// chitin-worker-channel-signal: one Signal account, through the owner's signal-cli daemon.
// Runs in: worker (sandboxed)

#include "signal-channel.h"

int main(int argc, char** argv) {
  return chitin::channel::workerMain(argc, argv, "channel-signal", chitin::channel::makeSignal);
}
