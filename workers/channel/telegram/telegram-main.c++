// SPDX-License-Identifier: Apache-2.0
// chitin-worker-channel-telegram: one Telegram bot account, holding its token and nothing else.
// Runs in: worker (sandboxed)

#include "channel-worker.h"
#include "telegram.h"

int main(int argc, char** argv) {
  return chitin::channel::workerMain(argc, argv, "channel-telegram",
                                     chitin::channel::telegram::makeTelegram);
}
