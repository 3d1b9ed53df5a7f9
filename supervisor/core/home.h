// SPDX-License-Identifier: Apache-2.0
// $CHITIN_HOME: its layout, the gateway token, and dropping root to the service user.
// Runs in: supervisor
//
//   $CHITIN_HOME/            0700, owned by the service user
//     chitin.conf            0600  config (see config.h)
//     gateway.token          0600  the gateway token (generated at first start)
//     gateway.url            0644  where the running gateway listens (for the CLI)
//     entities.json          0600  who is who for the policy (senders, users, groups, agents)
//     policies/*.cedar       the owner's own policies (besides the shipped ones)
//     state/sessions/        transcripts, one JSON-lines file per session key
//     state/audit/           the audit log (see supervisor/audit/)
//     state/snapshots/<agent>.git  workspace snapshots for rollback (outside the workspace)
//     state/pairing.json     pending pairing codes
//     state/untrusted/<agent>.json  workspace files untrusted content wrote (see taint.h)
//     state/browser/<agent>/ the browser's profile (cookies, storage) of one agent, 0700
//     workspace/<agent>/     the agent's workspace (the only host directory tools see)
//     run/egress/            0700  the egress broker's sockets, one per worker (supervisor/egress/)

#pragma once

#include <string>
#include <sys/types.h>

namespace chitin {

struct HomeLayout {
  std::string root;
  std::string configPath() const { return root + "/chitin.conf"; }
  std::string tokenPath() const { return root + "/gateway.token"; }
  std::string urlPath() const { return root + "/gateway.url"; }
  std::string stateDir() const { return root + "/state"; }
  std::string sessionsDir() const { return root + "/state/sessions"; }
  std::string workspaceDir(const std::string& agent) const { return root + "/workspace/" + agent; }
  std::string entitiesPath() const { return root + "/entities.json"; }
  std::string policiesDir() const { return root + "/policies"; }
  std::string auditDir() const { return root + "/state/audit"; }
  std::string snapshotsDir(const std::string& agent) const {
    return root + "/state/snapshots/" + agent + ".git";
  }
  std::string pairingPath() const { return root + "/state/pairing.json"; }
  // Runtime sockets: the egress broker's, one per worker (recreated at every start).
  std::string egressSocketDir() const { return root + "/run/egress"; }
  // The memory worker's state (its derived index): one directory per agent.
  std::string memoryStateDir(const std::string& agent) const {
    return stateDir() + "/memory/" + agent;
  }
  std::string untrustedFilesPath(const std::string& agent) const {
    return root + "/state/untrusted/" + agent + ".json";
  }
};

// What writeFileAtomically promises. SYNCED: after a crash or power loss the file holds either
// the old or the new content (the file and its directory are fsync'd). RENAMED: a reader sees
// the old content or the new, whole, but a power loss may leave either, or an empty file; for a
// file that describes the running process and is written again by every start.
enum class Durability { SYNCED, RENAMED };

// Writes `content` to `path` via a temporary file and rename. Throws std::runtime_error.
void writeFileAtomically(const std::string& path, const std::string& content, mode_t mode,
                         Durability durability = Durability::SYNCED);

// $CHITIN_HOME, else ~/.chitin of `homeDirOfUser` (the service user's home), else of $HOME.
std::string defaultHomePath(const std::string& serviceUserHome);

// Creates missing directories (0700) for the layout and the agent workspace. Throws
// std::runtime_error naming the path on failure.
void ensureHomeLayout(const HomeLayout& home, const std::string& agent);

// Reads gateway.token, creating it (32 random bytes, hex, mode 0600) when missing. A token file
// that is readable by group or others is refused: someone could have copied it.
std::string loadOrCreateToken(const HomeLayout& home);

// Writes gateway.url atomically, not synced: it names a running gateway's address, which a
// power loss ends too, and every start writes it again before clients may read it. (Its two
// fsyncs took ~1 ms of the start, on the way to accepting the first client.)
void writeGatewayUrl(const HomeLayout& home, const std::string& url);

struct ServiceUser {
  uid_t uid;
  gid_t gid;
  std::string name;
  std::string homeDir;
};

// Looks up `name` (throws if unknown or if it is root).
ServiceUser lookupServiceUser(const std::string& name);

// Gives `root` and everything beneath it to uid:gid (symlinks themselves, never their targets),
// walking by file descriptor so that nothing renamed or swapped for a symlink meanwhile can
// redirect it, and changing only what has another owner (an unchanged file keeps its ctime).
// Does not descend past MAX_HAND_DEPTH levels (logged). Throws std::runtime_error naming the
// path it could not open, list, stat or change.
constexpr size_t MAX_HAND_DEPTH = 256;
void handTreeTo(const std::string& root, uid_t uid, gid_t gid);

// If running as root: hands `home` (recursively, handTreeTo) to `user`, then drops to it for good
// (supplementary groups, gid, uid) and verifies root cannot be regained. Must run before any
// thread or worker is started. Throws std::runtime_error on any failure.
void dropRootTo(const ServiceUser& user, const std::string& home);

// Root acting on a home that belongs to another user (the service user) becomes that user
// first (becomeUser), so every file written is the service user's and every worker runs as that
// user. Does nothing when not root or when the home is root's. Throws std::runtime_error when
// the owner has no name.
void becomeHomeOwner(const std::string& homeDir);

// Only the drop (no chown): when running as root, becomes `user` for good and verifies root
// cannot be regained; sets HOME and USER. Throws std::runtime_error on any failure. (`chitin
// channels add` run by root for the service user's home, after reading the token.)
void becomeUser(const ServiceUser& user);

}  // namespace chitin
