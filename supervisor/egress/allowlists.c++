// SPDX-License-Identifier: Apache-2.0
// Each worker's egress allowlist from chitin.conf (see allowlists.h).
// Runs in: supervisor (and the `chitin sandbox explain` command)

#include "allowlists.h"

#include <sstream>

namespace chitin::egress {

std::vector<Rule> modelRules(const std::string& baseUrl, const config::EgressConfig& egress) {
  if (baseUrl.empty()) return {};
  Rule rule = ownerRule(urlRule(baseUrl, "model base URL"), egress);
  rule.origin = "model.base_url";
  return {rule};
}

std::vector<Rule> channelRules(const config::ChannelAccountConfig& account,
                               const std::vector<std::string>& platform,
                               const std::vector<std::pair<std::string, std::string>>& ownerUrls,
                               const config::EgressConfig& egress) {
  std::string where = "channels account " + account.kind() + ":" + account.account();
  std::vector<Rule> rules;
  for (auto& entry : platform) {
    Rule rule = parseRule(entry, where + " (platform)", false);
    rule.privateOk = listedPrivate(rule, egress);
    rule.origin = account.kind() + " platform";
    rules.push_back(rule);
  }
  for (auto& [option, url] : ownerUrls) {
    Rule rule = ownerRule(urlRule(url, where + " option " + option), egress);
    rule.origin = where + " option " + option;
    rules.push_back(rule);
  }
  for (auto& entry : account.egress()) {
    Rule rule = ownerRule(parseRule(entry, where + " egress", false), egress);
    rule.origin = where + " egress";
    rules.push_back(rule);
  }
  return rules;
}

namespace {

void listRules(std::ostringstream& out, const std::string& worker, const std::vector<Rule>& rules) {
  out << "  " << worker << ":";
  if (rules.empty()) out << " nothing (every connection is refused)";
  out << "\n";
  for (auto& rule : rules) {
    out << "    " << rule.text() << "  (" << rule.origin
        << (rule.privateOk ? "; a private address is allowed for it" : "") << ")\n";
  }
}

}  // namespace

std::string explainAllowlists(const std::string& profile, const config::ChitinConfig& config,
                              const std::string& modelBaseUrl, const PlatformHosts& platformHosts) {
  std::ostringstream out;
  out << "egress allowlists (from chitin.conf; every resolved address is checked, the gateway's "
         "port is always refused):\n";
  try {
    if (profile == "model") {
      listRules(out, "model", modelRules(modelBaseUrl, config.egress()));
      return out.str();
    }
    const std::string prefix = "channel-";
    if (profile.rfind(prefix, 0) == 0) {
      std::string kind = profile.substr(prefix.size());
      bool any = false;
      for (auto& account : config.channels().account()) {
        if (account.kind() != kind || account.disabled()) continue;
        any = true;
        listRules(
            out, "channel:" + kind + ":" + account.account(),
            channelRules(account, platformHosts ? platformHosts(kind) : std::vector<std::string>{},
                         {}, config.egress()));
      }
      if (!any) out << "  no enabled " << kind << " account in chitin.conf\n";
      return out.str();
    }
  } catch (const RuleError& e) {
    out << "  cannot be computed: " << e.what() << "\n";
    return out.str();
  }
  out << "  none: this profile's workers are given no egress socket\n";
  return out.str();
}

}  // namespace chitin::egress
