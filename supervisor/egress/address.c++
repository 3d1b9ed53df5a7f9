// SPDX-License-Identifier: Apache-2.0
// Address classification (see address.h). The ranges are IANA's special-purpose registries
// (RFC 6890 and its updates) plus the cloud metadata addresses.
// Runs in: supervisor

#include "address.h"

#include <arpa/inet.h>
#include <string.h>

namespace chitin::egress {

namespace {

struct V4Range {
  uint32_t base;
  int prefix;
  AddressClass kind;
  const char* name;
};

constexpr uint32_t v4(int a, int b, int c, int d) {
  return (uint32_t(a) << 24) | (uint32_t(b) << 16) | (uint32_t(c) << 8) | uint32_t(d);
}

// Most specific first: the first match wins.
const V4Range V4_RANGES[] = {
    {v4(169, 254, 169, 254), 32, AddressClass::METADATA, "cloud metadata (169.254.169.254)"},
    {v4(255, 255, 255, 255), 32, AddressClass::BROADCAST, "broadcast"},
    {v4(0, 0, 0, 0), 8, AddressClass::UNSPECIFIED, "\"this network\" (0.0.0.0/8)"},
    {v4(10, 0, 0, 0), 8, AddressClass::PRIVATE, "private (10.0.0.0/8)"},
    {v4(100, 64, 0, 0), 10, AddressClass::SHARED, "carrier-grade NAT (100.64.0.0/10)"},
    {v4(127, 0, 0, 0), 8, AddressClass::LOOPBACK, "loopback (127.0.0.0/8)"},
    {v4(169, 254, 0, 0), 16, AddressClass::LINK_LOCAL, "link-local (169.254.0.0/16)"},
    {v4(172, 16, 0, 0), 12, AddressClass::PRIVATE, "private (172.16.0.0/12)"},
    {v4(192, 0, 0, 0), 24, AddressClass::RESERVED, "IETF protocol assignments (192.0.0.0/24)"},
    {v4(192, 0, 2, 0), 24, AddressClass::DOCUMENTATION, "documentation (192.0.2.0/24)"},
    {v4(192, 88, 99, 0), 24, AddressClass::RESERVED, "6to4 relay anycast (192.88.99.0/24)"},
    {v4(192, 168, 0, 0), 16, AddressClass::PRIVATE, "private (192.168.0.0/16)"},
    {v4(198, 18, 0, 0), 15, AddressClass::BENCHMARKING, "benchmarking (198.18.0.0/15)"},
    {v4(198, 51, 100, 0), 24, AddressClass::DOCUMENTATION, "documentation (198.51.100.0/24)"},
    {v4(203, 0, 113, 0), 24, AddressClass::DOCUMENTATION, "documentation (203.0.113.0/24)"},
    {v4(224, 0, 0, 0), 4, AddressClass::MULTICAST, "multicast (224.0.0.0/4)"},
    {v4(240, 0, 0, 0), 4, AddressClass::RESERVED, "reserved (240.0.0.0/4)"},
};

bool allowable(AddressClass kind) {
  return kind != AddressClass::UNSPECIFIED && kind != AddressClass::MULTICAST &&
         kind != AddressClass::BROADCAST;
}

Classification make(AddressClass kind, const char* name) {
  return Classification{kind, name, allowable(kind)};
}

struct V6Range {
  uint8_t bytes[16];
  int prefix;
  AddressClass kind;
  const char* name;
};

bool inV6(const in6_addr& a, const uint8_t* base, int prefix) {
  int full = prefix / 8;
  if (memcmp(a.s6_addr, base, full) != 0) return false;
  int bits = prefix % 8;
  if (bits == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - bits));
  return (a.s6_addr[full] & mask) == (base[full] & mask);
}

// Checked after the forms embedding IPv4 and the exact addresses; most specific first.
const V6Range V6_RANGES[] = {
    {{0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54},
     128,
     AddressClass::METADATA,
     "cloud metadata (fd00:ec2::254)"},
    {{0x00, 0x64, 0xff, 0x9b, 0x00, 0x01},
     48,
     AddressClass::PRIVATE,
     "local-use NAT64 (64:ff9b:1::/48)"},
    {{0x01, 0x00}, 64, AddressClass::RESERVED, "discard-only (100::/64)"},
    {{0x20, 0x01, 0x00, 0x02, 0x00, 0x00},
     48,
     AddressClass::BENCHMARKING,
     "benchmarking (2001:2::/48)"},
    {{0x20, 0x01, 0x00, 0x00},
     23,
     AddressClass::RESERVED,
     "IETF protocol assignments, Teredo (2001::/23)"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, AddressClass::DOCUMENTATION, "documentation (2001:db8::/32)"},
    {{0x3f, 0xff}, 20, AddressClass::DOCUMENTATION, "documentation (3fff::/20)"},
    {{0xfc}, 7, AddressClass::PRIVATE, "unique local (fc00::/7)"},
    {{0xfe, 0x80}, 10, AddressClass::LINK_LOCAL, "link-local (fe80::/10)"},
    {{0xfe, 0xc0}, 10, AddressClass::PRIVATE, "site-local (fec0::/10)"},
    {{0xff}, 8, AddressClass::MULTICAST, "multicast (ff00::/8)"},
};

uint32_t embeddedV4(const in6_addr& a, int offset) {
  return (uint32_t(a.s6_addr[offset]) << 24) | (uint32_t(a.s6_addr[offset + 1]) << 16) |
         (uint32_t(a.s6_addr[offset + 2]) << 8) | uint32_t(a.s6_addr[offset + 3]);
}

}  // namespace

