// SPDX-License-Identifier: Apache-2.0
// The gateway's view of the agent with channels added: every AgentService call goes to the
// agent core, and the control methods `channels.status` and `channels.login` to the channel
// host.
// Runs in: supervisor
//
// A decorator rather than more methods in the agent core, so that channels stay a room of
// their own (the core knows nothing of channel workers). Every caller holds the gateway token.

#pragma once

#include <kj/async.h>

#include "agent-service.h"
#include "channel-host.h"
#include "task-errors.h"

namespace chitin::channels {

class ChannelService final : public gateway::AgentService {
 public:
  ChannelService(gateway::AgentService& agent, ChannelHost& host);
  ~ChannelService() noexcept override {}

  gateway::Result<gateway::AgentAccepted> startRun(
      const gateway::AgentParams& params, const gateway::ClientIdentity& who,
      std::shared_ptr<gateway::RunSink> sink) override {
    return agent_.startRun(params, who, std::move(sink));
  }
  gateway::Result<bool> abortRun(const std::string& runId) override {
    return agent_.abortRun(runId);
  }
  gateway::Result<gateway::ChatHistory> history(const gateway::ChatHistoryParams& params,
                                                const gateway::ClientIdentity& who) override {
    return agent_.history(params, who);
  }
  gateway::SessionsList sessions() override { return agent_.sessions(); }
  gateway::StatusPayload status() override { return agent_.status(); }

  std::optional<gateway::Result<google::protobuf::Struct>> control(
      const std::string& method, const google::protobuf::Struct& params,
      const gateway::ClientIdentity& who) override;
  bool controlLater(const std::string& method, const google::protobuf::Struct& params,
                    const gateway::ClientIdentity& who, ControlReply reply) override;
  std::vector<std::string> controlMethods() const override;

 private:
  gateway::AgentService& agent_;
  ChannelHost& host_;
  LogTaskErrors errors_;
  kj::TaskSet tasks_;  // logins waiting for a QR code; dropped (answered by nobody) with us
};

}  // namespace chitin::channels
