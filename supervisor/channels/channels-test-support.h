// SPDX-License-Identifier: Apache-2.0
// Test doubles for the channel tests: an in-process ChannelWorker reached over a real Cap'n
// Proto two-party connection on a socketpair, the launcher that "spawns" it, a fake egress
// broker, a scripted AgentService, and a temporary $CHITIN_HOME.
// Runs in: test

#pragma once

#include <capnp/rpc-twoparty.h>
#include <dirent.h>
#include <doctest/doctest.h>
#include <kj/async-io.h>
#include <sodium.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <functional>
#include <sstream>

#include "channel-host.h"
#include "channel-router.h"
#include "inbound.h"
#include "worker-connection.h"

namespace chitin::channels::testing {

struct TempHome {
  std::string path;
  TempHome() {
    char tmpl[] = "/tmp/chitin-channels-XXXXXX";
    path = mkdtemp(tmpl);
    REQUIRE(sodium_init() >= 0);
    for (const char* d :
         {"/credentials", "/state", "/state/channel-seen", "/workspace", "/workspace/main",
          "/policies", "/state/sessions", "/state/audit", "/state/snapshots", "/state/untrusted"})
      mkdir((path + d).c_str(), 0700);
  }
  ~TempHome() { [[maybe_unused]] int rc = std::system(("rm -rf '" + path + "'").c_str()); }
  void write(const std::string& rel, const std::string& text, mode_t mode = 0600) const {
    std::ofstream(path + "/" + rel) << text;
    chmod((path + "/" + rel).c_str(), mode);
  }
  std::string read(const std::string& rel) const {
    std::ifstream in(path + "/" + rel);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

// A channel account of `kind` as the config names one, nothing else set.
inline config::ChannelAccountConfig account(const std::string& kind,
                                            const std::string& name = "default") {
  config::ChannelAccountConfig a;
  a.set_kind(kind);
  a.set_account(name);
  return a;
}

// What the fake workers were asked and told, across restarts.
struct WorkerLog {
  struct Sent {
    std::string chatId, text, replyTo, threadId;
  };
  struct Start {
    std::string kind, account, credential;
    std::map<std::string, std::string> options;
    uint64_t maxAttachmentBytes = 0;
  };
  std::vector<Start> starts;
  std::vector<Sent> sent;
  std::vector<std::pair<std::string, bool>> typing;
  std::vector<std::tuple<std::string, std::string, std::string>> reactions;
  std::vector<std::string> logins;
  std::vector<LaunchRequest> launches;
  // The sink of the newest worker, and of the newest worker of each account ("kind/account").
  kj::Maybe<rpc::InboundSink::Client> sink;
  std::map<std::string, rpc::InboundSink::Client> sinks;
  // Behaviour of the next start calls.
  std::string startRefusal;  // throw this from start
  bool startHangs = false;
  bool sendFails = false;
  bool sendHangs = false;  // the worker holds the reply (and dies with it, in a test)
  rpc::ChannelStatus::State state = rpc::ChannelStatus::State::CONNECTED;  // status() answers
  rpc::Capabilities::Reader caps() { return capsMessage.getRoot<rpc::Capabilities>().asReader(); }
  capnp::MallocMessageBuilder capsMessage;
  WorkerLog() {
    auto c = capsMessage.initRoot<rpc::Capabilities>();
    c.setMaxMessageChars(4096);
    c.setReactions(true);
    c.setTyping(true);
    c.setAttachments(true);
  }
};

class FakeWorker final : public rpc::ChannelWorker::Server {
 public:
  explicit FakeWorker(WorkerLog& log) : log_(log) {}

  kj::Promise<void> start(StartContext context) override {
    auto p = context.getParams();
    auto s = p.getSettings();
    WorkerLog::Start start;
    start.kind = s.getKind();
    start.account = s.getAccount();
    start.credential = std::string(reinterpret_cast<const char*>(s.getCredential().begin()),
                                   s.getCredential().size());
    for (auto o : s.getOptions()) start.options[o.getKey()] = o.getValue();
    start.maxAttachmentBytes = s.getMaxAttachmentBytes();
    log_.starts.push_back(start);
    log_.sink = p.getSink();
    log_.sinks.erase(start.kind + "/" + start.account);
    log_.sinks.emplace(start.kind + "/" + start.account, p.getSink());
    if (!log_.startRefusal.empty())
      throw kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                          kj::str(log_.startRefusal));
    if (log_.startHangs) return kj::NEVER_DONE;
    context.getResults().setCapabilities(log_.caps());
    return kj::READY_NOW;
  }
  kj::Promise<void> send(SendContext context) override {
    auto m = context.getParams().getMessage();
    log_.sent.push_back({m.getChatId(), m.getText(), m.getReplyTo(), m.getThreadId()});
    if (log_.sendFails) KJ_FAIL_REQUIRE("429 Too Many Requests");
    if (log_.sendHangs) return kj::NEVER_DONE;
    context.getResults().initMessageIds(1).set(0, "out-" + std::to_string(log_.sent.size()));
    return kj::READY_NOW;
  }
  kj::Promise<void> typing(TypingContext context) override {
    log_.typing.push_back({context.getParams().getChatId(), context.getParams().getOn()});
    return kj::READY_NOW;
  }
  kj::Promise<void> react(ReactContext context) override {
    auto p = context.getParams();
    log_.reactions.push_back({p.getChatId(), p.getMessageId(), p.getEmoji()});
    return kj::READY_NOW;
  }
  kj::Promise<void> status(StatusContext context) override {
    context.getResults().initStatus().setState(log_.state);
    return kj::READY_NOW;
  }
  kj::Promise<void> login(LoginContext context) override {
    log_.logins.push_back(context.getParams().getPhoneNumber());
    return kj::READY_NOW;
  }

 private:
  WorkerLog& log_;
};

// One fake worker process: the worker end of a socketpair serves FakeWorker; "killing" it
// drops that end, as a dead process would.
class FakeLaunched final : public LaunchedWorker {
 public:
  FakeLaunched(kj::AsyncIoContext& io, WorkerLog& log) : exit_(nullptr) {
    int sv[2];
    KJ_SYSCALL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    workerStream_ =
        io.lowLevelProvider->wrapSocketFd(sv[1], kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
    server_ = kj::heap<capnp::TwoPartyServer>(kj::heap<FakeWorker>(log));
    serving_ = server_->accept(*workerStream_).eagerlyEvaluate(nullptr);
    // The supervisor's end as in production: the channel bounds, violations reported.
    supervisorStream_ =
        io.lowLevelProvider->wrapUnixSocketFd(sv[0], kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
    rpc_ = kj::heap<WorkerConnection>(*supervisorStream_, 0, channelReaderOptions());
    client_ = rpc_->bootstrap().castAs<rpc::ChannelWorker>();
    auto paf = kj::newPromiseAndFulfiller<WorkerExit>();
    exit_ = paf.promise.fork();
    exitFulfiller_ = kj::mv(paf.fulfiller);
  }
  ~FakeLaunched() noexcept(false) { die(WorkerExit{-1, 9, "stopped by the supervisor"}); }

  rpc::ChannelWorker::Client client() override { return client_; }
  kj::Promise<WorkerExit> onExit() override { return exit_.addBranch(); }
  void kill(const std::string& reason) override { die(WorkerExit{-1, 9, reason}); }
  kj::Promise<std::string> onViolation() override { return rpc_->onViolation(); }
  // The worker process ends by itself (a crash).
  void crash() { die(WorkerExit{1, 0, ""}); }
  bool dead() const { return dead_; }

 private:
  void die(WorkerExit exit) {
    if (dead_) return;
    dead_ = true;
    serving_ = nullptr;
    server_ = nullptr;
    workerStream_ = nullptr;
    if (exitFulfiller_->isWaiting()) exitFulfiller_->fulfill(kj::mv(exit));
  }

  kj::Own<kj::AsyncIoStream> workerStream_;
  kj::Own<capnp::TwoPartyServer> server_;
  kj::Maybe<kj::Promise<void>> serving_;
  kj::Own<kj::AsyncCapabilityStream> supervisorStream_;
  kj::Own<WorkerConnection> rpc_;
  rpc::ChannelWorker::Client client_ = nullptr;
  kj::ForkedPromise<WorkerExit> exit_;
  kj::Own<kj::PromiseFulfiller<WorkerExit>> exitFulfiller_;
  bool dead_ = false;
};

class FakeLauncher final : public WorkerLauncher {
 public:
  FakeLauncher(kj::AsyncIoContext& io, WorkerLog& log) : io_(io), log_(log) {}
  kj::Own<LaunchedWorker> launch(const LaunchRequest& request) override {
    log_.launches.push_back(request);
    if (failLaunch) throw std::runtime_error("no sandbox here");
    auto w = kj::heap<FakeLaunched>(io_, log_);
    last = w.get();
    return w;
  }
  FakeLaunched* last = nullptr;
  bool failLaunch = false;

 private:
  kj::AsyncIoContext& io_;
  WorkerLog& log_;
};

class FakeEndpoint final : public egress::Endpoint {
 public:
  FakeEndpoint(std::string path, std::vector<egress::Rule> rules, int& open)
      : path_(std::move(path)), rules_(std::move(rules)), open_(open) {
    ++open_;
  }
  ~FakeEndpoint() override { --open_; }
  const std::string& socketPath() const override { return path_; }
  const std::vector<egress::Rule>& rules() const override { return rules_; }
  void replaceRules(std::vector<egress::Rule> rules) override { rules_ = std::move(rules); }
  void setAdmission(Admission) override {}  // channel workers have none

 private:
  std::string path_;
  std::vector<egress::Rule> rules_;
  int& open_;
};

class FakeBroker final : public EgressBroker {
 public:
  std::unique_ptr<egress::Endpoint> open(const std::string& label,
                                         std::vector<egress::Rule> rules) override {
    lastRules = rules;
    return std::make_unique<FakeEndpoint>("/run/fake/" + std::to_string(++count) + ".sock",
                                          std::move(rules), openEndpoints);
  }
  std::vector<egress::Rule> lastRules;
  int count = 0;
  int openEndpoints = 0;
};

// An AgentService whose runs stay open until the test ends them.
class ScriptedAgent final : public gateway::AgentService {
 public:
  struct Started {
    gateway::AgentParams params;
    gateway::ClientIdentity who;
    std::shared_ptr<gateway::RunSink> sink;
  };
  std::vector<Started> runs;

  gateway::Result<gateway::AgentAccepted> startRun(
      const gateway::AgentParams& params, const gateway::ClientIdentity& who,
      std::shared_ptr<gateway::RunSink> sink) override {
    runs.push_back({params, who, sink});
    gateway::AgentAccepted a;
    a.set_run_id("run" + std::to_string(runs.size()));
    a.set_status("accepted");
    return a;
  }
  void begin(size_t i) {
    gateway::AgentEvent e;
    e.set_run_id("run" + std::to_string(i + 1));
    e.set_stream("lifecycle");
    e.set_phase("start");
    runs.at(i).sink->event(e);
  }
  void finish(size_t i, const std::string& status, const std::string& reply,
              const std::string& error = "") {
    gateway::AgentResult r;
    r.set_run_id("run" + std::to_string(i + 1));
    r.set_status(status);
    r.set_reply(reply);
    r.set_error(error);
    runs.at(i).sink->finished(r);
  }
  gateway::Result<bool> abortRun(const std::string&) override { return true; }
  gateway::Result<gateway::ChatHistory> history(const gateway::ChatHistoryParams&,
                                                const gateway::ClientIdentity&) override {
    return gateway::ChatHistory();
  }
  gateway::SessionsList sessions() override { return {}; }
  gateway::StatusPayload status() override { return {}; }
};

// Runs the event loop until `done()` or `timeoutMs`; false on timeout.
// What else waitUntil turns while it waits: a test that runs the real agent core sets it to
// run its libuv loop too (the core's transcript syncs report there), and clears it after.
inline std::function<void()>& waitPump() {
  static std::function<void()> pump;
  return pump;
}

inline bool waitUntil(kj::AsyncIoContext& io, const std::function<bool()>& done,
                      int timeoutMs = 3000) {
  for (int waited = 0; waited < timeoutMs; waited += 2) {
    if (done()) return true;
    if (waitPump()) waitPump()();
    io.provider->getTimer().afterDelay(2 * kj::MILLISECONDS).wait(io.waitScope);
  }
  return done();
}

// Names in a directory (none: empty or missing).
inline std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") out.push_back(name);
  }
  closedir(d);
  return out;
}

inline void settle(kj::AsyncIoContext& io, int ms = 30) {
  io.provider->getTimer().afterDelay(ms * kj::MILLISECONDS).wait(io.waitScope);
}

// Builds an inbound message; `edit` fills in what a test needs.
inline capnp::Request<rpc::InboundSink::MessageParams, rpc::InboundSink::MessageResults> inbound(
    rpc::InboundSink::Client& sink, const std::string& chatId, const std::string& senderId,
    const std::string& messageId, const std::string& text) {
  auto req = sink.messageRequest();
  auto m = req.initMessage();
  m.setChatId(chatId);
  m.setSenderId(senderId);
  m.setMessageId(messageId);
  m.setText(text);
  return req;
}

}  // namespace chitin::channels::testing
