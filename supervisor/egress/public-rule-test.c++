// SPDX-License-Identifier: Apache-2.0
// The "any public host" rule kind and replacing an endpoint's rules: a public rule admits any
// name on 80/443 and still refuses every spelling of a private, loopback or metadata address,
// resolved by the real system resolver (glibc reads "2130706433" and "0177.0.0.1" as 127.0.0.1).
// Runs in: tests

#include <doctest/doctest.h>
#include <unistd.h>

#include "audit-log.h"
#include "broker-test-fixture.h"

namespace chitin::egress {

using namespace testing;

namespace {

// A broker with the system resolver (the fixture's is scripted).
struct SystemFixture {
  TempDir home;
  std::unique_ptr<audit::AuditLog> log = audit::AuditLog::open(home.path() + "/audit");
  LoopThread loop;
  SystemResolver resolver{loop.loop()};
  std::unique_ptr<Broker> broker;
  std::unique_ptr<Endpoint> endpoint;

  explicit SystemFixture(BrokerSettings settings = {}) {
    settings.socketDir = home.path() + "/egress";
    loop.run([&] { broker = std::make_unique<Broker>(loop.loop(), settings, resolver, *log); });
  }
  ~SystemFixture() {
    loop.run([&] {
      endpoint.reset();
      broker.reset();
    });
  }
};

}  // namespace

TEST_CASE("rules: publicWebRules admits any host on 80 and 443 only, never privateOk") {
  auto rules = publicWebRules("browser");
  REQUIRE(rules.size() == 2);
  CHECK(rules[0].text() == "any public host:80");
  CHECK(rules[1].text() == "any public host:443");
  CHECK(findRule(rules, "example.com", 443) == &rules[1]);
  CHECK(findRule(rules, "127.0.0.1", 80) == &rules[0]);  // the address check refuses it later
  CHECK(findRule(rules, "example.com", 8080) == nullptr);
  CHECK(findRule(rules, "example.com", 22) == nullptr);
  CHECK_FALSE(rules[0].privateOk);
  // An exact rule is preferred over the public one: it may carry the owner's privateOk.
  rules.push_back(parseRule("nas.lan:443", "test", true));
  CHECK(findRule(rules, "nas.lan", 443) == &rules[2]);
}

TEST_CASE("broker: a public rule refuses every spelling of loopback, private and metadata") {
  SystemFixture f;
  std::string socket;
  f.loop.run([&] {
    f.endpoint = f.broker->open("web", publicWebRules("test"));
    socket = f.endpoint->socketPath();
  });
  // Each is sent as a SOCKS5 domain name, as a hostile worker would: the broker normalizes it,
  // resolves it itself and judges the address.
  const std::vector<std::pair<std::string, std::string>> forms = {
      {"127.0.0.1", "loopback"},        {"localhost", "loopback"},
      {"2130706433", "loopback"},       {"0177.0.0.1", "loopback"},
      {"0x7f.0.0.1", "loopback"},       {"127.1", "loopback"},
      {"127.0.0.1.", "loopback"},       {"::1", "loopback"},
      {"::ffff:127.0.0.1", "loopback"}, {"10.0.0.1", "private"},
      {"192.168.1.1", "private"},       {"172.16.0.1", "private"},
      {"100.64.0.1", "carrier-grade"},  {"169.254.169.254", "metadata"},
      {"fd00:ec2::254", "metadata"},    {"fe80::1", "link-local"},
      {"fc00::1", "fc00::/7"},          {"0.0.0.0", "never allowed"},
      {"64:ff9b::7f00:1", "loopback"},
  };
  for (const auto& form : forms) {
    const std::string& host = form.first;  // not a structured binding: CAPTURE's lambda takes it
    CAPTURE(host);
    auto r = socksConnect(socket, host, 80);
    CHECK(r.reply == 0x02);
    close(r.fd);
  }
  std::vector<audit::Record> records;
  for (int i = 0; i < 200 && records.size() < forms.size(); i++) {
    records = egressRecords(f.home.path() + "/audit");
    usleep(10000);
  }
  REQUIRE(records.size() == forms.size());
  for (size_t i = 0; i < forms.size(); i++) {
    CAPTURE(forms[i].first);
    CHECK(records[i].outcome().rfind("refused: resolves to ", 0) == 0);
    CHECK(records[i].outcome().find(forms[i].second) != std::string::npos);
  }
}

TEST_CASE("broker: a public rule admits any name on 443 (control) and no other port") {
  BrokerSettings settings;
  settings.handshakeTimeoutMs = 300;
  Fixture f(settings);
  // The lookup never answers: the name got past the allowlist to resolution, and no test
  // connects to a public address (the address check itself is the test above and address-test).
  f.resolver.script("public.test", {{"never"}});
  std::string socket = f.open("web", publicWebRules("test"));
  auto admitted = socksConnect(socket, "public.test", 443);
  close(admitted.fd);
  auto wrongPort = socksConnect(socket, "public.test", 8443);
  CHECK(wrongPort.reply == 0x02);
  close(wrongPort.fd);
  auto records = f.records(2);
  REQUIRE(records.size() == 2);
  // Recorded as each tunnel ends, so in either order.
  const auto& first = records[0].port() == 443 ? records[0] : records[1];
  const auto& refused = records[0].port() == 443 ? records[1] : records[0];
  CHECK(first.outcome() == "timeout: resolving the name");
  CHECK(f.resolver.lookups("public.test") == 1);
  CHECK(refused.outcome() == "refused: not in the allowlist");
}

TEST_CASE("broker: replaceRules grants exactly one host:port to an open endpoint") {
  TestServer a(TestServer::Mode::ECHO_BACK);
  TestServer b(TestServer::Mode::ECHO_BACK);
  Fixture f;
  std::string socket = f.open("web-fetch", {});
  auto none = socksConnect(socket, "127.0.0.1", a.port());
  CHECK(none.reply == 0x02);  // no standing rule: nothing
  close(none.fd);
  f.loop.run([&] { f.endpoints[0]->replaceRules({rule(local(a.port()), true)}); });
  auto first = socksConnect(socket, "127.0.0.1", a.port());
  CHECK(first.reply == 0x00);
  auto other = socksConnect(socket, "127.0.0.1", b.port());
  CHECK(other.reply == 0x02);
  close(other.fd);
  f.loop.run([&] { f.endpoints[0]->replaceRules({rule(local(b.port()), true)}); });
  auto again = socksConnect(socket, "127.0.0.1", a.port());
  CHECK(again.reply == 0x02);  // the grant moved on
  close(again.fd);
  auto second = socksConnect(socket, "127.0.0.1", b.port());
  CHECK(second.reply == 0x00);
  close(second.fd);
  // The tunnel opened under the first grant is still up (it was admitted when asked for).
  CHECK(write(first.fd, "x", 1) == 1);
  shutdown(first.fd, SHUT_WR);
  CHECK(readAll(first.fd, 3000) == "x");
  close(first.fd);
  for (int i = 0; i < 200 && b.accepted() == 0; i++) usleep(10000);  // its thread counts later
  CHECK(a.accepted() == 1);
  CHECK(b.accepted() == 1);
}

TEST_CASE("broker: an admission hook refuses a tunnel before its name is resolved") {
  TestServer echo(TestServer::Mode::ECHO_BACK);
  Fixture f;
  f.resolver.script("listed.test", {{"127.0.0.1"}});
  f.resolver.script("recorder.test", {{"127.0.0.1"}});
  std::string port = std::to_string(echo.port());
  std::string socket =
      f.open("browser", {rule("listed.test:" + port, true), rule("recorder.test:" + port, true)});
  std::vector<std::string> asked;
  f.loop.run([&] {
    f.endpoints[0]->setAdmission([&asked](const std::string& host, uint16_t p) -> std::string {
      asked.push_back(host + ":" + std::to_string(p));
      return host == "recorder.test" ? "browse of recorder.test is not allowed here" : "";
    });
  });
  auto refused = socksConnect(socket, "Recorder.TEST.", echo.port());
  CHECK(refused.reply == 0x02);
  close(refused.fd);
  // Control: the hook lets the other name through, and the tunnel connects.
  auto admitted = socksConnect(socket, "listed.test", echo.port());
  CHECK(admitted.reply == 0x00);
  close(admitted.fd);
  // A host the rules refuse never reaches the hook.
  auto unlisted = socksConnect(socket, "other.test", echo.port());
  CHECK(unlisted.reply == 0x02);
  close(unlisted.fd);
  auto records = f.records(3);
  REQUIRE(records.size() == 3);
  // The hook saw canonical names, and only those the rules admitted.
  CHECK(asked == std::vector<std::string>{"recorder.test:" + port, "listed.test:" + port});
  CHECK(f.resolver.lookups("recorder.test") == 0);  // refused before any lookup
  CHECK(f.resolver.lookups("listed.test") == 1);
  bool found = false;
  for (const auto& r : records) {
    if (r.host() == "recorder.test") {
      CHECK(r.outcome() == "refused: browse of recorder.test is not allowed here");
      found = true;
    }
  }
  CHECK(found);
  for (int i = 0; i < 200 && echo.accepted() == 0; i++) usleep(10000);
  CHECK(echo.accepted() == 1);
}

}  // namespace chitin::egress
