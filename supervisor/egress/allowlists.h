// SPDX-License-Identifier: Apache-2.0
// Each worker's egress allowlist, computed from chitin.conf: one place shared by the supervisor
// (which opens the worker's endpoint with it) and `chitin sandbox explain` (which shows it).
// Runs in: supervisor (and the `chitin sandbox explain` command)

#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "config.pb.h"
#include "rules.h"

namespace chitin::egress {

// The model worker's allowlist: exactly its base URL's host:port. Empty when no base URL.
std::vector<Rule> modelRules(const std::string& baseUrl, const config::EgressConfig& egress);

// A channel account's allowlist: `platform` (its platform's own hosts, from the channel code,
// e.g. "api.telegram.org:443"; privateOk only through egress.allow_private) and the account's
// `egress` entries and any URL setting the owner wrote (`ownerUrls`: option name -> URL), each
// through ownerRule. Throws RuleError naming a bad entry.
std::vector<Rule> channelRules(const config::ChannelAccountConfig& account,
                               const std::vector<std::string>& platform,
                               const std::vector<std::pair<std::string, std::string>>& ownerUrls,
                               const config::EgressConfig& egress);

// The hosts a channel platform's own code needs ("api.telegram.org:443"), by kind; the channel
// code supplies it (empty for a kind it does not know).
using PlatformHosts = std::function<std::vector<std::string>(const std::string& kind)>;

// What `chitin sandbox explain PROFILE` prints about egress: each worker the profile runs with
// its rules and where each came from, or a line saying why none is known. `modelBaseUrl` is
// the resolved base URL (config and environment). Never throws: a bad setting is shown as such.
std::string explainAllowlists(const std::string& profile, const config::ChitinConfig& config,
                              const std::string& modelBaseUrl, const PlatformHosts& platformHosts);

}  // namespace chitin::egress
