// SPDX-License-Identifier: Apache-2.0
// Sandbox claims about channel workers: the real chitin-worker-channel-telegram, spawned from
// the shipped profile, serves ChannelWorker, reaches the Bot API only through its egress
// socket (the real broker, audited), keeps its state in /state, stays small when idle, and
// exits on hang-up; its profile and lockdown deny sockets of its own and every host path but
// /state.
// Runs in: tests (the worker and the probes run in real sandboxes)

#include <capnp/rpc-twoparty.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <kj/async-io.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "broker-test-fixture.h"
#include "channel.capnp.h"
#include "fake-telegram.h"
#include "probe-runner.h"

namespace chitin::testing {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char TOKEN[] = "777001:sandboxed-worker-test-token";
const json DM = {{"id", 1001}, {"type", "private"}, {"first_name", "Ann"}};
const json OWNER = {{"id", 1001}, {"is_bot", false}, {"first_name", "Ann"}};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class Sink final : public rpc::InboundSink::Server {
 public:
  std::vector<std::string> texts;
  std::vector<std::string> statuses;

 protected:
  kj::Promise<void> message(MessageContext context) override {
    texts.push_back(context.getParams().getMessage().getText());
    context.getResults().setAccepted(true);
    return kj::READY_NOW;
  }
  kj::Promise<void> status(StatusContext context) override {
    auto s = context.getParams().getStatus();
    statuses.push_back(std::to_string(static_cast<int>(s.getState())) + " " + s.getDetail().cStr() +
                       " " + s.getIdentity().cStr());
    return kj::READY_NOW;
  }
};
#pragma GCC diagnostic pop

// The worker itself: bwrap's only child (the worker is pid 1 of the sandbox).
pid_t workerPid(pid_t bwrap) {
  std::ifstream in("/proc/" + std::to_string(bwrap) + "/task/" + std::to_string(bwrap) +
                   "/children");
  pid_t child = -1;
  in >> child;
  return child;
}

}  // namespace

