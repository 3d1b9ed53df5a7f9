// SPDX-License-Identifier: Apache-2.0
// `chitin channels status|login` against the fake gateway.
// Runs in: test harness

#include "channel-commands.h"

#include <doctest/doctest.h>

#include <map>
#include <sstream>

#include "fake-gateway-fixture.h"

namespace chitin::cli {
namespace {

using testing::FakeGateway;

using testing::Run;

Run channels(const FakeGateway& fake, std::vector<std::string> args,
             std::vector<std::string>* drawn = nullptr) {
  std::map<std::string, std::string> vars = {{"CHITIN_GATEWAY_URL", fake.url()},
                                             {"CHITIN_GATEWAY_TOKEN", "secret-token"},
                                             {"CHITIN_HOME", fake.dir + "/no-home"},
                                             {"USER", "alice"}};
  std::ostringstream out, err;
  RemoteContext ctx{[vars](const std::string& name) -> std::optional<std::string> {
                      auto it = vars.find(name);
                      return it == vars.end() ? std::nullopt : std::optional(it->second);
                    },
                    out, err};
  int code = runChannelsCommand(args, ctx, [&](const std::string& payload, std::ostream& o) {
    if (drawn) drawn->push_back(payload);
    o << "[qr " << payload << "]\n";
    return true;
  });
  return {code, out.str(), err.str()};
}

TEST_CASE("channels status: one line per account, the worker's words escaped; 1 if one failed") {
  FakeGateway fake;
  Run r = channels(fake, {"status"});
  CHECK(r.code == EXIT_FAILED);
  CHECK(r.out.find("telegram/default       connected      @chitin_bot\n") == 0);
  CHECK(r.out.find("    may reach api.telegram.org:443 (telegram)\n") != std::string::npos);
  CHECK(r.out.find("irc/libera             failed         -  (no worker running)\n") !=
        std::string::npos);
  CHECK(r.out.find("restarts 3, last exit: exited with status 1") != std::string::npos);
  CHECK(r.out.find('\x1b') == std::string::npos);
  CHECK(r.out.find("\u202e") == std::string::npos);
  Run j = channels(fake, {"status", "--json"});
  CHECK(j.out.find("\"kind\": \"telegram\"") != std::string::npos);
}

TEST_CASE("channels login: every new QR code is drawn until the account is connected") {
  FakeGateway fake;
  std::vector<std::string> drawn;
  Run r = channels(fake, {"login", "whatsapp"}, &drawn);
  CHECK(r.code == EXIT_OK);
  CHECK(drawn == std::vector<std::string>{"QR-1", "QR-2"});
  CHECK(r.out.find("[qr QR-2]\nlogged in\n") != std::string::npos);

  Run missing = channels(fake, {"login", "telegram"});
  CHECK(missing.code == EXIT_FAILED);
  CHECK(missing.err.find("no channel account x/default is configured") != std::string::npos);
  CHECK(channels(fake, {"login"}).code == EXIT_USAGE);
  CHECK(channels(fake, {"frob"}).code == EXIT_USAGE);
}

TEST_CASE("channels login: qrencode draws the payload it got on stdin") {
  std::ostringstream out;
  if (!renderQrWithQrencode("2@abc,def", out)) {
    MESSAGE("qrencode is not installed: skipped");
    return;
  }
  CHECK(out.str().find("\xe2\x96\x88") != std::string::npos);  // full blocks
}

}  // namespace
}  // namespace chitin::cli
