// SPDX-License-Identifier: Apache-2.0
// What one channel account needs before its worker starts: its credential, read by the
// supervisor only, and its state directory.
// Runs in: supervisor
//
// The credential is the one secret a channel worker holds. It is read here, from
// $CHITIN_HOME/credentials/<kind>-<account> or the account's credential_file, and handed to the
// worker in ChannelWorker.start over its socket: never in argv, the environment, or a file the
// worker can open (the channel profiles mount neither credentials/ nor the home). A credential
// file anyone else could have read or replaced is refused: it must be a regular file owned by
// the service user, not readable or writable by group or others.

#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "channel-kinds.h"

namespace chitin::channels {

// Where the credential of `kind`/`account` is read from by default.
std::string defaultCredentialPath(const std::string& homeDir, const std::string& kind,
                                  const std::string& account);

// Reads a credential file: a regular file (not a symlink), owned by `owner`, mode without any
// group/other bits, at most 64 KiB; one trailing newline ("\n" or "\r\n") is dropped. Throws
// AccountError naming the path and the fix ("chmod 600 PATH"); never includes the content.
std::string readCredential(const std::string& path, uid_t owner);

// What readCredential would refuse about `path`, without reading the secret: "" when it would
// be accepted (`chitin channels list`). `missing` is set when there is no file at all.
std::string credentialProblem(const std::string& path, uid_t owner, bool& missing);

// `homeDir`/parts[0]/parts[1]/..., created 0700 level by level, never through a symlink, owned
// by this user. Returns the path. Throws AccountError naming the path.
std::string ensurePrivateDir(const std::string& homeDir, const std::vector<std::string>& parts);

// $CHITIN_HOME/state/channels/<kind>/<account>: the worker's own directory (bound at /state).
std::string ensureStateDir(const std::string& homeDir, const std::string& kind,
                           const std::string& account);

// Deletes $CHITIN_HOME/state/channels/<kind>/<account> and everything in it, descending by
// descriptor (openat O_NOFOLLOW, unlinkat): a symlink its worker planted there is removed, never
// followed, even if it swaps a directory for one meanwhile. Returns false if there was none;
// throws AccountError naming what could not be removed.
bool removeStateDir(const std::string& homeDir, const std::string& kind,
                    const std::string& account);

}  // namespace chitin::channels
