// SPDX-License-Identifier: Apache-2.0
// Test helper: builds a CompletionRequest from a compact description.
// Runs in: tests only.

#pragma once

#include <capnp/message.h>

#include <string>
#include <vector>

#include "model.capnp.h"

namespace chitin::model::testing {

struct TestCall {
  std::string id;
  std::string name;
  std::string argumentsJson;
};

struct TestMessage {
  rpc::Role role;
  std::string content;
  std::vector<TestCall> calls = {};
  std::string toolCallId = {};
  bool isError = false;
};

struct TestTool {
  std::string name;
  std::string description;
  std::string parametersJson;
};

inline void fillRequest(rpc::CompletionRequest::Builder request, const std::string& system,
                        const std::vector<TestMessage>& messages,
                        const std::vector<TestTool>& tools = {}) {
  request.setSystem(system);
  auto list = request.initMessages(static_cast<capnp::uint>(messages.size()));
  for (capnp::uint i = 0; i < list.size(); ++i) {
    const TestMessage& m = messages[i];
    auto out = list[i];
    out.setRole(m.role);
    out.setContent(m.content);
    out.setToolCallId(m.toolCallId);
    out.setIsError(m.isError);
    auto calls = out.initToolCalls(static_cast<capnp::uint>(m.calls.size()));
    for (capnp::uint j = 0; j < calls.size(); ++j) {
      calls[j].setId(m.calls[j].id);
      calls[j].setName(m.calls[j].name);
      calls[j].setArgumentsJson(m.calls[j].argumentsJson);
    }
  }
  auto toolList = request.initTools(static_cast<capnp::uint>(tools.size()));
  for (capnp::uint i = 0; i < toolList.size(); ++i) {
    toolList[i].setName(tools[i].name);
    toolList[i].setDescription(tools[i].description);
    toolList[i].setParametersJson(tools[i].parametersJson);
  }
}

}  // namespace chitin::model::testing
