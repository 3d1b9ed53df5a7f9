// SPDX-License-Identifier: Apache-2.0
// A worker's egress allowlist: host normalization, "host:port" rules, matching, and which of
// them the owner's settings make privateOk.
// Runs in: supervisor
//
// Matching is on text the owner wrote and text the worker sent, both normalized the same way:
// lower-case, one trailing dot removed, an internationalized name converted to its ASCII
// (punycode) form, an IP literal in its canonical spelling (inet_ntop). Whether the address a
// name resolves to may be reached is decided afterwards, on the resolved address itself
// (address.h), so no spelling of a host can change that.

#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.pb.h"

namespace chitin::egress {

// A rule or URL the owner wrote that is not one; the message names the setting and the text and
// says what was expected (user-facing, like ConfigError).
struct RuleError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct Rule {
  std::string host;  // lower-case, no trailing dot; "*.example.com" matches subdomains only
  uint16_t port = 0;
  // The owner named this destination explicitly as a private one (egress.allow_private, or an
  // IP literal / "localhost" they wrote in a setting): loopback/private addresses are allowed
  // for it. The gateway's own port never is.
  bool privateOk = false;
  std::string origin;  // where the rule came from, for `chitin sandbox explain`: "model.base_url"
  // "Any public host" on `port` (publicWebRules): `host` is ignored and every name or address
  // matches; never privateOk, so whatever the name resolves to must be a public address.
  bool anyPublic = false;

  std::string text() const;  // "host:port" ("[v6]:port" for an IPv6 literal)
};

// The canonical form of a host name or IP literal (see the top of this file), or nullopt with
// `why` set when it is not one: empty, too long (> 253), a label empty or over 63 bytes, a
// character outside [a-z0-9-_.], bad UTF-8 or a name IDNA refuses. IPv6 literals come without
// brackets. A "*." prefix is not accepted here (rules only).
std::optional<std::string> normalizeHost(const std::string& host, std::string* why = nullptr);

// Whether `host` (normalized) is an IPv4 or IPv6 literal in canonical form.
bool isIpLiteral(const std::string& host);

// Parses "host:port" / "[v6]:port" / "*.suffix:port"; throws RuleError naming `what` and the text.
Rule parseRule(const std::string& text, const std::string& what, bool privateOk);

// Whether `rule` admits `host` (normalized) and `port`. "*.example.com" admits
// "a.example.com" and "a.b.example.com", never "example.com".
bool matches(const Rule& rule, const std::string& host, uint16_t port);

// The "any public host" rules for workers that browse the web (pages load subresources from
// anywhere): ports 80 and 443 only, never privateOk. The broker's address check is what keeps
// them public: loopback, private, link-local, metadata and the gateway's port stay refused
// whatever the name or its spelling.
std::vector<Rule> publicWebRules(const std::string& origin);

// The first rule admitting host:port, if any; one naming the host before an "any public host"
// one.
const Rule* findRule(const std::vector<Rule>& rules, const std::string& host, uint16_t port);

// The host and port of an http:// or https:// URL (default ports 80/443), normalized; throws
// RuleError naming `what` on anything else.
Rule urlRule(const std::string& url, const std::string& what);

// Whether host:port of `rule` is listed in egress.allow_private.
bool listedPrivate(const Rule& rule, const config::EgressConfig& egress);

// A destination the owner wrote in a setting (`origin` names it): privateOk when its host is an
// IP literal or "localhost", or its host:port is listed in egress.allow_private.
Rule ownerRule(Rule rule, const config::EgressConfig& egress);

// Checks every egress.allow_private entry and the resolver_hosts_file (an absolute path to a
// file that parses); throws RuleError naming the bad one.
void checkEgressConfig(const config::EgressConfig& egress);

}  // namespace chitin::egress
