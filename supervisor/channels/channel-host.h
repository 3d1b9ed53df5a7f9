// SPDX-License-Identifier: Apache-2.0
// The channel host: one sandboxed worker per configured chat platform account, kept running.
// Runs in: supervisor
//
// For each enabled account, in order (any step failing leaves the account `failed`, with the
// reason in `chitin channels status`, and starts nothing):
//   credential read (account-setup.h: a 0600 file of the service user) -> state directory
//   $CHITIN_HOME/state/channels/<kind>/<account> (0700) -> egress allowlist (channel-kinds.h)
//   -> an egress endpoint for it (the broker's socket for this worker alone) -> spawn in the
//   `channel-<kind>` profile with STATE_DIR and that socket -> ChannelWorker.start(settings with
//   the credential, a sink of its own) within 30 s.
// The sink is the worker's identity: messages it delivers are routed as this account's
// (channel-router.h); its status and login pushes are kept here, bounded. A worker that breaks
// the protocol is killed. A worker that ends for any reason (crash, kill, violation) is audited
// (WORKER_EXIT) and started again after a jittered exponential delay (1 s doubling to 5 min;
// reset after a minute of running); one whose `start` refused its settings is not (the owner
// must fix the config). The credential is read again at every start, so a replaced token is
// picked up by the next worker.

#pragma once

#include <kj/async.h>
#include <kj/timer.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "audit-log.h"
#include "broker.h"
#include "channel-router.h"
#include "config.pb.h"
#include "gateway.pb.h"
#include "message-tool.h"
#include "task-errors.h"
#include "worker-host.h"

namespace chitin::channels {

// The egress broker as the host needs it (supervisor/egress/broker.h): one endpoint per
// worker, admitting exactly its rules. Throws when the endpoint cannot be set up (the worker
// then does not start: fail closed).
class EgressBroker {
 public:
  virtual ~EgressBroker() = default;
  // `worker` names it in the broker's audit records: "channel:telegram:default".
  virtual std::unique_ptr<egress::Endpoint> open(const std::string& worker,
                                                 std::vector<egress::Rule> rules) = 0;
};

// The supervisor's broker (supervisor/egress/broker.h) as the host uses it.
class BrokerEndpoints final : public EgressBroker {
 public:
  explicit BrokerEndpoints(egress::Broker& broker) : broker_(broker) {}
  std::unique_ptr<egress::Endpoint> open(const std::string& worker,
                                         std::vector<egress::Rule> rules) override {
    return broker_.open(worker, std::move(rules));
  }

 private:
  egress::Broker& broker_;
};

// One started channel worker: a sandboxed process in production, an in-process fake in tests.
class LaunchedWorker {
 public:
  virtual ~LaunchedWorker() noexcept(false) = default;  // kills the worker
  virtual rpc::ChannelWorker::Client client() = 0;      // the same capability every time
  virtual kj::Promise<WorkerExit> onExit() = 0;         // once; never rejects
  virtual void kill(const std::string& reason) = 0;
  // Resolves with what the worker broke when a message it sent could not be read within
  // channelReaderOptions (inbound.h): over the traversal limit, malformed framing. Never
  // otherwise. The host then kills it as a protocol breaker.
  virtual kj::Promise<std::string> onViolation() = 0;
};

struct LaunchRequest {
  std::string profile;                      // "channel-telegram"
  std::map<std::string, std::string> vars;  // {"STATE_DIR": ...}
  std::string egressSocket;                 // the endpoint's host path
  std::string label;                        // "channel worker telegram/default"
};

class WorkerLauncher {
 public:
  virtual ~WorkerLauncher() = default;
  // Throws spawn::SandboxUnavailable (or any exception) when the worker cannot be started.
  virtual kj::Own<LaunchedWorker> launch(const LaunchRequest& request) = 0;
};

struct HostSettings {
  std::string homeDir;
  uid_t serviceUid = 0;  // credential files must belong to it
  uint64_t maxAttachmentBytes = 20u << 20;
  config::EgressConfig egress;  // egress.allow_private: the private destinations the owner named
  kj::Duration restartInitial = 1 * kj::SECONDS;
  kj::Duration restartMax = 300 * kj::SECONDS;
  kj::Duration stableAfter = 60 * kj::SECONDS;  // running this long resets the delay
  kj::Duration startTimeout = 30 * kj::SECONDS;
};

// Also the `message` tool's sender (message-tool.h): a message to "<kind>:<chat>" goes out
// through the first configured account of that kind (in config order) whose worker is up, or
// comes up within 30 s.
class ChannelHost final : public ChannelSender {
 public:
  // `broker` null: no egress broker in this build; every account fails with that reason.
  ChannelHost(WorkerLauncher& launcher, EgressBroker* broker, ChannelRouter& router,
              audit::AuditLog& audit, kj::Timer& timer, HostSettings settings,
              std::vector<config::ChannelAccountConfig> accounts);
  ~ChannelHost() noexcept(false) override;

  // Starts every enabled account (each one's failure is its own status).
  void start();
  // Stops every worker; later replies are dropped (SIGTERM path).
  void stop();

  gateway::ChannelsStatus status() const;
  // `channels.login`: begins or follows an interactive login (see gateway.proto).
  kj::Promise<gateway::Result<gateway::ChannelLoginResult>> login(
      const gateway::ChannelLoginParams& params);

  kj::Promise<std::vector<std::string>> sendMessage(OutgoingMessage message) override;

  struct Account;

 private:
  class Sink;
  friend class Sink;
  void launch(Account& account);
  void started(Account& account, uint64_t generation, rpc::Capabilities::Reader caps);
  void startFailed(Account& account, uint64_t generation, kj::Exception&& e);
  void exited(Account& account, uint64_t generation, WorkerExit exit);
  // A worker's status, checked: nullptr when kept, else what broke the bounds.
  const char* applyStatus(Account& account, rpc::ChannelStatus::Reader status);
  void setState(Account& account, std::string state, std::string detail);
  void fail(Account& account, const std::string& detail);
  gateway::ChannelLoginResult loginResult(const Account& account) const;

  WorkerLauncher& launcher_;
  EgressBroker* broker_;
  ChannelRouter& router_;
  audit::AuditLog& audit_;
  kj::Timer& timer_;
  HostSettings settings_;
  std::vector<std::unique_ptr<Account>> accounts_;
  bool stopping_ = false;
  LogTaskErrors errors_;
  kj::TaskSet tasks_;
};

}  // namespace chitin::channels