TEST_CASE(
    "channel-telegram worker: serves in its sandbox, talks to Telegram only through its egress "
    "socket, idles small, exits on hang-up") {
  FakeTelegram fake(TOKEN);
  // The broker as the channel host opens it for this account: its apiRoot, a private address
  // the owner allowed.
  egress::testing::Fixture broker;
  std::string where = "127.0.0.1:" + std::to_string(fake.port());
  std::string egressSocket =
      broker.open("channel-telegram", {egress::parseRule(where, "channels.account", true)});
  TempDir state("chitin-channel-state");
  TempDir logs("chitin-channel-log");
  int logFd = open((logs.path() + "/worker.log").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  REQUIRE(logFd >= 0);
  spawn::SpawnRequest request;
  request.profile = "channel-telegram";
  request.vars = {{"STATE_DIR", state.path()}};
  request.egressSocket = egressSocket;
  request.stdoutFd = logFd;
  request.stderrFd = logFd;
  auto worker = testSpawner().spawn(request);
  close(logFd);
  INFO("worker log: " << readAll(logs.path() + "/worker.log"));

  auto io = kj::setupAsyncIo();
  auto stream = io.lowLevelProvider->wrapSocketFd(worker.socket.release(),
                                                  kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
  auto client = kj::heap<capnp::TwoPartyClient>(*stream);
  auto channel = client->bootstrap().castAs<rpc::ChannelWorker>();
  auto ownSink = kj::heap<Sink>();
  Sink& sink = *ownSink;
  auto wait = [&](auto done, int seconds = 15) {
    auto deadline = Clock::now() + std::chrono::seconds(seconds);
    while (!done() && Clock::now() < deadline) {
      io.provider->getTimer().afterDelay(10 * kj::MILLISECONDS).wait(io.waitScope);
    }
    return done();
  };

  auto start = channel.startRequest();
  auto settings = start.initSettings();
  settings.setKind("telegram");
  settings.setAccount("default");
  settings.setCredential(kj::StringPtr(TOKEN).asBytes());
  auto options = settings.initOptions(2);
  options[0].setKey("apiRoot");
  options[0].setValue(fake.root());
  options[1].setKey("pollTimeout");
  options[1].setValue("1");
  start.setSink(kj::mv(ownSink));
  auto capabilities = start.send().wait(io.waitScope).getCapabilities();
  CHECK(capabilities.getMaxMessageChars() == 4096);

  fake.message({{"chat", DM}, {"from", OWNER}, {"text", "hello from the phone"}});
  REQUIRE(wait([&]() { return sink.texts.size() == 1; }));
  CHECK(sink.texts[0] == "hello from the phone");
  auto send = channel.sendRequest();
  send.initMessage().setChatId("1001");
  send.getMessage().setText("**hi** back");
  CHECK(send.send().wait(io.waitScope).getMessageIds().size() == 1);
  auto sent = fake.sent("sendMessage");
  REQUIRE(sent.size() == 1);
  CHECK(sent[0]["text"] == "hi back");
  CHECK(sent[0]["entities"][0]["type"] == "bold");
  // The offset is in /state (the host's state directory), written by the sandboxed worker.
  REQUIRE(wait([&]() { return !readAll(state.path() + "/offset").empty(); }));
  CHECK(std::stoll(readAll(state.path() + "/offset")) > 0);

  // Idle: long polling, nothing to do. The issue's budget is 2 MiB private per idle worker.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  pid_t pid = workerPid(worker.pid);
  REQUIRE(pid > 0);
  // Anonymous is what each more worker costs: heap, stacks, and the pages of the libraries it
  // had to write (relocations). Private_Clean/Private_Dirty also count the executable's and
  // libraries' file pages that no other process happens to map right now (shared with a
  // second worker of the same kind, and dirty only while a fresh build is not yet written back).
  long anonymous = rollupKb(pid, "Anonymous");
  MESSAGE("idle chitin-worker-channel-telegram: Anonymous ", anonymous, " kB, Private_Clean ",
          rollupKb(pid, "Private_Clean"), " kB, Private_Dirty ", rollupKb(pid, "Private_Dirty"),
          " kB, Pss ", rollupKb(pid, "Pss"), " kB (smaps_rollup)");
  CHECK(anonymous > 0);
  CHECK(anonymous <= 2048);

  // Hang-up: the worker stops its threads and exits 0, promptly.
  auto hangUp = Clock::now();
  channel = nullptr;
  client = nullptr;
  stream = nullptr;
  std::optional<spawn::WorkerExit> exit;
  while (!(exit = spawn::pollExit(worker)) && Clock::now() - hangUp < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(exit);
  CHECK(exit->describe() == "exited with status 0");
  CHECK(Clock::now() - hangUp < std::chrono::seconds(3));
  // Every connection went through the broker, to the configured host:port, and was audited
  // (a tunnel's record is written when it closes: now, with the worker gone).
  auto records = broker.records(1);
  REQUIRE(!records.empty());
  for (auto& r : records) {
    CHECK(r.worker() == "channel-telegram");
    CHECK(r.address() == where);
    CHECK(r.outcome() == "ok");
  }
}

TEST_CASE(
    "channel-telegram profile: no socket of its own, no credential, key, token, workspace or "
    "transcript, no host path but /state (controls)") {
  egress::testing::Fixture broker;
  std::string egressSocket = broker.open("channel-telegram", {});
  TempDir state("chitin-channel-state");
  TempDir secrets("chitin-credentials");
  std::string credential = secrets.file("discord-default", "another channel's token");
  auto probe = [&](const std::string& name, std::vector<std::string> args) {
    ProbeSpec spec{"channel-telegram",
                   "channel-telegram",
                   name,
                   std::move(args),
                   {{"STATE_DIR", state.path()}}};
    spec.egressSocket = egressSocket;
    return runProbe(spec);
  };
  // A TCP or UDP socket kills the worker; AF_UNIX (the broker) is allowed.
  for (const char* family : {"2", "10", "16", "17"}) {  // AF_INET, AF_INET6, NETLINK, PACKET
    CAPTURE(family);
    CHECK(probe("socket-family", {family}).exit.describe() == "killed by signal 31 (SIGSYS)");
    CHECK(runUnsandboxed("socket-family", {family}).exit.describe() == "exited with status 0");
  }
  CHECK(probe("socket-family", {"1"}).result == "ok");
  // Another account's credential on the host is not there; the control reads it.
  CHECK(probe("read", {credential}).result == "errno=ENOENT");
  CHECK(runUnsandboxed("read", {credential}).result.rfind("ok", 0) == 0);
  // Nor is anything else of a chitin home: the model's key, the gateway token, a workspace file,
  // a transcript, the audit log (each read by the unsandboxed control).
  TempDir home("chitin-home");
  for (const auto& [relative, content] : std::vector<std::pair<std::string, std::string>>{
           {"model.key", "sk-model-key"},
           {"gateway.token", "gateway-token"},
           {"workspace/main/notes.md", "a note"},
           {"sessions/agent%3Amain%3Acli%3Adirect%3Ame.jsonl", "{}"},
           {"audit/audit.jsonl", "{}"}}) {
    std::filesystem::create_directories(
        std::filesystem::path(home.path() + "/" + relative).parent_path());
    std::string path = home.file(relative, content);
    CAPTURE(path);
    CHECK(probe("read", {path}).result == "errno=ENOENT");
    CHECK(runUnsandboxed("read", {path}).result.rfind("ok", 0) == 0);
  }
  // /state is writable (its own state); no other host path is (the sandbox's own root and /tmp
  // are private tmpfs).
  CHECK(probe("write", {"/state/probe"}).result == "ok");
  CHECK(readAll(state.path() + "/probe") == "probe\n");
  CHECK(probe("write", {"/usr/probe"}).result == "errno=EROFS");
}

}  // namespace chitin::testing
