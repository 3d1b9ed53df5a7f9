// SPDX-License-Identifier: Apache-2.0
// Slash commands: parsing, each command's answer through a fake agent core, the shipped
// policy's decision (an owner may, a stranger may not) and the audit record of each.
// Runs in: test

#include "slash-commands.h"

#include "session-models.h"
#include "test-text.h"

#include <doctest/doctest.h>
#include <kj/async-io.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace chitin {
namespace {

class FakeSlashHost final : public SlashHost {
 public:
  SessionState state;
  size_t runs = 0;  // what stopSession finds
  std::vector<std::string> stopped, reset;
  std::vector<std::string> resetBy;
  gateway::Result<std::string> resetAnswer = std::string("x.jsonl");

  SessionState sessionState(const std::string&) override { return state; }
  size_t stopSession(const std::string& key) override {
    stopped.push_back(key);
    size_t n = runs;
    runs = 0;
    return n;
  }
  gateway::Result<std::string> resetSession(const std::string& key,
                                            const policy::EntityUid& by) override {
    reset.push_back(key);
    resetBy.push_back(by.str());
    return resetAnswer;
  }
  ModelSettings model = [] {
    ModelSettings m;
    m.provider = config::ModelConfig::OPENAI;
    m.model = "fake-model";
    return m;
  }();
  std::map<std::string, std::string> chosen;
  bool keepFails = false;
  const ModelSettings& modelSettings() override { return model; }
  std::string sessionModel(const std::string& key) override {
    return chosen.count(key) ? chosen[key] : "";
  }
  gateway::Result<bool> setSessionModel(const std::string& key, const std::string& m) override {
    if (keepFails) return gateway::UserError{"INTERNAL", "state/session-models.json: disk full"};
    if (m.empty()) {
      chosen.erase(key);
    } else {
      chosen[key] = m;
    }
    return true;
  }
  gateway::StatusPayload status() override {
    gateway::StatusPayload s;
    s.set_version("9.9");
    s.set_model("fake-model");
    s.set_model_provider("openai");
    s.set_model_configured(true);
    s.set_sandbox("ok");
    s.set_active_sessions(2);
    return s;
  }
};

struct SlashRig {
  std::string root;
  kj::AsyncIoContext io = kj::setupAsyncIo();
  std::unique_ptr<PolicyHost> policy;
  std::unique_ptr<audit::AuditLog> audit;
  std::unique_ptr<ApprovalBook> approvals;
  std::vector<gateway::ApprovalInfo> asked;
  FakeSlashHost host;
  std::unique_ptr<SlashCommands> slash;

  SlashRig() {
    char tmpl[] = "/tmp/chitin-slash-XXXXXX";
    root = mkdtemp(tmpl);
    PolicyHostSettings ps;
    ps.policyDirs = {CHITIN_POLICIES_DIR};  // the shipped policy decides
    ps.entitiesPath = root + "/entities.json";
    policy = std::make_unique<PolicyHost>(ps);
    policy->addSender({"Sender", "telegram:5"}, {"User", "owner"});
    audit = audit::AuditLog::open(root + "/audit");
    approvals = std::make_unique<ApprovalBook>(
        io.provider->getTimer(), 30,
        [this](const gateway::ApprovalInfo& info) { asked.push_back(info); },
        [](const gateway::ApprovalResolved&) {});
    slash = std::make_unique<SlashCommands>(host, *policy, *audit, *approvals, "main");
  }
  ~SlashRig() { [[maybe_unused]] int rc = std::system(("rm -rf '" + root + "'").c_str()); }

