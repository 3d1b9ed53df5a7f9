// SPDX-License-Identifier: Apache-2.0
// `chitin gateway`: the supervisor process in the foreground. Wires config, home, the spawner,
// the agent core and the gateway onto one libuv loop, and tears them down in order on SIGTERM.
// Runs in: supervisor

#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace chitin {

struct GatewayCommand {
  std::optional<uint16_t> port;  // --port overrides the config
  std::string user;              // --user: required when started as root
  std::string profileDir;        // defaults chosen by the CLI (build tree or installed)
  std::string workerDir;
  std::string webRoot;
  std::string policyDir;  // the shipped policies
  std::string skillsDir;  // the bundled skills
  bool quiet = false;
};

// Returns the process exit status: 0 after a clean SIGTERM/SIGINT shutdown, 2 for config or
// usage errors (the message is printed), 1 for other start-up failures.
int runGateway(const GatewayCommand& command);

}  // namespace chitin
