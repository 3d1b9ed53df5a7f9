// SPDX-License-Identifier: Apache-2.0
// chitin-worker-channel-whatsapp: one linked WhatsApp account, through the Node bridge it runs.
// Runs in: worker (sandboxed)

#include "whatsapp-channel.h"

int main(int argc, char** argv) {
  return chitin::channel::localWorkerMain(argc, argv, "channel-whatsapp",
                                          chitin::channel::makeWhatsApp);
}
