// SPDX-License-Identifier: Apache-2.0
// One sandboxed worker per channel account, started, watched and restarted (see
// channel-host.h).
// Runs in: supervisor

#include "channel-host.h"

#include <kj/debug.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "account-setup.h"
#include "channel-kinds.h"
#include "pairing.h"
#include "qr-matrix.h"
#include "utf8.h"

namespace chitin::channels {

namespace {

constexpr size_t MAX_STATUS_DETAIL_BYTES = 4096;
constexpr size_t MAX_IDENTITY_BYTES = 256;
constexpr size_t MAX_QR_BYTES = 4096;
constexpr size_t MAX_PAIRING_CODE_BYTES = 64;

int64_t unixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* stateName(rpc::ChannelStatus::State state) {
  switch (state) {
    case rpc::ChannelStatus::State::STARTING:
      return "starting";
    case rpc::ChannelStatus::State::CONNECTED:
      return "connected";
    case rpc::ChannelStatus::State::RECONNECTING:
      return "reconnecting";
    case rpc::ChannelStatus::State::LOGIN_REQUIRED:
      return "login_required";
    case rpc::ChannelStatus::State::FAILED:
      return "failed";
    case rpc::ChannelStatus::State::STOPPED:
      return "stopped";
  }
  return nullptr;
}

std::string clip(kj::StringPtr text, size_t limit) { return clipUtf8(text.cStr(), limit); }

}  // namespace

struct ChannelHost::Account final : public ChannelPort {
  Account(ChannelHost& h, config::ChannelAccountConfig c)
      : host(h),
        config(std::move(c)),
        label("channel worker " + config.kind() + "/" + config.account()) {}

  const std::string& kind() const override { return config.kind(); }
  const std::string& account() const override { return config.account(); }

  kj::Promise<rpc::ChannelWorker::Client> whenUp() override {
    KJ_IF_MAYBE (c, client) {
      return *c;
    }
    if (host.stopping_ || failedForGood)
      return KJ_EXCEPTION(DISCONNECTED, "the channel is not running", state, detail);
    auto paf = kj::newPromiseAndFulfiller<rpc::ChannelWorker::Client>();
    upWaiters.push_back(kj::mv(paf.fulfiller));
    return kj::mv(paf.promise);
  }
  kj::Maybe<rpc::ChannelWorker::Client> current() override { return client; }
  uint64_t workerGeneration() const override { return generation; }
  PortCapabilities capabilities() const override { return caps; }
  void violation(const std::string& reason) override {
    spdlog::warn("{}: {}", label, reason);
    if (violationReason.empty()) violationReason = reason;
    client = nullptr;
    if (worker.get() != nullptr) worker->kill(reason);
  }

  void rejectWaiters(const std::string& why) {
    for (auto& w : upWaiters) w->reject(KJ_EXCEPTION(DISCONNECTED, why));
    upWaiters.clear();
    wakeLogin();
  }
  void wakeLogin() {
    for (auto& w : loginWaiters) w->fulfill();
    loginWaiters.clear();
  }

  ChannelHost& host;
  config::ChannelAccountConfig config;
  std::string label;
  std::vector<egress::Rule> rules;
  std::unique_ptr<egress::Endpoint> endpoint;
  kj::Own<LaunchedWorker> worker;
  kj::Maybe<rpc::ChannelWorker::Client> client;  // once `start` has returned
  PortCapabilities caps;
  uint64_t generation = 0;
  std::string violationReason;
  bool failedForGood = false;  // cannot start until the owner changes something
  std::string state = "stopped", detail, identity;
  int64_t sinceMs = 0;
  uint32_t restarts = 0;
  uint32_t failuresInRow = 0;
  std::string lastExit;
  kj::TimePoint launchedAt = kj::origin<kj::TimePoint>();
  std::vector<kj::Own<kj::PromiseFulfiller<rpc::ChannelWorker::Client>>> upWaiters;
  std::string qr, pairingCode;
  uint64_t loginSeq = 0;
  uint64_t statusPushes = 0;  // status the worker pushed (so a slower query answer is older)
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> loginWaiters;
  kj::Canceler canceler;  // everything in flight for this account (start, restart delay, exit)
};

// The InboundSink of one worker: whoever holds it speaks as this account, and only while this
// worker (generation) is the account's current one.
class ChannelHost::Sink final : public rpc::InboundSink::Server {
 public:
  Sink(ChannelHost& host, Account& account, uint64_t generation)
      : host_(host), account_(account), generation_(generation) {}

