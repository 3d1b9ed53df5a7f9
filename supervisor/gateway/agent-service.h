// SPDX-License-Identifier: Apache-2.0
// What the gateway asks of the rest of the supervisor: the seam between the WebSocket edge and
// the agent core. The gateway owns framing, authentication and per-connection state; the core
// owns sessions, runs and transcripts. Both run on the supervisor's single loop thread.
// Runs in: supervisor

#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "gateway.pb.h"

namespace chitin::gateway {

// Who is asking, as established by `connect` (the token proves the client may use the gateway;
// these fields are the client's own description, used for default session keys).
struct ClientIdentity {
  std::string connId;
  std::string clientId;  // "cli", "webchat", ...
  std::string user;      // the local user the client says it runs as
};

// Receives one run's events, in order, on the loop thread. The core holds it only until
// `finished`; the gateway must cope with its connection having closed in between.
class RunSink {
 public:
  virtual ~RunSink() = default;
  virtual void event(const AgentEvent& event) = 0;
  virtual void finished(const AgentResult& result) = 0;
};

// An error the gateway may show to the client as is (code + message).
struct UserError {
  std::string code;  // "INVALID_REQUEST", "NOT_FOUND", "UNAVAILABLE", ...
  std::string message;
};

template <typename T>
using Result = std::variant<T, UserError>;

class AgentService {
 public:
  virtual ~AgentService() = default;

  // Validates and starts a turn. On success the sink receives events and exactly one
  // `finished`, possibly before this returns for immediate failures (e.g. no model configured
  // still produces a finished result with the explanation as the reply).
  virtual Result<AgentAccepted> startRun(const AgentParams& params, const ClientIdentity& who,
                                         std::shared_ptr<RunSink> sink) = 0;
  virtual Result<bool> abortRun(const std::string& runId) = 0;
  virtual Result<ChatHistory> history(const ChatHistoryParams& params,
                                      const ClientIdentity& who) = 0;
  virtual SessionsList sessions() = 0;
  virtual StatusPayload status() = 0;

  // The methods beyond chat (approvals.*, pairing.*, policy.reload, workspace.rollback). The
  // gateway has authenticated the client and bounded the frame; the service validates the
  // params against the method's message. nullopt: not a method of this service.
  virtual std::optional<Result<google::protobuf::Struct>> control(
      const std::string& method, const google::protobuf::Struct& params,
      const ClientIdentity& who) {
    return std::nullopt;
  }
  // A control method whose answer comes later (workspace.rollback waits for the snapshot
  // thread). false: not such a method. Otherwise `reply` is called exactly once, on the event
  // loop, possibly after the client has gone (it then does nothing).
  using ControlReply = std::function<void(Result<google::protobuf::Struct>)>;
  virtual bool controlLater(const std::string& method, const google::protobuf::Struct& params,
                            const ClientIdentity& who, ControlReply reply) {
    return false;
  }
  // The methods control() and controlLater() answer (announced in hello-ok).
  virtual std::vector<std::string> controlMethods() const { return {}; }

  // Events for every authenticated client (approval.requested, approval.resolved). Set by
  // whoever owns the gateway.
  using Broadcast =
      std::function<void(const std::string& event, const google::protobuf::Message& payload)>;
  void setBroadcast(Broadcast broadcast) { broadcast_ = std::move(broadcast); }

 protected:
  void broadcast(const std::string& event, const google::protobuf::Message& payload) {
    if (broadcast_) broadcast_(event, payload);
  }

 private:
  Broadcast broadcast_;
};

}  // namespace chitin::gateway
