// SPDX-License-Identifier: Apache-2.0
// `chitin agent|status|health|sessions` against the fake gateway: output and exit codes.
// Runs in: test harness

#include "remote-commands.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "fake-gateway-fixture.h"
#include "test-text.h"

namespace chitin::cli {
namespace {

using nlohmann::json;
using testing::FakeGateway;

using testing::Run;

EnvLookup envOf(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
}

std::map<std::string, std::string> envFor(const FakeGateway& fake,
                                          std::string token = "secret-token") {
  return {{"CHITIN_GATEWAY_URL", fake.url()},
          {"CHITIN_GATEWAY_TOKEN", token},
          {"CHITIN_HOME", fake.dir + "/no-home"},
          {"USER", "alice"}};
}

template <typename F>
Run run(std::map<std::string, std::string> vars, F&& command) {
  std::ostringstream out, err;
  RemoteContext ctx{envOf(std::move(vars)), out, err};
  int code = command(ctx);
  return {code, out.str(), err.str()};
}

Run agent(std::map<std::string, std::string> vars, std::string message, bool asJson,
          std::string session = "") {
  return run(std::move(vars), [&](RemoteContext& ctx) {
    return runAgent(AgentOptions{message, session, asJson, 0}, ctx);
  });
}

using chitin::testing::has;

void writeFile(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream(path) << text;
  chmod(path.c_str(), mode);
}

TEST_CASE("settings: environment first, then $CHITIN_HOME files, then the default URL") {
  FakeGateway fake;  // only for its temporary directory
  std::string home = fake.dir;
  auto settings = [](std::map<std::string, std::string> vars) {
    return resolveConnectionSettings(envOf(std::move(vars)));
  };
  auto missing = settings({{"CHITIN_HOME", home}});
  REQUIRE(std::holds_alternative<ConfigProblem>(missing));
  CHECK(has(std::get<ConfigProblem>(missing).message, "CHITIN_GATEWAY_TOKEN"));
  CHECK(has(std::get<ConfigProblem>(missing).message, home + "/gateway.token"));

  writeFile(home + "/gateway.token", "file-token\n", 0600);
  auto fromFiles = settings({{"CHITIN_HOME", home}, {"USER", "bob"}});
  REQUIRE(std::holds_alternative<ConnectionSettings>(fromFiles));
  CHECK(std::get<ConnectionSettings>(fromFiles).token == "file-token");
  CHECK(std::get<ConnectionSettings>(fromFiles).url == "ws://127.0.0.1:18789");
  CHECK(std::get<ConnectionSettings>(fromFiles).user == "bob");

  writeFile(home + "/gateway.url", "ws://127.0.0.1:4242\n", 0644);
  CHECK(std::get<ConnectionSettings>(settings({{"CHITIN_HOME", home}})).url ==
        "ws://127.0.0.1:4242");
  auto fromEnv = settings({{"CHITIN_HOME", home},
                           {"CHITIN_GATEWAY_URL", "ws://h:1"},
                           {"CHITIN_GATEWAY_TOKEN", "env-token"}});
  CHECK(std::get<ConnectionSettings>(fromEnv).url == "ws://h:1");
  CHECK(std::get<ConnectionSettings>(fromEnv).token == "env-token");

  chmod((home + "/gateway.token").c_str(), 0644);
  auto exposed = settings({{"CHITIN_HOME", home}});
  REQUIRE(std::holds_alternative<ConfigProblem>(exposed));
  CHECK(has(std::get<ConfigProblem>(exposed).message, "chmod 600"));
}

TEST_CASE("no token: exit 2 with how to get one; bad URL: exit 2") {
  FakeGateway fake;
  Run r = run({{"CHITIN_HOME", fake.dir}}, [](RemoteContext& c) { return runStatus(false, c); });
  CHECK(r.code == EXIT_USAGE);
  CHECK(has(r.err, "no gateway token"));
  CHECK(r.out.empty());
  r = run({{"CHITIN_HOME", fake.dir},
           {"CHITIN_GATEWAY_TOKEN", "t"},
           {"CHITIN_GATEWAY_URL", "http://x"}},
          [](RemoteContext& c) { return runHealth(false, c); });
  CHECK(r.code == EXIT_USAGE);
  CHECK(has(r.err, "gateway URL \"http://x\""));
}

TEST_CASE("wrong token: exit 2 with the server's message") {
  FakeGateway fake;
  Run r = run(envFor(fake, "wrong"), [](RemoteContext& c) { return runHealth(false, c); });
  CHECK(r.code == EXIT_USAGE);
  CHECK(has(r.err, "UNAUTHORIZED: invalid gateway token"));
  CHECK(r.out.empty());
}

TEST_CASE("no gateway: exit 3 naming the URL and `chitin gateway`") {
  std::string url = "ws://127.0.0.1:" + std::to_string(testing::closedPort());
  Run r = run({{"CHITIN_GATEWAY_URL", url}, {"CHITIN_GATEWAY_TOKEN", "t"}, {"USER", "alice"}},
              [](RemoteContext& c) { return runStatus(false, c); });
  CHECK(r.code == EXIT_UNREACHABLE);
  CHECK(has(r.err, "gateway unreachable at " + url + ": Connection refused"));
  CHECK(has(r.err, "(is `chitin gateway` running?)"));
}

TEST_CASE("status, health and sessions print readable lines, or the payload with --json") {
  FakeGateway fake;
  Run r = run(envFor(fake), [](RemoteContext& c) { return runStatus(false, c); });
  CHECK(r.code == EXIT_OK);
  CHECK(r.out == "gateway   " + fake.url() +
                     " (chitin 0.1.0-fake, up 1m 15s)\n"
                     "home      /tmp/home\n"
                     "model     openai / gpt-test\n"
                     "sandbox   ok\n"
                     "sessions  2 active, 0 running\n"
                     "spares    3 tool sandboxes waiting (at most 8)\n"
                     "clients   0 connected\n");
  r = run(envFor(fake), [](RemoteContext& c) { return runStatus(true, c); });
  CHECK(r.code == EXIT_OK);
  CHECK(json::parse(r.out)["model"] == "gpt-test");

  r = run(envFor(fake), [](RemoteContext& c) { return runHealth(false, c); });
  CHECK(r.code == EXIT_OK);
  CHECK(r.out == "ok: chitin 0.1.0-fake at " + fake.url() + ", up 1h 2m\n");
  r = run(envFor(fake), [](RemoteContext& c) { return runHealth(true, c); });
  CHECK(json::parse(r.out)["ok"] == true);

  r = run(envFor(fake), [](RemoteContext& c) { return runSessions(false, c); });
  CHECK(r.code == EXIT_OK);
  CHECK(r.out ==
        "KEY                          ACTIVE  MESSAGES  TAINTED  UPDATED\n"
        "agent:main:cli:direct:alice  yes           12  no       2025-01-02T03:04:05Z\n"
        "agent:main:irc:direct:bob    no             0  yes      -\n"
        "tainted: the history these sessions replay holds content from outside, so writes, "
        "commands and sends ask you first; `chitin sessions --json` says why, `chitin sessions "
        "reset KEY` starts one over\n");
  r = run(envFor(fake), [](RemoteContext& c) { return runSessions(true, c); });
  CHECK(json::parse(r.out)["sessions"].size() == 2);
  CHECK(r.err.empty());
}

TEST_CASE("health: an unhealthy gateway exits 1 in both output modes") {
  FakeGateway fake({"--mode", "unhealthy"});
  Run r = run(envFor(fake), [](RemoteContext& c) { return runHealth(false, c); });
  CHECK(r.code == EXIT_FAILED);
  CHECK(has(r.out, "unhealthy"));
  CHECK(run(envFor(fake), [](RemoteContext& c) { return runHealth(true, c); }).code == EXIT_FAILED);
}

TEST_CASE("agent: tool progress on stderr, streamed text on stdout, exit 0") {
  FakeGateway fake;
  Run r = agent(envFor(fake), "hello", false);
  CHECK(r.code == EXIT_OK);
  CHECK(r.out == "Let me look.Found 2 files.\n");  // NOT OURS (another run) is not shown
  CHECK(r.err == "\n⚙ exec {\"command\":\"ls\"} … ok\n");
}

TEST_CASE("agent --json: one object with reply, session, runId, status and tools") {
  FakeGateway fake;
  Run r = agent(envFor(fake), "hello", true, "agent:main:cli:direct:custom");
  CHECK(r.code == EXIT_OK);
  CHECK(r.err.empty());
  REQUIRE(std::count(r.out.begin(), r.out.end(), '\n') == 1);
  json j = json::parse(r.out);
  CHECK(j["reply"] == "Let me look.Found 2 files.");
  CHECK(j["session"] == "agent:main:cli:direct:custom");
  CHECK(j["runId"] == "run-hello");
  CHECK(j["status"] == "ok");
  REQUIRE(j["tools"].size() == 1);
  CHECK(j["tools"][0]["name"] == "exec");
  CHECK(j["tools"][0]["arguments"]["command"] == "ls");
  CHECK(j["tools"][0]["status"] == "ok");
  CHECK(j["tools"][0]["summary"] == "a.txt\nb.txt");
  CHECK_FALSE(j.contains("error"));
  CHECK(has(fake.log(), "\"sessionKey\": \"agent:main:cli:direct:custom\""));
}

TEST_CASE("agent: a failed run exits 1 with the error; denied tools show why") {
  FakeGateway fake;
  Run r = agent(envFor(fake), "fail", false);
  CHECK(r.code == EXIT_FAILED);
  CHECK(has(r.err, "⚙ exec {\"command\":\"rm -rf /\"} … denied: policy: forbid exec rm\n"));
  CHECK(has(r.err, "chitin: run run-fail error: model provider unreachable"));
  r = agent(envFor(fake), "fail", true);
  CHECK(r.code == EXIT_FAILED);
  json j = json::parse(r.out);
  CHECK(j["status"] == "error");
  CHECK(j["error"] == "model provider unreachable");
  CHECK(j["tools"][0]["status"] == "denied");
}

TEST_CASE("agent: a connection dropped mid-run exits 3 and says the outcome is unknown") {
  FakeGateway fake;
  Run r = agent(envFor(fake), "drop", false);
  CHECK(r.code == EXIT_UNREACHABLE);
  CHECK(has(r.err, "lost during run run-drop"));
  CHECK(has(r.err, "outcome is unknown"));
  r = agent(envFor(fake), "close", true);
  CHECK(r.code == EXIT_UNREACHABLE);
  CHECK(has(r.err, "code 1011: supervisor shutting down"));
  CHECK(r.out.empty());
}

TEST_CASE("agent: SIGINT sends agent.abort for the run and exits 1") {
  FakeGateway fake;
  bool sent = false;  // the fake's "slow" run only ends on agent.abort, so no SIGINT = a hang
  std::thread interrupter(
      [&] { sent = fake.waitForLog("\"method\": \"agent\"") && kill(getpid(), SIGINT) == 0; });
  Run r = agent(envFor(fake), "slow", false);
  interrupter.join();
  CHECK(sent);
  CHECK(r.code == EXIT_FAILED);
  CHECK(has(fake.log(), "\"method\": \"agent.abort\", \"params\": {\"runId\": \"run-slow\"}"));
  CHECK(has(r.err, "aborting run run-slow"));
  CHECK(has(r.err, "chitin: run run-slow aborted: aborted by the user"));
}

TEST_CASE("agent: a final result before the accepted answer, and an unstreamed long reply") {
  FakeGateway fake;
  Run r = agent(envFor(fake), "early-final", false);
  CHECK(r.code == EXIT_OK);
  CHECK(r.out == "done early\n");
  r = agent(envFor(fake), "big", true);
  CHECK(r.code == EXIT_OK);
  CHECK(json::parse(r.out)["reply"].get<std::string>().size() == 70000);
  r = agent(envFor(fake), "", false);
  CHECK(r.code == EXIT_USAGE);
}

using testing::checkInert;

TEST_CASE("agent: model text reaches the terminal escaped (OSC 52, CSI, bidi, zero-width)") {
  FakeGateway fake;
  Run r = agent(envFor(fake), "hostile", false);
  CHECK(r.code == EXIT_FAILED);
  checkInert(r.out);
  checkInert(r.err);
  // The reply, streamed in two pieces.
  CHECK(r.out == "copy \\x1b]52;c;ZXZpbA==\\x07 then\\x1b[2J\\u202egnp.exe \\u200b");
  // Tool lines, the approval notice (whole, with where to see the full call), the error.
  CHECK(has(r.err, "⚙ exec\\x1b[31m {\"command\":\"ls \\u202eevil\\u001b[1A\"} …"));
  CHECK(has(r.err, "⏸ waiting for confirmation: exec: rm\\x1b[2K -rf ~ \\x1b\n"));
  CHECK(has(r.err, "chitin approvals show ap1\\x1b[1A"));
  CHECK(has(r.err, " error: bad\\x1b[2Jthing\n"));
  CHECK(has(r.err, "chitin: run run-hostile error: boom\\x1b]0;title\\x07\n"));
}

TEST_CASE("agent --json: only printable ASCII on stdout, the exact text inside the JSON") {
  FakeGateway fake;
  Run r = agent(envFor(fake), "hostile", true);
  CHECK(r.code == EXIT_FAILED);
  for (unsigned char c : r.out) CHECK(((c >= 0x20 && c < 0x7f) || c == '\n'));
  json j = json::parse(r.out);
  CHECK(j["error"] == "boom\x1b]0;title\x07");
  CHECK(j["tools"][0]["arguments"]["command"] == "ls \u202eevil\x1b[1A");
}

}  // namespace
}  // namespace chitin::cli