  kj::Promise<void> message(MessageContext context) override {
    check();
    auto answered = host_.router_.message(account_, context.getParams().getMessage());
    // Copied by now (copyInbound): up to 64 MiB of attachments need not stay twice while the
    // message waits for a slot.
    context.releaseParams();
    return answered.then(
        [context](bool accepted) mutable { context.getResults().setAccepted(accepted); });
  }

  kj::Promise<void> status(StatusContext context) override {
    check();
    ++account_.statusPushes;
    if (const char* problem = host_.applyStatus(account_, context.getParams().getStatus()))
      return violation(problem);
    return kj::READY_NOW;
  }

  kj::Promise<void> login(LoginContext context) override {
    check();
    auto p = context.getParams();
    if (p.getQr().size() > MAX_QR_BYTES) return violation("login: QR payload over 4 KiB");
    if (p.getPairingCode().size() > MAX_PAIRING_CODE_BYTES)
      return violation("login: pairing code over 64 bytes");
    account_.qr = clip(p.getQr(), MAX_QR_BYTES);
    account_.pairingCode = clip(p.getPairingCode(), MAX_PAIRING_CODE_BYTES);
    ++account_.loginSeq;
    account_.wakeLogin();
    return kj::READY_NOW;
  }

 private:
  void check() {
    if (account_.generation != generation_ || host_.stopping_)
      throw KJ_EXCEPTION(DISCONNECTED, "this channel worker has been replaced");
  }
  kj::Promise<void> violation(const char* what) {
    account_.violation(std::string("protocol violation: ") + what);
    return KJ_EXCEPTION(FAILED, "refused", what);
  }

  ChannelHost& host_;
  Account& account_;
  uint64_t generation_;
};

ChannelHost::ChannelHost(WorkerLauncher& launcher, EgressBroker* broker, ChannelRouter& router,
                         audit::AuditLog& audit, kj::Timer& timer, HostSettings settings,
                         std::vector<config::ChannelAccountConfig> accounts)
    : launcher_(launcher),
      broker_(broker),
      router_(router),
      audit_(audit),
      timer_(timer),
      settings_(std::move(settings)),
      errors_("channel host"),
      tasks_(errors_) {
  if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  for (auto& a : accounts) accounts_.push_back(std::make_unique<Account>(*this, std::move(a)));
}

ChannelHost::~ChannelHost() noexcept(false) { stop(); }

void ChannelHost::start() {
  for (auto& a : accounts_) {
    if (a->config.disabled()) {
      setState(*a, "disabled", "disabled: true in chitin.conf");
      continue;
    }
    try {
      router_.attach(*a);
    } catch (const std::exception& e) {
      fail(*a, e.what());
      continue;
    }
    launch(*a);
  }
}

void ChannelHost::stop() {
  if (stopping_) return;
  stopping_ = true;
  for (auto& a : accounts_) {
    a->canceler.cancel("the channel host is stopping");
    a->client = nullptr;
    a->rejectWaiters("the gateway is shutting down");
    router_.detach(*a);
    a->worker = nullptr;  // kills it
    a->endpoint = nullptr;
    if (a->state != "disabled" && a->state != "failed") setState(*a, "stopped", "");
  }
}

void ChannelHost::launch(Account& a) {
  if (stopping_) return;
  uint64_t generation = ++a.generation;
  a.violationReason.clear();
  a.client = nullptr;
  std::string credential;
  try {
    // The allowlist first: `chitin channels status` shows it even when a later step fails.
    a.rules = egressRules(a.config, settings_.egress);
    std::string path = a.config.credential_file().empty()
                           ? defaultCredentialPath(settings_.homeDir, a.kind(), a.account())
                           : a.config.credential_file();
    bool missing = false;
    const KindInfo* info = kindInfo(a.kind());
    if (info != nullptr && !info->credentialRequired)
      credentialProblem(path, settings_.serviceUid, missing);
    // A kind that works without a secret runs with none when there is no file at all.
    if (!missing) credential = readCredential(path, settings_.serviceUid);
    std::string stateDir = ensureStateDir(settings_.homeDir, a.kind(), a.account());
    if (broker_ == nullptr)
      throw AccountError(
          "no egress broker is available, and channel workers reach their "
          "platform only through it");
    a.endpoint = broker_->open("channel:" + a.kind() + ":" + a.account(), a.rules);
    LaunchRequest request{
        "channel-" + a.kind(), {{"STATE_DIR", stateDir}}, a.endpoint->socketPath(), a.label};
    a.worker = launcher_.launch(request);
  } catch (const AccountError& e) {
    fail(a, e.what());
    return;
  } catch (const std::exception& e) {
    a.endpoint = nullptr;
    exited(a, generation, WorkerExit{-1, 0, std::string("could not start: ") + e.what()});
    return;
  } catch (const kj::Exception& e) {
    a.endpoint = nullptr;
    exited(a, generation,
           WorkerExit{-1, 0, std::string("could not start: ") + e.getDescription().cStr()});
    return;
  }
  a.launchedAt = timer_.now();
  setState(a, "starting", "");
  tasks_.add(a.canceler.wrap(a.worker->onExit()).then([this, &a, generation](WorkerExit exit) {
    exited(a, generation, kj::mv(exit));
  }));
  // A message past the connection's bounds already failed the connection; the worker is a
  // protocol breaker like one whose message broke the inbound bounds.
  tasks_.add(a.canceler.wrap(a.worker->onViolation()).then([&a, generation](std::string what) {
    if (a.generation == generation) a.violation("protocol violation: " + what);
  }));

  auto client = a.worker->client();
  auto req = client.startRequest();
  auto s = req.initSettings();
  s.setKind(a.kind());
  s.setAccount(a.account());
  // The one place the credential leaves the supervisor: into this worker's start call.
  s.setCredential(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(credential.data()),
                                      credential.size()));
  sodium_memzero(credential.data(), credential.size());
  auto options = s.initOptions(a.config.options().size());
  size_t i = 0;
  for (const auto& [key, value] : a.config.options()) {
    options[i].setKey(key);
    options[i].setValue(value);
    ++i;
  }
  s.setMaxAttachmentBytes(settings_.maxAttachmentBytes);
  req.setSink(kj::heap<Sink>(*this, a, generation));
  auto answered = req.send().then(
      [this, &a, generation](capnp::Response<rpc::ChannelWorker::StartResults>&& response) {
        started(a, generation, response.getCapabilities());
      },
      [this, &a, generation](kj::Exception&& e) { startFailed(a, generation, kj::mv(e)); });
  auto timeout = timer_.afterDelay(settings_.startTimeout).then([&a, generation]() {
    if (a.generation == generation) a.violation("did not answer ChannelWorker.start in time");
  });
  tasks_.add(a.canceler.wrap(answered.exclusiveJoin(kj::mv(timeout))));
}

