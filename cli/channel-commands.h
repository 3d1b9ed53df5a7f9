// SPDX-License-Identifier: Apache-2.0
// `chitin channels status | login`: the running channel workers, through the gateway.
// Runs in: CLI (the invoking user's process, unprivileged)
//
// (`channels list | add | remove` edit local files and run in chitin-supervisor:
// supervisor/channels/channels-cli.h.)

#pragma once

#include <string>
#include <vector>

#include "remote-commands.h"

namespace chitin::cli {

// How a QR payload reaches the terminal: by default the Debian `qrencode` program (payload on
// its stdin, never in argv), else the payload as text. Tests pass their own.
using QrRenderer = std::function<bool(const std::string& payload, std::ostream& out)>;
bool renderQrWithQrencode(const std::string& payload, std::ostream& out);

// `args` follow "channels" ("status [--json]" or "login KIND [--account ID] [--phone NUMBER]
// [--timeout SECONDS]"). Returns the exit code.
int runChannelsCommand(const std::vector<std::string>& args, RemoteContext& context,
                       const QrRenderer& renderQr = renderQrWithQrencode);

}  // namespace chitin::cli
