// SPDX-License-Identifier: Apache-2.0
// The owner's resolver overrides: the file format, answers in sequence, everything else passed
// on, and the broker still judging what the file answers.
// Runs in: tests

#include "hosts-file-resolver.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include "address.h"
#include "broker-test-fixture.h"
#include "rules.h"

namespace chitin::egress {

using namespace testing;

TEST_CASE("hosts file: names with answer sequences; bad lines name the file and line") {
  HostsFile file = parseHostsFile(
      "# tests\nWWW.Test.  127.0.0.1\nrebind.test 93.184.216.34 127.0.0.1  # then loopback\n"
      "two.test 127.0.0.1,::1\n\n",
      "hosts");
  REQUIRE(file.answers.size() == 3);
  CHECK(file.answers["www.test"] == std::vector<std::vector<std::string>>{{"127.0.0.1"}});
  CHECK(file.answers["rebind.test"].size() == 2);
  CHECK(file.answers["two.test"][0] == std::vector<std::string>{"127.0.0.1", "::1"});
  auto error = [](const std::string& text) {
    try {
      parseHostsFile(text, "hosts");
    } catch (const RuleError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error("a.test\n") == "hosts:1: \"a.test\" has no address");
  CHECK(error("\na.test 127.1\n") ==
        "hosts:2: \"127.1\" is not an IPv4 or IPv6 address (expected <name> "
        "<address>[,<address>...] ...)");
  CHECK(error("a.test 1.2.3.4\nA.test 1.2.3.4\n") == "hosts:2: \"A.test\" is listed twice");
  CHECK(error("1.2.3.4 1.2.3.4\n") == "hosts:1: \"1.2.3.4\" is an address, expected a name");
  CHECK(error("a b.test 1.2.3.4\n").find("hosts:1: \"b.test\" is not an IPv4") == 0);
}

TEST_CASE("hosts file resolver: the n-th lookup gets the n-th answer; others fall through") {
  LoopThread loop;
  ScriptedResolver fallback(loop.loop());
  fallback.script("other.test", {{"93.184.216.34"}});
  HostsFileResolver resolver(
      loop.loop(), parseHostsFile("rebind.test 93.184.216.34 127.0.0.1\n", "hosts"), fallback);
  auto lookup = [&](const std::string& host) {
    std::string got = "pending";
    loop.run([&] {
      resolver.resolve(host, 443, [&](Resolved r) {
        got = r.addresses.empty() ? "error"
                                  : describeAddress(reinterpret_cast<sockaddr*>(&r.addresses[0]));
      });
    });
    for (int i = 0; i < 200 && got == "pending"; i++) {
      usleep(5000);
      loop.run([] {});
    }
    return got;
  };
  CHECK(lookup("rebind.test") == "93.184.216.34:443");
  CHECK(lookup("rebind.test") == "127.0.0.1:443");
  CHECK(lookup("rebind.test") == "127.0.0.1:443");  // the last answer repeats
  CHECK(lookup("other.test") == "93.184.216.34:443");
  CHECK(fallback.lookups("other.test") == 1);
  CHECK(fallback.lookups("rebind.test") == 0);
}

}  // namespace chitin::egress