void ChannelHost::started(Account& a, uint64_t generation, rpc::Capabilities::Reader caps) {
  if (a.generation != generation || a.worker.get() == nullptr) return;
  a.caps.maxMessageChars = caps.getMaxMessageChars();
  a.caps.reactions = caps.getReactions();
  a.caps.typing = caps.getTyping();
  a.caps.attachments = caps.getAttachments();
  auto client = a.worker->client();
  a.client = client;
  for (auto& w : a.upWaiters) w->fulfill(rpc::ChannelWorker::Client(client));
  a.upWaiters.clear();
  spdlog::info("{}: started", a.label);
  // Its state right after start (later changes it pushes itself). A push that arrives while
  // the query is on its way is newer than the answer: then the answer is dropped.
  uint64_t pushes = a.statusPushes;
  tasks_.add(a.canceler.wrap(client.statusRequest().send().then(
      [this, &a, generation,
       pushes](capnp::Response<rpc::ChannelWorker::StatusResults>&& response) {
        if (a.generation != generation || a.statusPushes != pushes) return;
        if (const char* problem = applyStatus(a, response.getStatus()))
          a.violation(std::string("protocol violation: ") + problem);
      })));
}

void ChannelHost::startFailed(Account& a, uint64_t generation, kj::Exception&& e) {
  if (a.generation != generation) return;
  if (e.getType() == kj::Exception::Type::DISCONNECTED) return;  // it died: exited() restarts it
  // The worker refused its settings (an unknown option, a malformed value): another worker
  // would refuse them too.
  std::string why = clip(e.getDescription(), 400);
  if (why.rfind("remote exception: ", 0) == 0) why = why.substr(18);
  fail(a, "the worker refused its settings: " + why);
  if (a.worker.get() != nullptr) a.worker->kill("settings refused");
}

