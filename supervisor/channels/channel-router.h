// SPDX-License-Identifier: Apache-2.0
// The channel router: from a channel worker's inbound message to a run of the agent, and from
// the run back to the same chat.
// Runs in: supervisor
//
// For each message a channel worker delivers (InboundSink.message), in order:
//   bounds (inbound.h; a violation kills the worker) -> duplicate? (seen-store.h: answered
//   `accepted = false`, nothing else happens) -> a slot: at most `maxRunsPerPort` runs and a
//   rate per worker, callers beyond `maxWaitingPerPort` refused with OVERLOADED (the worker
//   delivers again later) -> the id recorded -> AgentService::startRun with the worker's own
//   (kind) as channel and the sender's id: the agent core decides (chat policy, pairing,
//   mention gating, sessions). The answer to the worker waits until the id is durable (synced
//   beside the run's start), since the worker records its progress only once it has it.
// When the agent's turn really starts (its `lifecycle start` event; never for a message that is
// ignored, denied or answered with a pairing code): attachments are written into the
// workspace inbox/, the acknowledgement reaction is sent, typing starts and is refreshed until
// the run ends. When it ends: typing stops and the reply (or the pairing code, the denial, an
// error) is sent with ChannelWorker.send to the chat it came from, by whichever worker of that
// account is up by then. An approval the run waits for is asked on that chat too.
//
// Who a message is from is *which worker delivered it*: (kind, account) come from the
// ChannelPort the host attached, never from the message. Owns: the per-worker seen stores,
// slots and the runs it started. May call: the agent service, the ports, the workspace inbox,
// the untrusted-files record.

#pragma once

#include <kj/async.h>
#include <kj/function.h>
#include <kj/timer.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include "agent-service.h"
#include "channel.capnp.h"
#include "inbound.h"
#include "seen-store.h"
#include "taint.h"
#include "task-errors.h"

namespace chitin::channels {

struct PortCapabilities {
  uint32_t maxMessageChars = 0;
  bool reactions = false;
  bool typing = false;
  bool attachments = false;
};

// One channel account as the router sees it (implemented by ChannelHost; alive across worker
// restarts, attached for as long as the account is configured).
class ChannelPort {
 public:
  virtual ~ChannelPort() noexcept(false) = default;
  virtual const std::string& kind() const = 0;
  virtual const std::string& account() const = 0;
  // The worker, once it has started (now, or after a restart). Rejects if the account stops.
  virtual kj::Promise<rpc::ChannelWorker::Client> whenUp() = 0;
  // The worker if it is up right now (typing and reactions are not worth waiting for).
  virtual kj::Maybe<rpc::ChannelWorker::Client> current() = 0;
  // Which worker whenUp()/current() give: a new number for every worker started.
  virtual uint64_t workerGeneration() const = 0;
  // What the running worker said it can do (ChannelWorker.start).
  virtual PortCapabilities capabilities() const = 0;
  // The worker broke the protocol: kill it. `reason` names what it did.
  virtual void violation(const std::string& reason) = 0;
};

struct RouterSettings {
  std::string workspaceDir;  // where inbox/ is
  std::string seenDir;       // $CHITIN_HOME/state/channel-seen (0700, created by the caller)
  std::string ackReaction = "\xF0\x9F\x91\x80";  // "" = none
  uint64_t maxAttachmentBytes = 20u << 20;
  kj::Duration typingInterval = 4 * kj::SECONDS;
  kj::Duration replyWait = 120 * kj::SECONDS;  // a reply waits this long for a restarting worker
  uint32_t maxRunsPerPort = 8;
  uint32_t maxWaitingPerPort = 16;
  uint64_t maxHeldBytesPerPort = 64u << 20;              // attachments held until their turns start
  kj::Duration messageInterval = 50 * kj::MILLISECONDS;  // 20 messages a second per worker...
  uint32_t burst = 40;                                   // ...after a burst of this many
  size_t seenCapacity = SeenStore::DEFAULT_CAPACITY;
};

class ChannelRouter {
 public:
  // `untrusted` (may be null in tests) records the saved attachments as untrusted content.
  // `loop` runs the seen-stores' syncs on its pool; without one (tests) they sync in place.
  ChannelRouter(gateway::AgentService& agent, kj::Timer& timer, UntrustedFiles* untrusted,
                RouterSettings settings, uv_loop_t* loop = nullptr);
  ~ChannelRouter();

  // Starts routing for `port` (opens its seen store: throws std::runtime_error naming the file).
  void attach(ChannelPort& port);
  // Stops: later calls for it fail; runs it started still end, their replies are dropped.
  void detach(ChannelPort& port);

  // InboundSink.message from `port`'s worker. Resolves to true once the message id is recorded
  // (the run is started by then), false for a duplicate. Throws (rejects) after killing the
  // worker for a message that breaks the bounds, OVERLOADED when too many wait.
  kj::Promise<bool> message(ChannelPort& port, rpc::InboundMessage::Reader message);

  // The agent's `approval.requested` broadcast: a run this router started asks on its chat.
  void approvalRequested(const gateway::ApprovalInfo& info);

  size_t activeRuns() const { return runs_.size(); }

  struct Run;
  struct Port;

 private:
  class Sink;
  friend class Sink;

  class SlotLease;
  class HeldBytes;
  kj::Promise<kj::Own<SlotLease>> slotFor(Port& port);
  kj::Promise<bool> admitted(const std::string& key, Inbound in, kj::Own<SlotLease> lease,
                             kj::Own<HeldBytes> held);
  void start(Port& port, Inbound in, kj::Own<SlotLease> lease, kj::Own<HeldBytes> held);
  kj::Promise<void> durable(SeenStore& seen);
  void releaseSlot(const std::string& key);
  void turnStarted(const std::shared_ptr<Run>& run);
  void runFinished(const std::shared_ptr<Run>& run, const gateway::AgentResult& result);
  kj::Promise<void> typingLoop(std::string key, std::string chatId);
  void send(const std::string& key, const std::string& chatId, const std::string& text,
            const std::string& replyTo, const std::string& threadId);
  struct Reply;
  kj::Promise<void> sendReply(std::shared_ptr<Reply> reply, kj::Maybe<uint64_t> notGeneration);
  // `what` on the worker if it is up now; failures are logged.
  void callNow(const std::string& key, const char* what,
               kj::Function<kj::Promise<void>(rpc::ChannelWorker::Client)> fn);

  gateway::AgentService& agent_;
  kj::Timer& timer_;
  uv_loop_t* loop_;
  UntrustedFiles* untrusted_;
  RouterSettings settings_;
  std::map<std::string, std::unique_ptr<Port>> ports_;  // by "<kind>/<account>"
  std::map<std::string, std::shared_ptr<Run>> runs_;    // by run id, until they end
  std::shared_ptr<bool> alive_;                         // run sinks outlive us in the core
  LogTaskErrors errors_;
  kj::TaskSet tasks_;
};

}  // namespace chitin::channels
