// SPDX-License-Identifier: Apache-2.0
// One client connection's protocol state: the connect handshake, method dispatch, and the
// replies and events of the runs it started. Transport-agnostic: whole text messages in,
// frames out through an Outbox.
// Runs in: supervisor
//
// The gateway (gateway.c++) owns the WebSocket side and looks connections up by serial number;
// runs report back through a RunRouter so a run that outlives its connection finds nothing
// and its callbacks are dropped.

#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent-service.h"
#include "auth-limiter.h"
#include "frames.h"
#include "gateway.h"

namespace chitin::gateway {

constexpr uint32_t PROTOCOL_VERSION = 1;
// Before `connect` succeeds a client may send only a small frame: it cannot make the gateway
// parse (and pay for) a large one without the token.
constexpr uint32_t MAX_UNAUTHENTICATED_FRAME_BYTES = 16 * 1024;
constexpr std::chrono::seconds CONNECT_TIMEOUT{10};
constexpr std::chrono::minutes IDEMPOTENCY_WINDOW{10};
constexpr size_t MAX_IDEMPOTENCY_KEYS = 1024;

class Connection;

// Finds a live connection by serial; nullptr once it has gone.
class RunRouter {
 public:
  virtual ~RunRouter() = default;
  virtual Connection* findConnection(uint64_t serial) = 0;
};

// Where a connection's frames go.
class Outbox {
 public:
  virtual ~Outbox() = default;
  virtual void send(std::string frame) = 0;
  // Closes after the frames already sent have been flushed.
  virtual void close(uint16_t code, std::string reason) = 0;
};

// What all connections of one gateway share.
struct ConnectionContext {
  const GatewayOptions& options;
  AgentService& service;
  AuthLimiter& limiter;
  std::function<std::chrono::steady_clock::time_point()> clock;
  std::function<uint32_t()> connectionCount;
  std::chrono::steady_clock::time_point startedAt;
  std::weak_ptr<RunRouter> router;
};

class Connection {
 public:
  Connection(ConnectionContext& context, Outbox& outbox, uint64_t serial,
             std::string remoteAddress);
  ~Connection();

  uint64_t serial() const { return serial_; }
  const std::string& connId() const { return identity_.connId; }
  bool authenticated() const { return authenticated_; }
  // The largest message the transport should reassemble for this connection right now.
  uint32_t maxMessageBytes() const;

  // Sends the connect.challenge. Call once, when the transport is open.
  void open();
  // One complete text message.
  void onMessage(std::string_view text);
  // A message that exceeded maxMessageBytes() and was dropped unread.
  void onOversized();
  void onBinary();
  // Periodic housekeeping: the connect deadline, a failed handshake's late answer (auth-limiter.h),
  // expiry of idempotency keys.
  void onTick();

  // Called (through the RunRouter) by the sinks of runs this connection started.
  void runEvent(uint64_t slot, const AgentEvent& event);
  void runFinished(uint64_t slot, const AgentResult& result);
  // A gateway-wide event (approvals); dropped for connections that have not authenticated.
  void broadcastEvent(std::string_view event, const google::protobuf::Message& payload);

 private:
  struct Run {
    std::vector<std::string> requestIds;  // requests owed the final reply
    std::string idempotencyKey;
    bool accepted = false;  // events arriving before the "accepted" reply wait here
    std::vector<AgentEvent> early;
    std::optional<AgentResult> earlyResult;
  };
  struct Remembered {
    AgentAccepted accepted;
    uint64_t slot;
    std::optional<AgentResult> result;
    std::chrono::steady_clock::time_point at;
  };

  void handleConnect(const frames::Request& request);
  void refuse(std::string_view id, UserError error);
  void dispatch(const frames::Request& request);
  void startAgent(const frames::Request& request);
  void abortAgent(const frames::Request& request);
  void failHandshake(std::string_view id, UserError error, bool countsAsFailure);
  void reply(std::string_view id, const google::protobuf::Message& payload);
  void replyError(std::string_view id, UserError error);
  void sendEvent(std::string_view event, const google::protobuf::Message& payload);
  void internalError(std::string_view id, std::string_view method, std::string_view detail);
  std::shared_ptr<RunSink> makeSink(uint64_t slot);

  ConnectionContext& context_;
  Outbox& outbox_;
  uint64_t serial_;
  std::string remoteAddress_;
  std::string nonce_;
  std::chrono::steady_clock::time_point openedAt_;
  bool authenticated_ = false;
  bool closing_ = false;
  // A failed handshake waiting for its answer (the limiter's penalty), and when it is due.
  struct HeldRefusal {
    std::string id;
    UserError error;
    std::chrono::steady_clock::time_point due;
  };
  std::optional<HeldRefusal> held_;
  uint32_t nextSeq_ = 1;
  ClientIdentity identity_;
  uint64_t nextSlot_ = 1;
  std::map<uint64_t, Run> runs_;
  std::map<std::string, Remembered, std::less<>> idempotency_;
};

}  // namespace chitin::gateway
