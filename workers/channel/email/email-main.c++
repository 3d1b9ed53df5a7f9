// SPDX-License-Identifier: Apache-2.0
// chitin-worker-channel-email: one mailbox, IMAP in and SMTP out (see email-platform.h).
// Runs in: worker (sandboxed)

#include "../platform.h"
#include "email-platform.h"

int main(int argc, char** argv) {
  return chitin::channel::workerMain(argc, argv, "channel-email",
                                     chitin::channel::email::makeEmailPlatform);
}
