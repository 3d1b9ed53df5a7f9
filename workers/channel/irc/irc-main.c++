// SPDX-License-Identifier: Apache-2.0
// chitin-worker-channel-irc: one IRC network account (see irc-platform.h).
// Runs in: worker (sandboxed)

#include "../platform.h"
#include "irc-platform.h"

int main(int argc, char** argv) {
  return chitin::channel::workerMain(argc, argv, "channel-irc",
                                     chitin::channel::irc::makeIrcPlatform);
}
