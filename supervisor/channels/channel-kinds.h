// SPDX-License-Identifier: Apache-2.0
// What the supervisor knows of each chat platform: the hosts its worker may reach by default,
// the options that name more hosts, and how replies thread.
// Runs in: supervisor
//
// Owns: the per-kind table. The egress allowlist of one account is built from it (its
// platform's hosts + the hosts its options name + the account's own `egress` list), so that a
// worker reaches its platform and nothing else. Platform helpers choose their option names;
// adding one that names a host is one line in the table (channel-kinds.c++) and one row in the
// README.

#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config.pb.h"
#include "rules.h"

namespace chitin::channels {

// An option whose value names a host the worker will connect to.
struct HostOption {
  enum class Form {
    URL,   // "https://host[:port]/path": the port defaults by scheme (http/ws 80, https/wss 443)
    HOST,  // "host" or "[v6]"; the port comes from `portKey`, else `defaultPort`
  };
  std::string key;  // e.g. "apiRoot"
  Form form = Form::URL;
  std::string portKey;  // HOST: the option that holds the port ("port"), or ""
  uint16_t defaultPort = 0;
};

struct KindInfo {
  std::string kind;
  std::vector<std::string> defaultHosts;  // "api.telegram.org:443"
  std::vector<HostOption> hostOptions;
  // A direct reply names the message it answers (email: In-Reply-To keeps the thread). Group
  // replies always do, so the asker sees which message was answered.
  bool replyToInDirect = false;
  // The account cannot work without a secret (a bot token, a password). Where it can (WhatsApp
  // keeps its login in its state directory; signal-cli and many IRC networks need none), a
  // missing credential file means an empty credential.
  bool credentialRequired = true;
};

// The entry for `kind`, or nullptr for a kind chitin does not know.
const KindInfo* kindInfo(const std::string& kind);
const std::vector<KindInfo>& allKinds();

// Thrown when an account cannot be set up (a bad option value, an unreadable credential). The
// message names the account and the setting, and says how to fix it; it never holds a secret.
struct AccountError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The egress allowlist of `account` (kind already validated by the config), built with the
// broker's own rules (supervisor/egress/allowlists.h): its platform's default hosts, the hosts
// its options name (an IP literal or localhost there counts as the owner naming a private
// address on purpose; ws:// and wss:// URLs count as http:// and https://), and its `egress`
// entries (private only when listed in egress.allow_private). Each rule says where it came
// from; the same host:port twice is one rule. Throws AccountError naming the setting.
std::vector<egress::Rule> egressRules(const config::ChannelAccountConfig& account,
                                      const config::EgressConfig& egress);

}  // namespace chitin::channels
