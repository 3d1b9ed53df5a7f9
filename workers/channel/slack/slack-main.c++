// SPDX-License-Identifier: Apache-2.0
// chitin-worker-channel-slack: one Slack app's bot, served as a ChannelWorker.
// Runs in: worker (sandboxed, profile sandbox-profiles/channel-slack.textproto)

#include "slack.h"

int main(int argc, char** argv) {
  return chitin::channel::workerMain(argc, argv, "channel-slack",
                                     chitin::channel::slack::makeSlack);
}