void ChannelHost::exited(Account& a, uint64_t generation, WorkerExit exit) {
  if (a.generation != generation) return;
  bool killed = !a.violationReason.empty();
  a.lastExit = exit.describe() + (killed ? " (" + a.violationReason + ")" : "");
  a.client = nullptr;
  if (a.worker.get() != nullptr) {
    audit::Record r;
    r.set_kind(audit::WORKER_EXIT);
    r.set_tool("channel-" + a.kind());
    r.set_principal("channel:" + a.kind() + "/" + a.account());
    r.set_outcome(killed ? "killed" : "exited");
    r.set_detail(a.lastExit);
    audit_.appendOrLog(std::move(r), false);
    // Not from inside the worker's own exit callback.
    tasks_.add(kj::evalLater([w = kj::mv(a.worker)]() mutable { w = nullptr; }));
  }
  a.endpoint = nullptr;  // its socket and any tunnel still open
  if (stopping_ || a.failedForGood) return;

  if (timer_.now() - a.launchedAt >= settings_.stableAfter) a.failuresInRow = 0;
  kj::Duration delay = settings_.restartInitial;
  for (uint32_t i = 0; i < a.failuresInRow && delay < settings_.restartMax; ++i) delay = delay * 2;
  if (delay > settings_.restartMax) delay = settings_.restartMax;
  // Full jitter in [delay/2, delay]: workers that died together do not return together.
  uint64_t ms = delay / kj::MILLISECONDS;
  ms =
      ms / 2 + randombytes_uniform(static_cast<uint32_t>(std::min<uint64_t>(ms / 2, 1u << 30)) + 1);
  ++a.failuresInRow;
  ++a.restarts;
  setState(a, "restarting",
           "the worker " + exit.describe() + (killed ? " (" + a.violationReason + ")" : "") +
               "; starting again in " + std::to_string((ms + 999) / 1000) + " s");
  tasks_.add(
      a.canceler.wrap(timer_.afterDelay(ms * kj::MILLISECONDS)).then([this, &a]() { launch(a); }));
}

const char* ChannelHost::applyStatus(Account& a, rpc::ChannelStatus::Reader s) {
  const char* state = stateName(s.getState());
  if (state == nullptr) return "status: unknown state";
  if (s.getDetail().size() > MAX_STATUS_DETAIL_BYTES) return "status: detail over 4 KiB";
  if (s.getIdentity().size() > MAX_IDENTITY_BYTES) return "status: identity over 256 bytes";
  if (s.getIdentity().size() > 0) a.identity = clip(s.getIdentity(), MAX_IDENTITY_BYTES);
  setState(a, state, clip(s.getDetail(), 512));
  return nullptr;
}

void ChannelHost::setState(Account& a, std::string state, std::string detail) {
  a.state = std::move(state);
  a.detail = std::move(detail);
  a.sinceMs = unixMillis();
  // A login in progress passes through these on its way to a QR code or pairing code (the
  // bridge says "connecting" first): a follower woken by them would see no code yet and, with
  // nothing to pass as `after`, begin the login again.
  if (a.state != "starting" && a.state != "reconnecting") a.wakeLogin();
}

void ChannelHost::fail(Account& a, const std::string& detail) {
  a.failedForGood = true;
  spdlog::error("{}: {}", a.label, detail);
  setState(a, "failed", detail);
  a.rejectWaiters(detail);
}

gateway::ChannelsStatus ChannelHost::status() const {
  gateway::ChannelsStatus out;
  for (const auto& a : accounts_) {
    auto* s = out.add_accounts();
    s->set_kind(a->kind());
    s->set_account(a->account());
    s->set_state(a->state);
    s->set_detail(a->detail);
    s->set_identity(a->identity);
    if (a->sinceMs > 0) s->set_since(rfc3339(a->sinceMs / 1000));
    s->set_restarts(a->restarts);
    s->set_last_exit(a->lastExit);
    for (const auto& r : a->rules) {
      s->add_egress(r.text() + " (" + r.origin + (r.privateOk ? ", private allowed" : "") + ")");
    }
    s->set_running(a->client != nullptr);
  }
  return out;
}

gateway::ChannelLoginResult ChannelHost::loginResult(const Account& a) const {
  gateway::ChannelLoginResult r;
  r.set_qr(a.qr);
  for (auto& row : qrRows(a.qr)) r.add_qr_rows(std::move(row));
  r.set_pairing_code(a.pairingCode);
  r.set_seq(a.loginSeq);
  r.set_state(a.state);
  r.set_detail(a.detail);
  return r;
}