  TurnFacts owner() const {
    TurnFacts facts;
    facts.sessionKey = "agent:main:cli:direct:alice";
    facts.principal = localOperator();
    return facts;
  }
  TurnFacts stranger() const {
    TurnFacts facts;
    facts.sessionKey = "agent:main:telegram:direct:999";
    facts.principal = {"Sender", "telegram:999"};
    facts.channel = "telegram";
    return facts;
  }
  std::string run(const std::string& text, const TurnFacts& facts, const std::string& sender = "") {
    return answer(text, facts, sender).reply;
  }
  SlashAnswer answer(const std::string& text, const TurnFacts& facts,
                     const std::string& sender = "") {
    auto command = parseSlashCommand(text);
    REQUIRE(command.has_value());
    return slash->run(*command, facts, sender);
  }
  std::string auditLog() const {
    std::ifstream in(root + "/audit/audit.jsonl");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

using chitin::testing::has;

TEST_CASE("slash: parsing takes a command word at the start, nothing else") {
  auto c = parseSlashCommand("/status");
  REQUIRE(c);
  CHECK(c->name == "status");
  CHECK(c->args == "");
  c = parseSlashCommand("  /Model   big-model \n");
  REQUIRE(c);
  CHECK(c->name == "model");
  CHECK(c->args == "big-model");
  c = parseSlashCommand("/compact keep the decisions\nand the names");
  REQUIRE(c);
  CHECK(c->name == "compact");
  CHECK(c->args == "keep the decisions\nand the names");
  c = parseSlashCommand("/no_such-thing");
  REQUIRE(c);
  CHECK(c->name == "no_such-thing");
  // Paths, mid-message commands and non-words are messages for the model.
  CHECK_FALSE(parseSlashCommand("/etc/hosts has a typo"));
  CHECK_FALSE(parseSlashCommand("please /status"));
  CHECK_FALSE(parseSlashCommand("/"));
  CHECK_FALSE(parseSlashCommand("/ status"));
  CHECK_FALSE(parseSlashCommand("/1st"));
  CHECK_FALSE(parseSlashCommand("/x.y"));
  CHECK_FALSE(parseSlashCommand("/" + std::string(40, 'a')));
}

TEST_CASE("slash: /status tells the session, its taint, the model and the gateway") {
  SlashRig f;
  f.host.state.messages = 7;
  f.host.state.running = true;
  f.host.state.queued = 1;
  f.host.state.untrustedSource = "a web page";
  std::string out = f.run("/status", f.owner());
  CHECK(has(out, "Session: agent:main:cli:direct:alice"));
  CHECK(has(out, "Messages: 7 (a turn is running, 1 queued)"));
  CHECK(has(out, "Tainted: yes (a web page)"));
  CHECK(has(out, "Model: fake-model (openai)"));
  CHECK(has(out, "chitin 9.9"));
  CHECK(has(f.auditLog(), "\"tool\":\"command\""));
  CHECK(has(f.auditLog(), "owners-commands"));
}

TEST_CASE("slash: a stranger's command is denied by the shipped policy and audited") {
  SlashRig f;
  f.host.runs = 1;
  CHECK(f.run("/stop", f.stranger(), "999") == "You are not allowed to use /stop here.");
  CHECK(f.host.stopped.empty());
  CHECK(f.run("/new", f.stranger(), "999") == "You are not allowed to use /new here.");
  CHECK(f.host.reset.empty());
  std::string log = f.auditLog();
  CHECK(has(log, "Sender::\\\"telegram:999\\\""));
  CHECK(has(log, "\"outcome\":\"deny\""));
  CHECK(has(log, "/stop"));
}

TEST_CASE("slash: /stop aborts the sender's own session") {
  SlashRig f;
  f.host.runs = 2;
  CHECK(f.run("/stop", f.owner()) == "Stopped 2 runs.");
  REQUIRE(f.host.stopped.size() == 1);
  CHECK(f.host.stopped[0] == "agent:main:cli:direct:alice");
  CHECK(f.run("/stop", f.owner()) == "Nothing is running in this session.");
}

TEST_CASE("slash: /new and /reset archive the session's transcript") {
  SlashRig f;
  CHECK(has(f.run("/new", f.owner()), "archived as x.jsonl"));
  f.host.resetAnswer = std::string();
  CHECK(has(f.run("/reset", f.owner()), "already new"));
  f.host.resetAnswer = gateway::UserError{"UNAVAILABLE", "a run is in progress"};
  CHECK(f.run("/reset", f.owner()) == "/reset failed: a run is in progress");
  CHECK(f.host.reset == std::vector<std::string>(3, "agent:main:cli:direct:alice"));
  CHECK(f.host.resetBy[0] == "Sender::\"local:operator\"");
}

TEST_CASE("slash: /model shows the one configured model and refuses another") {
  SlashRig f;
  CHECK(f.run("/model", f.owner()) == "Model: fake-model (openai)");
  CHECK(f.run("/model fake-model", f.owner()) == "Model: fake-model (openai)");
  std::string other = f.run("/model other", f.owner());
  CHECK(has(other, "\"other\" is not available"));
  CHECK(has(other, "model.alternatives"));
  CHECK(f.host.chosen.empty());
}

TEST_CASE("slash: /model NAME switches this session among the configured models, and back") {
  SlashRig f;
  f.host.model.alternatives = {"big-model"};
  auto me = f.owner();
  CHECK(f.run("/model", me) ==
        "Model: fake-model (openai). Available: fake-model, big-model (/model NAME switches "
        "this session)");
  CHECK(f.run("/model big-model", me) == "This session now uses big-model.");
  CHECK(f.host.chosen[me.sessionKey] == "big-model");
  CHECK(has(f.run("/status", me), "Model: big-model (openai)"));
  CHECK(has(f.run("/model", me), "Model: big-model (openai)"));
  CHECK(has(f.run("/model gpt-9", me), "\"gpt-9\" is not available: the config offers only those"));
  CHECK(f.host.chosen[me.sessionKey] == "big-model");
  CHECK(f.run("/model default", me) == "This session now uses fake-model.");
  CHECK(f.host.chosen.empty());
  f.host.keepFails = true;
  CHECK(f.run("/model big-model", me) ==
        "/model failed: state/session-models.json: disk full");
  // A stranger may not switch anything (the shipped policy: commands are the owners').
  f.host.keepFails = false;
  CHECK(f.run("/model big-model", f.stranger(), "999") == "You are not allowed to use /model here.");
  CHECK(f.host.chosen.empty());
}

TEST_CASE("session models: choices survive a reload; a bad file is ignored, then replaced") {
  SlashRig f;
  std::string path = f.root + "/session-models.json";
  {
    SessionModels models(path);
    CHECK(models.get("k").empty());
    models.set("k", "big-model");
    models.set("j", "other");
    models.set("j", "");
  }
  SessionModels again(path);
  CHECK(again.get("k") == "big-model");
  CHECK(again.get("j").empty());
  std::ofstream(path) << "{not json";
  SessionModels bad(path);
  CHECK(bad.get("k").empty());
  bad.set("x", "m");
  CHECK(SessionModels(path).get("x") == "m");
  SessionModels unwritable(f.root + "/missing-dir/session-models.json");
  CHECK_THROWS_WITH_AS(unwritable.set("k", "m"), doctest::Contains("cannot be written (open)"),
                       std::runtime_error);
  CHECK(unwritable.get("k").empty());
}

TEST_CASE("slash: /whoami shows the sender, principal and the groups the policy sees") {
  SlashRig f;
  TurnFacts paired;
  paired.sessionKey = "agent:main:telegram:direct:5";
  paired.principal = {"Sender", "telegram:5"};
  paired.channel = "telegram";
  std::string out = f.run("/whoami", paired, "5");
  CHECK(has(out, "Sender: 5 on telegram"));
  CHECK(has(out, "Principal: Sender::\"telegram:5\""));
  CHECK(has(out, "Member of: User::\"owner\", Group::\"owners\""));
}

TEST_CASE("slash: /help and unknown commands answer; /compact is handed to the core, if allowed") {
  SlashRig f;
  CHECK(has(f.run("/help", f.owner()), "/whoami - "));
  std::string unknown = f.run("/frobnicate now", f.owner());
  CHECK(has(unknown, "Unknown command /frobnicate."));
  CHECK(has(unknown, "/status - "));
  auto compact = f.answer("/compact keep names", f.owner());
  REQUIRE(compact.compact.has_value());
  CHECK(*compact.compact == "keep names");
  CHECK(compact.reply.empty());
  auto refused = f.answer("/compact", f.stranger(), "999");
  CHECK_FALSE(refused.compact.has_value());
  CHECK(refused.reply == "You are not allowed to use /compact here.");
}

TEST_CASE("slash: /approve and /deny answer a pending ask, decided as `approve`") {
  SlashRig f;
  CHECK(has(f.run("/approve ZZZZZZ", f.owner()), "ZZZZZZ"));  // no such ask: said so
  ApprovalRequest request;
  request.sessionKey = "agent:main:cli:direct:alice";
  request.runId = "r";
  request.principal = "Sender::\"local:operator\"";
  request.tool = "exec";
  request.argumentsJson = "{\"command\":\"rm x\"}";
  auto answer = f.approvals->request(request);
  REQUIRE(f.asked.size() == 1);
  // A stranger may not answer it.
  CHECK(f.run("/deny " + f.asked[0].code(), f.stranger()) ==
        "You are not allowed to use /deny here.");
  CHECK(has(f.run("/approve " + f.asked[0].code(), f.owner()), "Approved: exec"));
  auto outcome = answer.wait(f.io.waitScope);
  CHECK(outcome.answer == ApprovalOutcome::Answer::APPROVED);
  CHECK(has(f.auditLog(), "\"tool\":\"approve\""));
}

}  // namespace
}  // namespace chitin
