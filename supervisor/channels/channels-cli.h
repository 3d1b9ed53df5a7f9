// SPDX-License-Identifier: Apache-2.0
// `chitin channels list | add | remove`: the channel accounts in chitin.conf and their
// credential files, read and edited locally (like `chitin policy check`: no gateway needed).
// Runs in: the invoking user's process (`chitin-supervisor`), as the owner of $CHITIN_HOME
//
// `add` writes the credential to $CHITIN_HOME/credentials/<kind>-<account> (0600, atomically)
// and an `account { ... }` block into chitin.conf's `channels { }` (made if missing), keeping
// the rest of the file, comments included, byte for byte; the result must parse before it
// replaces the file. `remove` takes the block out again, with the credential file `add` wrote and
// the account's state directory.
// The gateway reads chitin.conf at start: both say to restart it. Run as root for a home owned
// by the service user, the command becomes that user once the token is read.

#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "config.h"

namespace chitin::channels {

struct ChannelsCliEnv {
  std::string homeDir;  // $CHITIN_HOME
  std::istream& in;     // --token-stdin
};

// `args` follow "channels". Returns the exit code (0 ok, 1 failed, 2 usage or config error).
int channelsCommand(const std::vector<std::string>& args, ChannelsCliEnv& env, std::ostream& out,
                    std::ostream& err);

// chitin.conf's `text` (named `path` in errors) with `account` added to its channels section,
// everything else unchanged. Throws ConfigError when the text does not parse, the account
// exists already, or the result would not be a valid config.
std::string addAccountToConfig(const std::string& text, const std::string& path,
                               const config::ChannelAccountConfig& account);

// `text` without the account block of kind/account. Throws ConfigError (naming the account)
// when there is none.
std::string removeAccountFromConfig(const std::string& text, const std::string& path,
                                    const std::string& kind, const std::string& account);

}  // namespace chitin::channels
