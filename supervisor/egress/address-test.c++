// SPDX-License-Identifier: Apache-2.0
// Address classification: every spelling of a non-public address, resolved by the real
// resolver's numeric parsing, is refused by what it resolves to; public controls pass.
// Runs in: tests

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netdb.h>
#include <sys/un.h>

#include <string>

#include "address.h"

namespace chitin::egress {

namespace {

// What glibc's getaddrinfo makes of a numeric spelling (the broker's resolver parses them the
// same way), classified. "" when it is not numeric at all.
struct Judged {
  std::string address;
  Classification kind;
};

Judged judge(const std::string& spelling) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST;
  addrinfo* result = nullptr;
  int rc = getaddrinfo(spelling.c_str(), "443", &hints, &result);
  REQUIRE_MESSAGE(rc == 0, spelling, ": ", gai_strerror(rc));
  Judged judged{describeAddress(result->ai_addr), classify(result->ai_addr)};
  freeaddrinfo(result);
  return judged;
}

}  // namespace

TEST_CASE("address: every spelling of a non-public address is judged by what it resolves to") {
  struct Case {
    const char* spelling;
    AddressClass expected;
    const char* resolvesTo;
  };
  const Case cases[] = {
      // 127.0.0.1 in every spelling inet_aton accepts.
      {"127.0.0.1", AddressClass::LOOPBACK, "127.0.0.1:443"},
      {"2130706433", AddressClass::LOOPBACK, "127.0.0.1:443"},
      {"0177.0.0.1", AddressClass::LOOPBACK, "127.0.0.1:443"},
      {"0x7f.0.0.1", AddressClass::LOOPBACK, "127.0.0.1:443"},
      {"0x7f000001", AddressClass::LOOPBACK, "127.0.0.1:443"},
      {"127.1", AddressClass::LOOPBACK, "127.0.0.1:443"},
      {"127.0.1", AddressClass::LOOPBACK, "127.0.0.1:443"},
      {"127.255.255.254", AddressClass::LOOPBACK, "127.255.255.254:443"},
      {"::1", AddressClass::LOOPBACK, "[::1]:443"},
      {"0:0:0:0:0:0:0:1", AddressClass::LOOPBACK, "[::1]:443"},
      // IPv6 forms carrying an IPv4 address.
      {"::ffff:127.0.0.1", AddressClass::LOOPBACK, "[::ffff:127.0.0.1]:443"},
      {"::ffff:7f00:1", AddressClass::LOOPBACK, "[::ffff:127.0.0.1]:443"},
      {"::ffff:10.0.0.1", AddressClass::PRIVATE, "[::ffff:10.0.0.1]:443"},
      {"::ffff:169.254.169.254", AddressClass::METADATA, "[::ffff:169.254.169.254]:443"},
      {"64:ff9b::10.0.0.1", AddressClass::PRIVATE, "[64:ff9b::a00:1]:443"},
      {"64:ff9b::7f00:1", AddressClass::LOOPBACK, "[64:ff9b::7f00:1]:443"},
      {"64:ff9b::a9fe:a9fe", AddressClass::METADATA, "[64:ff9b::a9fe:a9fe]:443"},
      {"64:ff9b:1::a00:1", AddressClass::PRIVATE, "[64:ff9b:1::a00:1]:443"},
      {"64:ff9b:1:ffff::808:808", AddressClass::PRIVATE, "[64:ff9b:1:ffff::808:808]:443"},
      {"2002:7f00:1::1", AddressClass::LOOPBACK, "[2002:7f00:1::1]:443"},
      {"2002:c0a8:101::", AddressClass::PRIVATE, "[2002:c0a8:101::]:443"},
      {"::127.0.0.1", AddressClass::RESERVED, "[::127.0.0.1]:443"},
      {"::8.8.8.8", AddressClass::RESERVED, "[::8.8.8.8]:443"},
      // Unspecified: connect() to it reaches this host.
      {"0.0.0.0", AddressClass::UNSPECIFIED, "0.0.0.0:443"},
      {"0", AddressClass::UNSPECIFIED, "0.0.0.0:443"},
      {"0.1.2.3", AddressClass::UNSPECIFIED, "0.1.2.3:443"},
      {"::", AddressClass::UNSPECIFIED, "[::]:443"},
      {"::ffff:0.0.0.0", AddressClass::UNSPECIFIED, "[::ffff:0.0.0.0]:443"},
      // Private, shared, link-local, metadata.
      {"10.1.2.3", AddressClass::PRIVATE, "10.1.2.3:443"},
      {"012.1.2.3", AddressClass::PRIVATE, "10.1.2.3:443"},
      {"172.16.0.1", AddressClass::PRIVATE, "172.16.0.1:443"},
      {"172.31.255.255", AddressClass::PRIVATE, "172.31.255.255:443"},
      {"192.168.1.1", AddressClass::PRIVATE, "192.168.1.1:443"},
      {"3232235777", AddressClass::PRIVATE, "192.168.1.1:443"},
      {"100.64.0.1", AddressClass::SHARED, "100.64.0.1:443"},
      {"100.127.255.255", AddressClass::SHARED, "100.127.255.255:443"},
      {"169.254.1.1", AddressClass::LINK_LOCAL, "169.254.1.1:443"},
      {"169.254.169.254", AddressClass::METADATA, "169.254.169.254:443"},
      {"0xa9fea9fe", AddressClass::METADATA, "169.254.169.254:443"},
      {"fd00:ec2::254", AddressClass::METADATA, "[fd00:ec2::254]:443"},
      {"fc00::1", AddressClass::PRIVATE, "[fc00::1]:443"},
      {"fd12:3456::1", AddressClass::PRIVATE, "[fd12:3456::1]:443"},
      {"fec0::1", AddressClass::PRIVATE, "[fec0::1]:443"},
      {"fe80::1", AddressClass::LINK_LOCAL, "[fe80::1]:443"},
      {"febf::1", AddressClass::LINK_LOCAL, "[febf::1]:443"},
      // Multicast, broadcast, reserved, documentation, benchmarking.
      {"224.0.0.1", AddressClass::MULTICAST, "224.0.0.1:443"},
      {"239.255.255.250", AddressClass::MULTICAST, "239.255.255.250:443"},
      {"ff02::1", AddressClass::MULTICAST, "[ff02::1]:443"},
      {"255.255.255.255", AddressClass::BROADCAST, "255.255.255.255:443"},
      {"240.0.0.1", AddressClass::RESERVED, "240.0.0.1:443"},
      {"192.0.0.8", AddressClass::RESERVED, "192.0.0.8:443"},
      {"192.0.0.170", AddressClass::RESERVED, "192.0.0.170:443"},
      {"192.88.99.1", AddressClass::RESERVED, "192.88.99.1:443"},
      {"198.18.0.1", AddressClass::BENCHMARKING, "198.18.0.1:443"},
      {"198.19.255.255", AddressClass::BENCHMARKING, "198.19.255.255:443"},
      {"2001:2::1", AddressClass::BENCHMARKING, "[2001:2::1]:443"},
      {"192.0.2.1", AddressClass::DOCUMENTATION, "192.0.2.1:443"},
      {"198.51.100.7", AddressClass::DOCUMENTATION, "198.51.100.7:443"},
      {"203.0.113.9", AddressClass::DOCUMENTATION, "203.0.113.9:443"},
      {"2001:db8::1", AddressClass::DOCUMENTATION, "[2001:db8::1]:443"},
      {"3fff::1", AddressClass::DOCUMENTATION, "[3fff::1]:443"},
      {"2001::1", AddressClass::RESERVED, "[2001::1]:443"},  // Teredo
      {"100::1", AddressClass::RESERVED, "[100::1]:443"},    // discard-only
      {"1234::1", AddressClass::RESERVED, "[1234::1]:443"},  // not global unicast
      {"4000::1", AddressClass::RESERVED, "[4000::1]:443"},
      // Public controls, including the same forms around public addresses.
      {"93.184.216.34", AddressClass::PUBLIC, "93.184.216.34:443"},
      {"8.8.8.8", AddressClass::PUBLIC, "8.8.8.8:443"},
      {"134744072", AddressClass::PUBLIC, "8.8.8.8:443"},
      {"11.0.0.1", AddressClass::PUBLIC, "11.0.0.1:443"},
      {"172.32.0.1", AddressClass::PUBLIC, "172.32.0.1:443"},
      {"172.15.255.255", AddressClass::PUBLIC, "172.15.255.255:443"},
      {"100.128.0.1", AddressClass::PUBLIC, "100.128.0.1:443"},
      {"169.255.0.1", AddressClass::PUBLIC, "169.255.0.1:443"},
      {"198.20.0.1", AddressClass::PUBLIC, "198.20.0.1:443"},
      {"223.255.255.255", AddressClass::PUBLIC, "223.255.255.255:443"},
      {"2606:4700::1111", AddressClass::PUBLIC, "[2606:4700::1111]:443"},
      {"2a00:1450:4001::1", AddressClass::PUBLIC, "[2a00:1450:4001::1]:443"},
      {"::ffff:8.8.8.8", AddressClass::PUBLIC, "[::ffff:8.8.8.8]:443"},
      {"64:ff9b::808:808", AddressClass::PUBLIC, "[64:ff9b::808:808]:443"},
      {"2002:808:808::1", AddressClass::PUBLIC, "[2002:808:808::1]:443"},
  };
  for (auto& c : cases) {
    CAPTURE(c.spelling);
    auto judged = judge(c.spelling);
    CHECK(judged.address == c.resolvesTo);
    CHECK(judged.kind.kind == c.expected);
    CHECK(judged.kind.isPublic() == (c.expected == AddressClass::PUBLIC));
  }
}

TEST_CASE("address: unspecified, multicast and broadcast are never allowable; the rest may be") {
  for (const char* never : {"0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"}) {
    CAPTURE(never);
    CHECK_FALSE(judge(never).kind.allowable);
  }
  for (const char* owner :
       {"127.0.0.1", "::1", "10.0.0.1", "169.254.169.254", "fd00::1", "100.64.0.1", "198.18.0.1"}) {
    CAPTURE(owner);
    CHECK(judge(owner).kind.allowable);
  }
  CHECK(std::string(judge("10.0.0.1").kind.name) == "private (10.0.0.0/8)");
  CHECK(std::string(judge("::ffff:127.0.0.1").kind.name) == "loopback (127.0.0.0/8)");
  sockaddr_un notIp{};
  notIp.sun_family = AF_UNIX;
  CHECK(classify(reinterpret_cast<sockaddr*>(&notIp)).kind == AddressClass::RESERVED);
}

}  // namespace chitin::egress