Classification classifyV4(uint32_t address) {
  for (auto& range : V4_RANGES) {
    uint32_t mask = range.prefix == 0 ? 0 : ~uint32_t(0) << (32 - range.prefix);
    if ((address & mask) == (range.base & mask)) return make(range.kind, range.name);
  }
  return make(AddressClass::PUBLIC, "public");
}

Classification classifyV6(const in6_addr& a) {
  static const uint8_t ZERO[16] = {};
  static const uint8_t MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  static const uint8_t NAT64[12] = {0x00, 0x64, 0xff, 0x9b};
  if (memcmp(a.s6_addr, ZERO, 16) == 0) return make(AddressClass::UNSPECIFIED, "unspecified (::)");
  if (memcmp(a.s6_addr, ZERO, 15) == 0 && a.s6_addr[15] == 1) {
    return make(AddressClass::LOOPBACK, "loopback (::1)");
  }
  // Forms that carry an IPv4 address: the kernel (or a NAT64/6to4 gateway) delivers to that
  // IPv4 address, so it decides. Its class name is kept, e.g. "loopback (127.0.0.0/8)".
  if (memcmp(a.s6_addr, MAPPED, 12) == 0) return classifyV4(embeddedV4(a, 12));
  if (memcmp(a.s6_addr, NAT64, 12) == 0) return classifyV4(embeddedV4(a, 12));
  if (a.s6_addr[0] == 0x20 && a.s6_addr[1] == 0x02) return classifyV4(embeddedV4(a, 2));
  if (memcmp(a.s6_addr, ZERO, 12) == 0) {
    return make(AddressClass::RESERVED, "IPv4-compatible (::/96, deprecated)");
  }
  for (auto& range : V6_RANGES) {
    if (inV6(a, range.bytes, range.prefix)) return make(range.kind, range.name);
  }
  if ((a.s6_addr[0] & 0xe0) != 0x20) {
    return make(AddressClass::RESERVED, "not global unicast (outside 2000::/3)");
  }
  return make(AddressClass::PUBLIC, "public");
}

Classification classify(const sockaddr* address) {
  if (address->sa_family == AF_INET) {
    return classifyV4(ntohl(reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr));
  }
  if (address->sa_family == AF_INET6) {
    return classifyV6(reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr);
  }
  return make(AddressClass::RESERVED, "not an IP address");
}

bool literalAddress(const std::string& text, uint16_t port, sockaddr_storage& out) {
  out = sockaddr_storage{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
  if (inet_pton(AF_INET, text.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    return true;
  }
  if (inet_pton(AF_INET6, text.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    return true;
  }
  return false;
}

std::string describeAddress(const sockaddr* address) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (address->sa_family == AF_INET) {
    auto* in = reinterpret_cast<const sockaddr_in*>(address);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (address->sa_family == AF_INET6) {
    auto* in = reinterpret_cast<const sockaddr_in6*>(address);
    inet_ntop(AF_INET6, &in->sin6_addr, text, sizeof(text));
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(in->sin6_port));
  }
  return "(family " + std::to_string(address->sa_family) + ")";
}

}  // namespace chitin::egress
