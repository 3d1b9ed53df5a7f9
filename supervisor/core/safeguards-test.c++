// SPDX-License-Identifier: Apache-2.0
// Tests for the pieces around the policy engine: pairing codes, pending approvals, the policy
// host (reload, entity store), and the guard's pure helpers (command shape, path identity).
// Descriptions: call-description-test.c++.
// Runs in: test

#include <doctest/doctest.h>
#include <kj/async-io.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "approvals.h"
#include "guard.h"
#include "pairing.h"
#include "policy-host.h"

namespace chitin {
namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/chitin-safeguards-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { [[maybe_unused]] int rc = std::system(("rm -rf '" + path + "'").c_str()); }
  void write(const std::string& rel, const std::string& text) const {
    std::ofstream(path + "/" + rel) << text;
  }
  std::string read(const std::string& rel) const {
    std::ifstream in(path + "/" + rel);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

// ---- pairing ----------------------------------------------------------------------------------

TEST_CASE("pairing: a code per sender, the same one when asked again, three per channel") {
  TempDir dir;
  int64_t now = 1000;
  PairingStore store(dir.path + "/pairing.json", [&] { return now; });
  auto a = store.request("telegram", "1");
  REQUIRE(a);
  CHECK(a->code.size() == PairingStore::CODE_LENGTH);
  CHECK(a->code.find_first_of("01IOL") == std::string::npos);
  CHECK(a->expiresAt == 1000 + 3600);
  CHECK(store.request("telegram", "1")->code == a->code);
  CHECK(store.request("telegram", "2"));
  CHECK(store.request("telegram", "3"));
  CHECK_FALSE(store.request("telegram", "4"));  // the channel is full
  CHECK(store.request("signal", "4"));          // other channels are not
  CHECK(store.list().size() == 4);
}

TEST_CASE("pairing: codes expire after an hour, are taken once, and survive a restart") {
  TempDir dir;
  int64_t now = 1000;
  std::string code;
  {
    PairingStore store(dir.path + "/pairing.json", [&] { return now; });
    code = store.request("telegram", "1")->code;
    store.request("telegram", "2");
  }
  PairingStore reopened(dir.path + "/pairing.json", [&] { return now; });
  CHECK(reopened.list().size() == 2);
  std::string lower = code;
  for (char& c : lower) c = static_cast<char>(tolower(c));
  auto taken = reopened.take(lower);  // case-insensitive
  REQUIRE(taken);
  CHECK(taken->sender == "1");
  CHECK_FALSE(reopened.take(code));  // single use
  now += 3600;
  CHECK(reopened.list().empty());
}

TEST_CASE("pairing: a damaged store file is refused with its name") {
  TempDir dir;
  dir.write("pairing.json", "{\"pending\": [{\"code\": 1}]}");
  CHECK_THROWS_WITH_AS(PairingStore(dir.path + "/pairing.json", unixNow),
                       doctest::Contains("pairing.json"), std::runtime_error);
  dir.write("pairing.json", "not json");
  CHECK_THROWS_AS(PairingStore(dir.path + "/pairing.json", unixNow), std::runtime_error);
}

// ---- approvals --------------------------------------------------------------------------------

struct ApprovalFixture {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  std::vector<gateway::ApprovalInfo> requested;
  std::vector<gateway::ApprovalResolved> resolved;
  ApprovalBook book{io.provider->getTimer(), 1,
                    [this](const gateway::ApprovalInfo& i) { requested.push_back(i); },
                    [this](const gateway::ApprovalResolved& r) { resolved.push_back(r); }};

  ApprovalRequest ask(const std::string& tool = "exec") {
    ApprovalRequest r;
    r.sessionKey = "agent:main:cli:direct:me";
    r.tool = tool;
    r.argumentsJson = "{\"command\":\"rm x\"}";
    r.description = describeCall("exec", {{"command", "rm x"}});
    r.fingerprint = "f";
    return r;
  }
};

TEST_CASE("approvals: approved once, by id or code; a second answer finds nothing") {
  ApprovalFixture f;
  auto promise = f.book.request(f.ask());
  REQUIRE(f.requested.size() == 1);
  CHECK(f.requested[0].code().size() == 6);
  CHECK(f.book.list().size() == 1);
  CHECK(f.book.hasCode(f.requested[0].code()));
  auto answer = f.book.resolve(f.requested[0].code(), true, "local:operator");
  REQUIRE(std::holds_alternative<gateway::ApprovalResolved>(answer));
  auto outcome = promise.wait(f.io.waitScope);
  CHECK(outcome.answer == ApprovalOutcome::Answer::APPROVED);
  CHECK(outcome.by == "local:operator");
  auto again = f.book.resolve(f.requested[0].id(), true, "local:operator");
  REQUIRE(std::holds_alternative<gateway::UserError>(again));
  CHECK(std::get<gateway::UserError>(again).code == "NOT_FOUND");
  CHECK(f.book.list().empty());
  REQUIRE(f.resolved.size() == 1);
  CHECK(f.resolved[0].decision() == "approved");
}

TEST_CASE("approvals: a large call is left out of lists and events; get returns it whole") {
  ApprovalFixture f;
  ApprovalRequest big = f.ask("write");
  nlohmann::json args = {{"path", "notes/big.md"}, {"content", std::string(200000, 'x')}};
  big.argumentsJson = args.dump();
  big.description = describeCall("write", args);
  auto promise = f.book.request(big);
  REQUIRE(f.requested.size() == 1);
  const auto& announced = f.requested[0];
  CHECK(announced.full_call_left_out());
  CHECK(announced.full_call().empty());
  CHECK(announced.arguments_json().empty());
  CHECK(announced.description().find("chitin approvals show") != std::string::npos);
  CHECK(f.book.list().at(0).full_call().empty());
  auto whole = f.book.get(announced.code());
  REQUIRE(whole);
  CHECK_FALSE(whole->full_call_left_out());
  CHECK(whole->arguments_json() == big.argumentsJson);
  CHECK(whole->full_call().find(std::string(1000, 'x')) != std::string::npos);
  CHECK_FALSE(f.book.get("nope"));
  // A small one is announced whole.
  auto small = f.book.request(f.ask());
  CHECK_FALSE(f.requested.back().full_call_left_out());
  CHECK_FALSE(f.requested.back().full_call().empty());
}

TEST_CASE("approvals: denial, expiry and withdrawal") {
  ApprovalFixture f;
  {
    auto promise = f.book.request(f.ask());
    f.book.resolve(f.requested.back().id(), false, "telegram:1");
    CHECK(promise.wait(f.io.waitScope).answer == ApprovalOutcome::Answer::DENIED);
  }
  {
    auto promise = f.book.request(f.ask());  // nobody answers within the 1 s timeout
    auto outcome = promise.wait(f.io.waitScope);
    CHECK(outcome.answer == ApprovalOutcome::Answer::EXPIRED);
    CHECK(f.resolved.back().decision() == "expired");
  }
  {
    auto promise = f.book.request(f.ask());
    std::string id = f.requested.back().id();
    promise = nullptr;  // the run was aborted
    CHECK(f.resolved.back().decision() == "cancelled");
    CHECK(std::holds_alternative<gateway::UserError>(f.book.resolve(id, true, "x")));
  }
  CHECK(f.book.list().empty());
}

// ---- policy host --------------------------------------------------------------------------------

const char CHAT_POLICY[] = R"(@id("owners-chat")
permit (principal in Group::"owners", action == Action::"chat", resource);
@id("owners-write")
permit (principal in Group::"owners", action == Action::"write", resource in Agent::"main")
  when { resource.path like "notes/*" };
)";

policy::Request chatRequest(const policy::EntityUid& who) {
  policy::Request r;
  r.principal = who;
  r.action = {"Action", "chat"};
  r.resource = {"Agent", "main"};
  r.context = policy::Value::record({{"confirmed", policy::Value::boolean(false)}});
  return r;
}

TEST_CASE("policy host: writes the built-in entities, decides, pairs a sender") {
  TempDir dir;
  mkdir((dir.path + "/p").c_str(), 0700);
  dir.write("p/chat.cedar", CHAT_POLICY);
  PolicyHost host({{dir.path + "/p"}, dir.path + "/entities.json", "main"});
  CHECK(host.policyCount() == 2);
  CHECK(host.known(localOperator()));
  CHECK(host.memberOf(localOperator(), ownersGroup()));
  CHECK(host.decide(chatRequest(localOperator())).outcome == policy::Outcome::ALLOW);
  policy::EntityUid stranger{"Sender", "telegram:9"};
  CHECK(host.decide(chatRequest(stranger)).outcome == policy::Outcome::DENY);
  CHECK_FALSE(host.known(stranger));

  host.addSender(stranger, {"User", "owner"});
  CHECK(host.decide(chatRequest(stranger)).outcome == policy::Outcome::ALLOW);
  CHECK(dir.read("entities.json").find("telegram:9") != std::string::npos);
  struct stat st;
  REQUIRE(stat((dir.path + "/entities.json").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("policy host: per-request File entities count for that request only") {
  TempDir dir;
  mkdir((dir.path + "/p").c_str(), 0700);
  dir.write("p/chat.cedar", CHAT_POLICY);
  PolicyHost host({{dir.path + "/p"}, dir.path + "/entities.json", "main"});
  auto write = [&](const std::string& path, bool withEntity) {
    policy::Request r = chatRequest(localOperator());
    r.action = {"Action", "write"};
    r.resource = {"File", "main/" + path};
    std::vector<PolicyHost::ExtraEntity> extra;
    if (withEntity)
      extra.push_back({r.resource, {{"path", policy::Value::string(path)}}, {{"Agent", "main"}}});
    return host.decide(r, extra).outcome;
  };
  CHECK(write("notes/a.md", true) == policy::Outcome::ALLOW);
  CHECK(write("other/a.md", true) == policy::Outcome::DENY);
  CHECK(write("notes/a.md", false) == policy::Outcome::DENY);  // not kept from before
}

TEST_CASE("policy host: a bad file at start is an error; at reload it keeps the old policy") {
  TempDir dir;
  mkdir((dir.path + "/p").c_str(), 0700);
  dir.write("p/bad.cedar", "permit (principal, action, resource) when { ( };\n");
  CHECK_THROWS_WITH_AS(PolicyHost({{dir.path + "/p"}, dir.path + "/entities.json", "main"}),
                       doctest::Contains("bad.cedar:1:"), std::runtime_error);
  dir.write("p/bad.cedar", CHAT_POLICY);
  PolicyHost host({{dir.path + "/p"}, dir.path + "/entities.json", "main"});
  dir.write("p/more.cedar", "forbid (principal, action == Action::\"exce\", resource);\n");
  std::string problem = host.reload();
  CHECK(problem.find("more.cedar:1:") != std::string::npos);
  CHECK(host.policyCount() == 2);
  CHECK(host.decide(chatRequest(localOperator())).outcome == policy::Outcome::ALLOW);
  dir.write("p/more.cedar", "forbid (principal, action == Action::\"chat\", resource);\n");
  CHECK(host.reload() == "");
  CHECK(host.policyCount() == 3);
  CHECK(host.decide(chatRequest(localOperator())).outcome == policy::Outcome::DENY);
  dir.write("entities.json", "[{\"uid\": 5}]");
  CHECK(host.reload().find("entities.json") != std::string::npos);
}

// ---- guard helpers ------------------------------------------------------------------------------

TEST_CASE("command shape: only plain words are simple; the program is the first word") {
  CHECK(commandShape("ls -la notes").simple);
  CHECK(commandShape("ls -la notes").program == "ls");
  CHECK(commandShape("/usr/bin/cat a.txt").program == "cat");
  CHECK(commandShape("/bin/ls").program == "ls");
  // A program from the workspace keeps its path: it is not the system's `ls`.
  CHECK(commandShape("./ls").program == "./ls");
  CHECK(commandShape("bin/ls -la").program == "bin/ls");
  CHECK(commandShape("/usr/bin/../../workspace/ls").program == "/usr/bin/../../workspace/ls");
  CHECK(commandShape("/tmp/ls").program == "/tmp/ls");
  CHECK(commandShape("grep -n TODO src/main.c").simple);
  for (const char* disguised :
       {"ls; rm -rf x", "ls && rm x", "ls | sh",    "cat $(echo x)", "cat `id`", "ls\nrm x",
        "echo 'a b'",   "echo \"a\"", "ls > out",   "ls < in",       "cat ~/x",  "ls *",
        "ls a?",        "(ls)",       "ls {a,b}",   "echo a\\ b",    "ls  -la",  " ls",
        "ls ",          "ls\trm",     "env sh -c x"}) {
    INFO(disguised);
    if (std::string(disguised) == "env sh -c x") {
      CHECK(commandShape(disguised).simple);  // plain words: the policy's list decides (env: no)
      CHECK(commandShape(disguised).program == "env");
    } else {
      CHECK_FALSE(commandShape(disguised).simple);
    }
  }
}

TEST_CASE("resolvedIdentity: follows the path as it is now; a swapped link changes it") {
  TempDir dir;
  mkdir((dir.path + "/a").c_str(), 0700);
  mkdir((dir.path + "/b").c_str(), 0700);
  dir.write("a/f.txt", "A");
  dir.write("b/f.txt", "B");
  REQUIRE(symlink("a", (dir.path + "/link").c_str()) == 0);
  std::string before = resolvedIdentity(dir.path, "link/f.txt");
  CHECK(before.find("/a/f.txt@") == 0);
  CHECK(resolvedIdentity(dir.path, "link/f.txt") == before);
  unlink((dir.path + "/link").c_str());
  REQUIRE(symlink("b", (dir.path + "/link").c_str()) == 0);
  CHECK(resolvedIdentity(dir.path, "link/f.txt") != before);
  // Not there yet: the parent it would be created in.
  CHECK(resolvedIdentity(dir.path, "a/new.txt").find("/a/+new.txt@") != std::string::npos);
  // Never outside the workspace.
  REQUIRE(symlink("/etc", (dir.path + "/out").c_str()) == 0);
  CHECK(resolvedIdentity(dir.path, "out/passwd").rfind("error:", 0) == 0);
}

}  // namespace
}  // namespace chitin