kj::Promise<gateway::Result<gateway::ChannelLoginResult>> ChannelHost::login(
    const gateway::ChannelLoginParams& params) {
  using R = gateway::Result<gateway::ChannelLoginResult>;
  std::string account = params.account().empty() ? "default" : params.account();
  Account* found = nullptr;
  for (auto& a : accounts_) {
    if (a->kind() == params.kind() && a->account() == account) found = a.get();
  }
  if (found == nullptr)
    return R(gateway::UserError{"NOT_FOUND", "no channel account " + clipUtf8(params.kind(), 32) +
                                                 "/" + clipUtf8(account, 32) +
                                                 " is configured (see `chitin channels list`)"});
  Account& a = *found;
  rpc::ChannelWorker::Client client = nullptr;
  KJ_IF_MAYBE (c, a.client) {
    client = *c;
  } else {
    return R(gateway::UserError{
        "UNAVAILABLE", "the worker of " + a.kind() + "/" + a.account() + " is not running (" +
                           a.state + (a.detail.empty() ? "" : ": " + a.detail) + ")"});
  }
  uint64_t after = params.after();
  kj::Duration wait =
      (params.wait_seconds() == 0 ? 30 : std::min(params.wait_seconds(), 120u)) * kj::SECONDS;
  kj::Promise<void> begun = kj::READY_NOW;
  if (after == 0) {
    auto req = client.loginRequest();
    req.setPhoneNumber(params.phone_number());
    begun = req.send().ignoreResult();
  }
  auto answer =
      begun
          .then([this, &a, after, wait]() -> kj::Promise<void> {
            if (a.loginSeq > after || a.state == "connected") return kj::READY_NOW;
            auto paf = kj::newPromiseAndFulfiller<void>();
            a.loginWaiters.push_back(kj::mv(paf.fulfiller));
            return paf.promise.exclusiveJoin(timer_.afterDelay(wait));
          })
          .then(
              [this, &a]() -> R { return loginResult(a); },
              [](kj::Exception&& e) -> R {
                return gateway::UserError{"UNAVAILABLE", "login: " + clip(e.getDescription(), 300)};
              });
  return a.canceler.wrap(kj::mv(answer));
}

kj::Promise<std::vector<std::string>> ChannelHost::sendMessage(OutgoingMessage message) {
  auto refuse = [](const std::string& why) -> kj::Promise<std::vector<std::string>> {
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(why));
  };
  Account* chosen = nullptr;
  for (auto& a : accounts_) {
    if (a->kind() != message.channel || a->config.disabled() || a->failedForGood) continue;
    if (chosen == nullptr || (chosen->client == nullptr && a->client != nullptr)) chosen = a.get();
  }
  if (chosen == nullptr)
    return refuse("no " + message.channel + " account is configured and running on this instance");
  Account& a = *chosen;
  auto up = a.whenUp().exclusiveJoin(
      timer_.afterDelay(settings_.startTimeout).then([&a]() -> rpc::ChannelWorker::Client {
        kj::throwFatalException(
            kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                          kj::str("the ", a.kind(), "/", a.account(), " worker is not running (",
                                  a.state, a.detail.empty() ? "" : ": ", a.detail, ")")));
      }));
  auto sent = up.then([message = kj::mv(message)](rpc::ChannelWorker::Client worker) {
                  auto req = worker.sendRequest();
                  auto m = req.initMessage();
                  m.setChatId(message.chatId);
                  m.setText(message.text);
                  auto files = m.initAttachments(message.files.size());
                  for (size_t i = 0; i < message.files.size(); ++i) {
                    const auto& f = message.files[i];
                    files[i].setName(f.name);
                    files[i].setMimeType(f.mimeType);
                    files[i].setData(capnp::Data::Reader(
                        reinterpret_cast<const capnp::byte*>(f.data.data()), f.data.size()));
                    files[i].setSize(f.data.size());
                  }
                  return req.send();
                }).then([](capnp::Response<rpc::ChannelWorker::SendResults>&& response) {
    // Ids for the tool's answer to the model: bounded like everything a worker
    // says.
    std::vector<std::string> ids;
    for (auto id : response.getMessageIds()) {
      if (ids.size() == 1000) break;
      ids.push_back(clip(id, 256));
    }
    return ids;
  });
  return a.canceler.wrap(kj::mv(sent));
}

}  // namespace chitin::channels
