// SPDX-License-Identifier: Apache-2.0
// The channel control methods in front of the agent core (see channel-service.h).
// Runs in: supervisor

#include "channel-service.h"

#include <spdlog/spdlog.h>

#include "frames.h"

namespace chitin::channels {

ChannelService::ChannelService(gateway::AgentService& agent, ChannelHost& host)
    : agent_(agent), host_(host), errors_("channel control method"), tasks_(errors_) {}

std::vector<std::string> ChannelService::controlMethods() const {
  auto methods = agent_.controlMethods();
  methods.push_back("channels.status");
  methods.push_back("channels.login");
  return methods;
}

std::optional<gateway::Result<google::protobuf::Struct>> ChannelService::control(
    const std::string& method, const google::protobuf::Struct& params,
    const gateway::ClientIdentity& who) {
  if (method == "channels.status") return gateway::frames::toStruct(host_.status());
  return agent_.control(method, params, who);
}

bool ChannelService::controlLater(const std::string& method, const google::protobuf::Struct& params,
                                  const gateway::ClientIdentity& who, ControlReply reply) {
  if (method != "channels.login") return agent_.controlLater(method, params, who, std::move(reply));
  auto p = gateway::frames::paramsAs<gateway::ChannelLoginParams>(params, method);
  if (auto* e = std::get_if<gateway::UserError>(&p)) {
    reply(*e);
    return true;
  }
  tasks_.add(host_.login(std::get<gateway::ChannelLoginParams>(p))
                 .then([reply](gateway::Result<gateway::ChannelLoginResult> result) {
                   if (auto* e = std::get_if<gateway::UserError>(&result)) return reply(*e);
                   reply(gateway::frames::toStruct(std::get<gateway::ChannelLoginResult>(result)));
                 }));
  return true;
}

}  // namespace chitin::channels
