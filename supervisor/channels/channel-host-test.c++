// SPDX-License-Identifier: Apache-2.0
// Tests for the channel host: what a worker is started with, restarts, protocol violations,
// status and login, with fake workers over real Cap'n Proto connections.
// Runs in: test

#include "channel-host.h"

#include <doctest/doctest.h>
#include <google/protobuf/util/json_util.h>

#include "channel-service.h"
#include "channels-test-support.h"
#include "frames.h"

namespace chitin::channels {
namespace {

using namespace testing;

struct HostRig {
  TempHome home;
  kj::AsyncIoContext io = kj::setupAsyncIo();
  WorkerLog log;
  FakeLauncher launcher{io, log};
  FakeBroker broker;
  ScriptedAgent agent;
  std::unique_ptr<audit::AuditLog> audit = audit::AuditLog::open(home.path + "/state/audit");
  HostSettings settings;
  std::unique_ptr<ChannelRouter> router;
  std::unique_ptr<ChannelHost> host;

  HostRig() {
    settings.homeDir = home.path;
    settings.serviceUid = geteuid();
    settings.restartInitial = 20 * kj::MILLISECONDS;
    settings.restartMax = 80 * kj::MILLISECONDS;
    settings.startTimeout = 300 * kj::MILLISECONDS;
    settings.maxAttachmentBytes = 12345;
    home.write("credentials/telegram-default", "123:secret\n");
  }
  ~HostRig() {
    host = nullptr;
    router = nullptr;
  }
  void start(std::vector<config::ChannelAccountConfig> accounts, EgressBroker* b = nullptr,
             bool useBroker = true) {
    RouterSettings rs;
    rs.workspaceDir = home.path + "/workspace/main";
    rs.seenDir = home.path + "/state/channel-seen";
    router = std::make_unique<ChannelRouter>(agent, io.provider->getTimer(), nullptr, rs);
    host = std::make_unique<ChannelHost>(launcher, useBroker ? (b ? b : &broker) : nullptr, *router,
                                         *audit, io.provider->getTimer(), settings, accounts);
    host->start();
  }
  gateway::ChannelAccountStatus status(int i = 0) { return host->status().accounts(i); }
  bool up(int i = 0) {
    return waitUntil(io, [&] { return log.sink != nullptr && status(i).running(); });
  }
  std::string auditText() { return home.read("state/audit/audit.jsonl"); }
};

TEST_CASE("channel host: the worker gets its credential in start, and nowhere else") {
  HostRig rig;
  auto a = account("telegram");
  (*a.mutable_options())["apiRoot"] = "http://127.0.0.1:8081";
  a.add_egress("files.example.org:443");
  rig.start({a});
  REQUIRE(rig.up());
  REQUIRE(rig.log.starts.size() == 1);
  const auto& s = rig.log.starts[0];
  CHECK(s.kind == "telegram");
  CHECK(s.account == "default");
  CHECK(s.credential == "123:secret");
  CHECK(s.options.at("apiRoot") == "http://127.0.0.1:8081");
  CHECK(s.maxAttachmentBytes == 12345);

  REQUIRE(rig.log.launches.size() == 1);
  const auto& l = rig.log.launches[0];
  CHECK(l.profile == "channel-telegram");
  std::string stateDir = rig.home.path + "/state/channels/telegram/default";
  CHECK(l.vars == std::map<std::string, std::string>{{"STATE_DIR", stateDir}});
  CHECK(l.egressSocket == "/run/fake/1.sock");
  std::string everything = l.profile + l.label + l.egressSocket;
  for (auto& [k, v] : l.vars) everything += k + v;
  CHECK(everything.find("secret") == std::string::npos);
  struct stat st;
  REQUIRE(stat(stateDir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);

  // The allowlist: the platform, the option's host (private: the owner wrote the address),
  // the account's own list.
  std::vector<std::string> rules;
  for (auto& r : rig.broker.lastRules)
    rules.push_back(r.host + ":" + std::to_string(r.port) + (r.privateOk ? "!" : ""));
  CHECK(rules == std::vector<std::string>{"api.telegram.org:443", "127.0.0.1:8081!",
                                          "files.example.org:443"});
  // What the worker said when asked right after start.
  REQUIRE(waitUntil(rig.io, [&] { return rig.status().state() == "connected"; }));
  auto st0 = rig.status();
  CHECK(st0.egress_size() == 3);
  CHECK(st0.egress(1) ==
        "127.0.0.1:8081 (channels account telegram:default option apiRoot, private allowed)");
}

TEST_CASE("channel host: a missing or exposed credential stops the account with the fix") {
  HostRig rig;
  rig.home.write("credentials/slack-default", "xoxb\n", 0644);
  rig.start({account("discord"), account("slack")});
  settle(rig.io, 20);
  CHECK(rig.log.launches.empty());
  auto discord = rig.status(0);
  CHECK(discord.state() == "failed");
  CHECK(discord.detail().find(rig.home.path + "/credentials/discord-default: no such file") !=
        std::string::npos);
  auto slack = rig.status(1);
  CHECK(slack.state() == "failed");
  CHECK(slack.detail().find("chmod 600 " + rig.home.path + "/credentials/slack-default") !=
        std::string::npos);
  CHECK(slack.detail().find("xoxb") == std::string::npos);
}

TEST_CASE("channel host: credential_file is used instead of the default place") {
  HostRig rig;
  rig.home.write("elsewhere.token", "from-elsewhere\n");
  auto a = account("discord");
  a.set_credential_file(rig.home.path + "/elsewhere.token");
  rig.start({a});
  REQUIRE(rig.up());
  CHECK(rig.log.starts[0].credential == "from-elsewhere");
}

TEST_CASE("channel host: without an egress broker no channel worker starts") {
  HostRig rig;
  rig.start({account("telegram")}, nullptr, false);
  settle(rig.io, 20);
  CHECK(rig.log.launches.empty());
  CHECK(rig.status().state() == "failed");
  CHECK(rig.status().detail().find("no egress broker") != std::string::npos);
}

TEST_CASE("channel host: a disabled account is not started") {
  HostRig rig;
  auto a = account("telegram");
  a.set_disabled(true);
  rig.start({a});
  settle(rig.io, 20);
  CHECK(rig.log.launches.empty());
  CHECK(rig.status().state() == "disabled");
}

TEST_CASE("channel host: a crashed worker is audited and restarted; its old sink is dead") {
  HostRig rig;
  rig.start({account("telegram")});
  REQUIRE(rig.up());
  auto oldSink = KJ_ASSERT_NONNULL(rig.log.sink);
  rig.launcher.last->crash();
  REQUIRE(waitUntil(rig.io, [&] { return rig.log.starts.size() == 2; }));
  CHECK(rig.status().restarts() == 1);
  CHECK(rig.status().last_exit() == "exited with status 1");
  CHECK(rig.auditText().find("\"kind\":\"WORKER_EXIT\"") != std::string::npos);
  CHECK(rig.auditText().find("\"tool\":\"channel-telegram\"") != std::string::npos);
  CHECK(rig.broker.count == 2);
  CHECK(rig.broker.openEndpoints == 1);  // the dead worker's endpoint is closed
  // A sink of a replaced worker speaks for nobody.
  auto late = inbound(oldSink, "42", "42", "1", "hi").send();
  CHECK_THROWS(late.wait(rig.io.waitScope));
  REQUIRE(rig.up());
  CHECK(inbound(KJ_ASSERT_NONNULL(rig.log.sink), "42", "42", "1", "hi")
            .send()
            .wait(rig.io.waitScope)
            .getAccepted());
}

TEST_CASE("channel host: restarts back off exponentially with jitter") {
  HostRig rig;
  rig.settings.restartInitial = 40 * kj::MILLISECONDS;
  rig.settings.restartMax = 10 * kj::SECONDS;
  rig.start({account("telegram")});
  std::vector<kj::TimePoint> at;
  for (int i = 0; i < 4; ++i) {
    REQUIRE(waitUntil(rig.io, [&] { return rig.log.starts.size() == size_t(i + 1); }));
    at.push_back(rig.io.provider->getTimer().now());
    rig.launcher.last->crash();
  }
  settle(rig.io, 5);
  // Delays in [d/2, d] for d = 40, 80, 160 ms (plus a little scheduling time).
  for (int i = 1; i < 4; ++i) {
    double ms = (at[i] - at[i - 1]) / kj::MILLISECONDS;
    double d = 40 << (i - 1);
    CAPTURE(i);
    CAPTURE(ms);
    CHECK(ms >= d / 2 - 1);
    CHECK(ms <= d + 40);
  }
  CHECK(rig.status().state() == "restarting");
  CHECK(rig.status().detail().find("starting again in") != std::string::npos);
}

TEST_CASE("channel host: a worker that breaks the bounds is killed, audited as such, restarted") {
  HostRig rig;
  rig.start({account("telegram")});
  REQUIRE(rig.up());
  auto bad = inbound(KJ_ASSERT_NONNULL(rig.log.sink), "42\n", "42", "1", "hi").send();
  CHECK_THROWS(bad.wait(rig.io.waitScope));
  CHECK(rig.launcher.last->dead());
  REQUIRE(waitUntil(rig.io, [&] { return rig.log.starts.size() == 2; }));
  CHECK(rig.status().last_exit().find("protocol violation: inbound message: chatId") !=
        std::string::npos);
  CHECK(rig.auditText().find("\"outcome\":\"killed\"") != std::string::npos);
  CHECK(rig.agent.runs.empty());
}

// An InboundSink.message of `dataBytes` of attachment data in files of at most 4 MiB, every other
// field at its InboundLimits maximum: with 63 MiB, the biggest a worker may legitimately send.
capnp::Request<rpc::InboundSink::MessageParams, rpc::InboundSink::MessageResults> biggest(
    rpc::InboundSink::Client& sink, const std::string& messageId, size_t dataBytes) {
  using L = InboundLimits;
  std::string id(L::MAX_ID_BYTES, 'i');
  auto req = inbound(sink, id, id, messageId + std::string(L::MAX_ID_BYTES - messageId.size(), 'm'),
                     std::string(L::MAX_TEXT_BYTES, 't'));
  auto m = req.getMessage();
  m.setReplyTo(id);
  m.setThreadId(id);
  m.setSenderName(std::string(L::MAX_NAME_BYTES, 'n'));
  auto files = m.initAttachments(L::MAX_ATTACHMENTS);
  std::string chunk(4u << 20, 'd');
  for (size_t i = 0; i < L::MAX_ATTACHMENTS; ++i) {
    size_t n = std::min(chunk.size(), dataBytes - std::min(dataBytes, i * chunk.size()));
    files[i].setName(std::string(L::MAX_ATTACHMENT_NAME_BYTES, 'f'));
    files[i].setMimeType(std::string(L::MAX_MIME_BYTES, 'x'));
    files[i].setData(
        kj::ArrayPtr<const capnp::byte>(reinterpret_cast<const capnp::byte*>(chunk.data()), n));
    files[i].setSize(n);
  }
  return req;
}

TEST_CASE("channel connection: the biggest legitimate message is read whole") {
  HostRig rig;
  rig.start({account("telegram")});
  REQUIRE(rig.up());
  auto sink = KJ_ASSERT_NONNULL(rig.log.sink);
  CHECK(biggest(sink, "1", InboundLimits::MAX_TOTAL_ATTACHMENT_BYTES)
            .send()
            .wait(rig.io.waitScope)
            .getAccepted());
  REQUIRE(rig.agent.runs.size() == 1);
  CHECK(rig.status().restarts() == 0);
}

TEST_CASE("channel connection: a message past its bounds kills the worker; others go on") {
  HostRig rig;
  rig.home.write("credentials/discord-default", "discord-token\n");
  rig.start({account("telegram"), account("discord")});
  REQUIRE(waitUntil(rig.io, [&] {
    return rig.log.sinks.size() == 2 && rig.status(0).running() && rig.status(1).running();
  }));
  auto telegram = rig.log.sinks.at("telegram/default");
  auto discord = rig.log.sinks.at("discord/default");

  // 128 KiB more data than a message may carry: Cap'n Proto refuses it from its segment table
  // ("Message is too large"), before the sink or the bounds are reached.
  auto tooBig = biggest(telegram, "2", InboundLimits::MAX_TOTAL_ATTACHMENT_BYTES + (128 << 10));
  CHECK_THROWS(tooBig.send().wait(rig.io.waitScope));
  REQUIRE(waitUntil(rig.io, [&] { return rig.status(0).restarts() == 1; }));
  CHECK(rig.status(0).last_exit().find("protocol violation: ") != std::string::npos);
  CHECK(rig.status(0).last_exit().find("Message is too large") != std::string::npos);
  CHECK(rig.auditText().find("\"outcome\":\"killed\"") != std::string::npos);
  CHECK(rig.agent.runs.empty());

  // The other account never noticed; the broken one is back after its restart.
  CHECK(rig.status(1).restarts() == 0);
  CHECK(inbound(discord, "7", "7", "1", "still here").send().wait(rig.io.waitScope).getAccepted());
  REQUIRE(waitUntil(rig.io, [&] { return rig.status(0).running(); }));
  auto again = rig.log.sinks.at("telegram/default");
  CHECK(inbound(again, "42", "42", "3", "hi").send().wait(rig.io.waitScope).getAccepted());
  CHECK(rig.agent.runs.size() == 2);
}

TEST_CASE("channel host: status pushes are kept, bounded; an unknown state kills the worker") {
  HostRig rig;
  rig.start({account("telegram")});
  REQUIRE(rig.up());
  auto sink = KJ_ASSERT_NONNULL(rig.log.sink);
  auto req = sink.statusRequest();
  req.getStatus().setState(rpc::ChannelStatus::State::CONNECTED);
  req.getStatus().setIdentity("@chitin_bot");
  req.getStatus().setDetail("polling");
  req.send().wait(rig.io.waitScope);
  CHECK(rig.status().state() == "connected");
  CHECK(rig.status().identity() == "@chitin_bot");
  CHECK(rig.status().detail() == "polling");
  CHECK_FALSE(rig.status().since().empty());

  auto bad = sink.statusRequest();
  bad.getStatus().setState(static_cast<rpc::ChannelStatus::State>(77));
  CHECK_THROWS(bad.send().wait(rig.io.waitScope));
  CHECK(rig.launcher.last->dead());
  REQUIRE(waitUntil(rig.io, [&] { return rig.log.starts.size() == 2; }));
  CHECK(rig.status().last_exit().find("status: unknown state") != std::string::npos);
}

TEST_CASE("channel host: settings the worker refuses stop the account, without restarts") {
  HostRig rig;
  rig.log.startRefusal = "options: unknown key \"apiRot\"";
  rig.start({account("telegram")});
  REQUIRE(waitUntil(rig.io, [&] { return rig.status().state() == "failed"; }));
  CHECK(rig.status().detail().find("the worker refused its settings") == 0);
  CHECK(rig.status().detail() ==
        "the worker refused its settings: options: unknown key \"apiRot\"");
  settle(rig.io, 150);
  CHECK(rig.log.launches.size() == 1);
  CHECK_FALSE(rig.status().running());
}

TEST_CASE("channel host: a worker that never answers start is killed and tried again") {
  HostRig rig;
  rig.log.startHangs = true;
  rig.start({account("telegram")});
  REQUIRE(waitUntil(rig.io, [&] { return rig.log.launches.size() == 2; }));
  CHECK(rig.status().last_exit().find("did not answer ChannelWorker.start in time") !=
        std::string::npos);
}

TEST_CASE("channel host: a worker that cannot be spawned is tried again later") {
  HostRig rig;
  rig.launcher.failLaunch = true;
  rig.start({account("telegram")});
  REQUIRE(waitUntil(rig.io, [&] { return rig.log.launches.size() == 2; }));
  CHECK(rig.status().state() == "restarting");
  CHECK(rig.status().detail().find("could not start: no sandbox here") != std::string::npos);
  CHECK(rig.broker.openEndpoints == 0);
  rig.launcher.failLaunch = false;
  REQUIRE(rig.up());
}

TEST_CASE("channel host: stop kills every worker and closes its egress endpoint") {
  HostRig rig;
  rig.home.write("credentials/discord-default", "d\n");
  rig.start({account("telegram"), account("discord")});
  REQUIRE(waitUntil(rig.io, [&] { return rig.log.sinks.size() == 2; }));
  CHECK(rig.broker.openEndpoints == 2);
  auto sink = KJ_ASSERT_NONNULL(rig.log.sink);
  rig.host->stop();
  CHECK(rig.broker.openEndpoints == 0);
  CHECK(rig.status(0).state() == "stopped");
  CHECK_FALSE(rig.status(1).running());
  CHECK_THROWS(inbound(sink, "1", "1", "1", "x").send().wait(rig.io.waitScope));
}

TEST_CASE(
    "channel host: the message tool's messages go out through a running account of that kind") {
  HostRig rig;
  rig.home.write("credentials/telegram-second", "t2\n");
  auto off = account("telegram", "first");
  off.set_disabled(true);
  rig.start({off, account("telegram", "second"), account("telegram")});
  REQUIRE(waitUntil(rig.io, [&] { return rig.log.sinks.size() == 2; }));
  OutgoingMessage m;
  m.channel = "telegram";
  m.chatId = "42";
  m.text = "*hello*";
  m.files.push_back({"a.txt", "text/plain", "abc"});
  auto ids = rig.host->sendMessage(m).wait(rig.io.waitScope);
  CHECK(ids == std::vector<std::string>{"out-1"});
  REQUIRE(rig.log.sent.size() == 1);
  CHECK(rig.log.sent[0].chatId == "42");
  CHECK(rig.log.sent[0].text == "*hello*");

  m.channel = "discord";
  CHECK_THROWS_WITH(rig.host->sendMessage(m).wait(rig.io.waitScope),
                    doctest::Contains("no discord account is configured and running"));
  rig.log.sendFails = true;
  m.channel = "telegram";
  CHECK_THROWS_WITH(rig.host->sendMessage(m).wait(rig.io.waitScope),
                    doctest::Contains("429 Too Many Requests"));
}

TEST_CASE("channels.status and channels.login through the gateway's control methods") {
  HostRig rig;
  rig.log.state = rpc::ChannelStatus::State::LOGIN_REQUIRED;
  rig.start({account("whatsapp")});  // no credential file: WhatsApp needs none
  ChannelService service(rig.agent, *rig.host);
  auto methods = service.controlMethods();
  CHECK(std::count(methods.begin(), methods.end(), "channels.status") == 1);
  CHECK(std::count(methods.begin(), methods.end(), "channels.login") == 1);

  auto answer = service.control("channels.status", {}, {});
  REQUIRE(answer);
  auto& st = std::get<google::protobuf::Struct>(*answer);
  CHECK(st.fields()
            .at("accounts")
            .list_value()
            .values(0)
            .struct_value()
            .fields()
            .at("kind")
            .string_value() == "whatsapp");

  auto login = [&](const std::string& json) {
    google::protobuf::Struct params;
    REQUIRE(google::protobuf::util::JsonStringToMessage(json, &params).ok());
    std::optional<gateway::Result<google::protobuf::Struct>> got;
    CHECK(service.controlLater("channels.login", params, {},
                               [&](gateway::Result<google::protobuf::Struct> r) { got = r; }));
    REQUIRE(waitUntil(rig.io, [&] { return got.has_value(); }));
    return *got;
  };
  auto missing = login(R"({"kind":"whatsapp","account":"work"})");
  REQUIRE(waitUntil(rig.io, [&] { return !rig.log.starts.empty(); }));
  CHECK(rig.log.starts[0].credential == "");
  CHECK(std::get<gateway::UserError>(missing).code == "NOT_FOUND");

  REQUIRE(rig.up());
  // The worker says it is connecting, then shows a QR code a moment after the login starts:
  // the answer waits for the code.
  rig.io.provider->getTimer()
      .afterDelay(20 * kj::MILLISECONDS)
      .then([&] {
        auto req = KJ_ASSERT_NONNULL(rig.log.sink).statusRequest();
        req.initStatus().setState(rpc::ChannelStatus::State::STARTING);
        return req.send().ignoreResult();
      })
      .then([&] { return rig.io.provider->getTimer().afterDelay(30 * kj::MILLISECONDS); })
      .then([&] {
        auto req = KJ_ASSERT_NONNULL(rig.log.sink).loginRequest();
        req.setQr("2@abcdef,ghijkl");
        return req.send().ignoreResult();
      })
      .detach([](kj::Exception&&) {});
  auto first = login(R"({"kind":"whatsapp","phoneNumber":"+491234"})");
  auto& r = std::get<google::protobuf::Struct>(first);
  CHECK(r.fields().at("qr").string_value() == "2@abcdef,ghijkl");
  CHECK(r.fields().at("seq").string_value() == "1");
  CHECK(rig.log.logins == std::vector<std::string>{"+491234"});
  // Following it: nothing new within the wait, the same QR comes back.
  auto next = login(R"({"kind":"whatsapp","after":"1","waitSeconds":1})");
  CHECK(std::get<google::protobuf::Struct>(next).fields().at("seq").string_value() == "1");
  CHECK(rig.log.logins.size() == 1);  // only after = 0 begins a login

  auto qr = KJ_ASSERT_NONNULL(rig.log.sink).loginRequest();
  qr.setQr(std::string(5000, 'q'));
  CHECK_THROWS(qr.send().wait(rig.io.waitScope));  // over 4 KiB: a violation
  CHECK(rig.launcher.last->dead());
}

}  // namespace
}  // namespace chitin::channels
