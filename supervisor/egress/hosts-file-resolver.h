// SPDX-License-Identifier: Apache-2.0
// The owner's resolver overrides (egress.resolver_hosts_file): names answered from a file, each
// with a sequence of answers, every other name passed to the system resolver.
// Runs in: supervisor
//
// For tests and homelab overrides only, and the owner's alone (chitin.conf): it lets a test
// make "www.test" resolve to 127.0.0.1, or a name resolve to a public address on its first
// lookup and to loopback on its second (DNS rebinding). It changes what a name resolves to,
// never whether the answer may be reached: the broker classifies what this returns exactly as
// it classifies the system resolver's answers (address.h), so a loopback answer is still
// refused unless that exact host:port is in egress.allow_private.
//
// File format, one name per line, '#' starts a comment:
//   <name> <answer> [<answer> ...]
// an answer is one or more IPv4/IPv6 literals separated by commas ("127.0.0.1,::1"); the n-th
// lookup of the name gets the n-th answer, and the last one repeats from then on.

#pragma once

#include <map>
#include <string>
#include <vector>

#include "resolver.h"

namespace chitin::egress {

struct HostsFile {
  // normalized name -> its answers in order; each answer one or more address literals
  std::map<std::string, std::vector<std::vector<std::string>>> answers;
};

// Parses the file's text; throws RuleError naming `what` (the file), the line and the reason.
HostsFile parseHostsFile(const std::string& text, const std::string& what);
// Reads and parses `path`; throws RuleError naming it when it cannot be read or parsed.
HostsFile readHostsFile(const std::string& path);

class HostsFileResolver final : public Resolver {
 public:
  // `fallback` answers every name the file does not list; it must outlive this.
  HostsFileResolver(uv_loop_t* loop, HostsFile file, Resolver& fallback)
      : loop_(loop), file_(std::move(file)), fallback_(fallback) {}
  void resolve(const std::string& host, uint16_t port, Done done) override;

 private:
  uv_loop_t* loop_;
  HostsFile file_;
  Resolver& fallback_;
  std::map<std::string, size_t> lookups_;
};

}  // namespace chitin::egress
