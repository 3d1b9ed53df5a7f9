// SPDX-License-Identifier: Apache-2.0
// The owner's resolver overrides (see hosts-file-resolver.h).
// Runs in: supervisor

#include "hosts-file-resolver.h"

#include <fstream>
#include <sstream>

#include "address.h"
#include "rules.h"

namespace chitin::egress {

namespace {

constexpr size_t MAX_FILE_BYTES = 1 << 20;
constexpr size_t MAX_ANSWERS = 64;

std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, sep)) out.push_back(part);
  if (!text.empty() && text.back() == sep) out.push_back("");
  return out;
}

}  // namespace

HostsFile parseHostsFile(const std::string& text, const std::string& what) {
  HostsFile file;
  std::istringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    number++;
    auto fail = [&](const std::string& why) {
      throw RuleError(what + ":" + std::to_string(number) + ": " + why);
    };
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string name;
    if (!(words >> name)) continue;
    std::string why;
    auto normal = normalizeHost(name, &why);
    if (!normal) fail("\"" + name + "\" is not a host name: " + why);
    if (isIpLiteral(*normal)) fail("\"" + name + "\" is an address, expected a name");
    if (file.answers.count(*normal) != 0) fail("\"" + name + "\" is listed twice");
    auto& answers = file.answers[*normal];
    std::string answer;
    while (words >> answer) {
      std::vector<std::string> addresses;
      for (const auto& address : split(answer, ',')) {
        sockaddr_storage ignored;
        if (!literalAddress(address, 0, ignored)) {
          fail("\"" + address + "\" is not an IPv4 or IPv6 address (expected <name> <address>" +
               "[,<address>...] ...)");
        }
        addresses.push_back(address);
      }
      answers.push_back(std::move(addresses));
    }
    if (answers.empty()) fail("\"" + name + "\" has no address");
    if (answers.size() > MAX_ANSWERS) fail("more than 64 answers for \"" + name + "\"");
  }
  return file;
}

HostsFile readHostsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuleError("egress.resolver_hosts_file: cannot read \"" + path + "\"");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > MAX_FILE_BYTES) {
    throw RuleError("egress.resolver_hosts_file: \"" + path + "\" is larger than 1 MiB");
  }
  return parseHostsFile(text, path);
}

void HostsFileResolver::resolve(const std::string& host, uint16_t port, Done done) {
  auto found = file_.answers.find(host);
  if (found == file_.answers.end()) return fallback_.resolve(host, port, std::move(done));
  size_t n = lookups_[host]++;
  const auto& answer = found->second[std::min(n, found->second.size() - 1)];
  Resolved resolved;
  for (const auto& text : answer) {
    sockaddr_storage address;
    if (literalAddress(text, port, address)) resolved.addresses.push_back(address);
  }
  answerLater(loop_, std::move(done), std::move(resolved));
}

}  // namespace chitin::egress
