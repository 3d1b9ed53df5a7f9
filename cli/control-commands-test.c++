// SPDX-License-Identifier: Apache-2.0
// `chitin approvals list|show` against the fake gateway: the owner sees every approval escaped,
// and `show` prints the whole call.
// Runs in: test harness

#include "control-commands.h"

#include <doctest/doctest.h>

#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "fake-gateway-fixture.h"
#include "test-text.h"

namespace chitin::cli {
namespace {

using testing::FakeGateway;

using testing::Run;

Run control(const FakeGateway& fake, std::vector<std::string> args) {
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
  std::string command = args.at(0);
  args.erase(args.begin());
  int code = runControlCommand(command, args, ctx);
  return {code, out.str(), err.str()};
}

using chitin::testing::has;

using testing::checkInert;

const std::string PADDED = "ls -la notes\\[200 spaces]; rm -rf notes .git";

TEST_CASE("approvals list: every field escaped; display text from the gateway is not re-escaped") {
  FakeGateway fake;
  Run r = control(fake, {"approvals", "list"});
  CHECK(r.code == EXIT_OK);
  checkInert(r.out);
  CHECK(has(r.out,
            "0a1b2c3d4e5f6071  code QWE234  agent:main:cli:direct:alice  expires "
            "2025-01-02T03:09:05Z\n"
            "    write notes/x.sh (4019 bytes, 3 lines): #!/bin/sh\\nrm -rf ~\\n###… [+3900 bytes "
            "not shown; chitin approvals show 0a1b2c3d4e5f6071]\n"));
  // The second approval's texts still carry raw controls and padding: shown escaped.
  CHECK(has(r.out, "ffee\\x1b[2J  code ZXC567  agent:main:telegram:direct:\\u202e99  expires"));
  CHECK(has(r.out, "    exec: " + PADDED + "\\x1b]52;c;ZXZpbA==\\x07\n"));
}

TEST_CASE("approvals show: the whole call, by id or code; unknown ids exit 1") {
  FakeGateway fake;
  Run r = control(fake, {"approvals", "show", "0a1b2c3d4e5f6071"});
  CHECK(r.code == EXIT_OK);
  checkInert(r.out);
  CHECK(has(r.out, "approval 0a1b2c3d4e5f6071  code QWE234\n"));
  CHECK(has(r.out, "session   agent:main:cli:direct:alice\n"));
  CHECK(has(r.out, "principal User::\"owner\"\n"));
  CHECK(has(r.out, "policies  tainted-asks\n"));
  CHECK(has(r.out,
            "tool: write\npath: notes/x.sh\ncontent: 4019 bytes, 3 lines, no newline at the "
            "end\n  | #!/bin/sh\n  | rm -rf ~\n  | " +
                std::string(4000, '#') + "\n"));
  CHECK(has(r.out, "approve: chitin approvals approve 0a1b2c3d4e5f6071"));
  // By code, case-insensitively; a gateway's raw controls are escaped here too.
  r = control(fake, {"approvals", "show", "zxc567"});
  CHECK(r.code == EXIT_OK);
  checkInert(r.out);
  CHECK(has(r.out, "tool: exec\ncommand: " + PADDED + "\\x1b[2J\n"));
  r = control(fake, {"approvals", "show", "nope"});
  CHECK(r.code == EXIT_FAILED);
  CHECK(has(r.err, "no pending approval with id or code \"nope\""));
  r = control(fake, {"approvals", "show"});
  CHECK(r.code == EXIT_USAGE);
}

TEST_CASE("approvals show --json: the approval as JSON, printable ASCII only") {
  FakeGateway fake;
  Run r = control(fake, {"approvals", "show", "ZXC567", "--json"});
  CHECK(r.code == EXIT_OK);
  for (unsigned char c : r.out) CHECK(((c >= 0x20 && c < 0x7f) || c == '\n'));
  nlohmann::json j = nlohmann::json::parse(r.out);
  CHECK(j["code"] == "ZXC567");
  CHECK(j["sessionKey"] == "agent:main:telegram:direct:\u202e99");
}

}  // namespace
}  // namespace chitin::cli
