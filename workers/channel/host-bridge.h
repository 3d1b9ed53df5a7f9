// SPDX-License-Identifier: Apache-2.0
// The Host a platform calls from its receive and outbound threads, carried over to the RPC
// thread where the supervisor's InboundSink lives.
// Runs in: worker (sandboxed)
//
// The platform's threads never touch Cap'n Proto. They put deliveries, status changes and login
// codes on a mutex-guarded queue and wake the RPC thread through a cross-thread fulfiller; the
// RPC thread's pump() sends each to the sink in order. deliver() then waits on a condition
// variable for the sink's answer. stop() -- on the RPC thread, at shutdown -- wakes every such
// wait and every sleepFor(), so no platform thread is ever left waiting on an event loop that
// has gone, and the threads can be joined without deadlock.

#pragma once

#include <kj/async.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "channel.capnp.h"
#include "platform.h"

namespace chitin::channel {

// A std::string as Cap'n Proto text, without a copy (the string outlives the call).
inline kj::StringPtr text(const std::string& s) { return kj::StringPtr(s.c_str(), s.size()); }

class HostBridge final : public Host, private kj::TaskSet::ErrorHandler {
 public:
  // On the RPC thread.
  explicit HostBridge(rpc::InboundSink::Client sink);
  ~HostBridge() noexcept;

  // RPC thread: sends what the platform threads queue, until this bridge is destroyed.
  void startPumping();
  // RPC thread: from now on stopping() is true, deliver() throws Stopping and sleepFor()
  // returns false, including in the calls that are waiting right now.
  void stop();

  // The last status, for ChannelWorker.status (any thread).
  void snapshot(rpc::ChannelStatus::Builder status);
  State state() const;

  // Host, from any thread.
  bool deliver(Inbound message) override;
  void status(State state, const std::string& detail, const std::string& identity = "") override;
  void login(const std::string& qr, const std::string& pairingCode) override;
  bool sleepFor(std::chrono::milliseconds d) override;
  bool stopping() const override;

 private:
  struct Delivery;
  struct Item;

  void enqueue(Item item);   // platform threads
  kj::Promise<void> pump();  // RPC thread
  void send(Item& item);     // RPC thread
  void taskFailed(kj::Exception&& exception) override;

  rpc::InboundSink::Client sink_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;  // a delivery answered, or stop()
  // Guarded by mutex_:
  bool stopping_ = false;
  std::deque<Item> queue_;
  kj::Own<kj::CrossThreadPromiseFulfiller<void>> wake_;  // set while pump() waits
  State state_ = State::STARTING;
  std::string detail_;
  std::string identity_;
  int64_t sinceMs_ = 0;

  kj::TaskSet tasks_;  // last: destroyed (cancelled) first
};

// Capnp <-> platform.h conversions, shared with the server.
rpc::ChannelStatus::State toRpc(State state);
int64_t nowMs();

}  // namespace chitin::channel
