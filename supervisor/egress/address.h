// SPDX-License-Identifier: Apache-2.0
// What kind of address a resolved IPv4/IPv6 address is: public, or one of the classes a worker
// must not reach (loopback, private, link-local, metadata, CGNAT, multicast...). A pure module.
// Runs in: supervisor
//
// Judged on the binary address (a sockaddr from the resolver), never on how a host was
// spelled: "2130706433", "0177.0.0.1", "0x7f.1", "127.1" and "::ffff:127.0.0.1" all arrive
// here as 127.0.0.1. IPv6 forms that carry an IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64
// 64:ff9b::/96, 6to4 2002::/16) are judged by the IPv4 address inside them; the deprecated
// IPv4-compatible ::/96, Teredo and the other IETF assignments are refused whole; IPv6 is public
// only inside global unicast 2000::/3.

#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <string>

namespace chitin::egress {

enum class AddressClass {
  PUBLIC,
  UNSPECIFIED,    // 0.0.0.0/8, :: (connect() to it reaches this host)
  LOOPBACK,       // 127.0.0.0/8, ::1
  PRIVATE,        // RFC 1918, fc00::/7 (ULA), fec0::/10, 64:ff9b:1::/48 (local NAT64)
  SHARED,         // 100.64.0.0/10 (carrier-grade NAT)
  LINK_LOCAL,     // 169.254.0.0/16, fe80::/10
  METADATA,       // 169.254.169.254, fd00:ec2::254 (cloud instance metadata)
  MULTICAST,      // 224.0.0.0/4, ff00::/8
  BROADCAST,      // 255.255.255.255
  RESERVED,       // 192.0.0.0/24, 240.0.0.0/4, ::/96, 100::/64, 2001::/23, outside 2000::/3...
  DOCUMENTATION,  // 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20
  BENCHMARKING,   // 198.18.0.0/15, 2001:2::/48
};

struct Classification {
  AddressClass kind = AddressClass::RESERVED;
  const char* name = "";  // "loopback", "private (RFC 1918)", ... for messages and the audit
  // Whether the owner may allow it for an exact host:port (privateOk). Never for unspecified,
  // multicast and broadcast: no TCP peer lives there, and 0.0.0.0 means "this host".
  bool allowable = false;
  bool isPublic() const { return kind == AddressClass::PUBLIC; }
};

Classification classifyV4(uint32_t hostOrder);
Classification classifyV6(const in6_addr& address);
// AF_INET or AF_INET6; anything else is RESERVED.
Classification classify(const sockaddr* address);

// The sockaddr for an IPv4 dotted quad or an IPv6 literal (inet_pton's spellings only) and
// `port`; false for anything else.
bool literalAddress(const std::string& text, uint16_t port, sockaddr_storage& out);

// "93.184.216.34:443" / "[2606:2800::1]:443".
std::string describeAddress(const sockaddr* address);

}  // namespace chitin::egress
