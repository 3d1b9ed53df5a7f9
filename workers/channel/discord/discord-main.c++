// SPDX-License-Identifier: Apache-2.0
// chitin-worker-channel-discord: one Discord bot account, served as a ChannelWorker.
// Runs in: worker (sandboxed, profile sandbox-profiles/channel-discord.textproto)

#include "discord.h"

int main(int argc, char** argv) {
  return chitin::channel::workerMain(argc, argv, "channel-discord",
                                     chitin::channel::discord::makeDiscord);
}
