// SPDX-License-Identifier: Apache-2.0
// A scripted AgentService for the gateway's tests and the web chat's test server: each run
// streams its reply in pieces (and a tool call when the message mentions "tool") on uv timers.
// Runs in: supervisor (tests only)
//
// Messages steer it: "tool" adds an exec tool call, "slow" spaces the steps 400 ms apart (so a
// test can abort), "fail-start" is refused by startRun, "fail-fast" finishes inside startRun.

#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent-service.h"

typedef struct uv_loop_s uv_loop_t;
typedef struct uv_timer_s uv_timer_t;

namespace chitin::gateway {

// The phone number the fake's channels.login answers a pairing code for.
inline constexpr const char* FAKE_LOGIN_PHONE = "+1 555 123 4567";

class FakeAgentService final : public AgentService {
 public:
  FakeAgentService(uv_loop_t* loop, std::chrono::milliseconds step);
  ~FakeAgentService() override;

  // Closes every timer (pending runs never finish). Call before the loop's final run.
  void close();

  Result<AgentAccepted> startRun(const AgentParams& params, const ClientIdentity& who,
                                 std::shared_ptr<RunSink> sink) override;
  Result<bool> abortRun(const std::string& runId) override;
  Result<ChatHistory> history(const ChatHistoryParams& params, const ClientIdentity& who) override;
  SessionsList sessions() override;
  StatusPayload status() override;
  // One WhatsApp account waiting for a QR scan: channels.status lists it; the first
  // channels.login answers a code (a 21x21 checkerboard of modules), later ones an error, so the
  // code stays on the page for the web chat test to look at. Given FAKE_LOGIN_PHONE as
  // phoneNumber it answers the pairing code "K7QW2M9X" instead (any other number: an error).
  std::optional<Result<google::protobuf::Struct>> control(const std::string& method,
                                                          const google::protobuf::Struct& params,
                                                          const ClientIdentity& who) override;
  std::vector<std::string> controlMethods() const override {
    return {"channels.status", "channels.login"};
  }

  uint32_t runsStarted() const { return runsStarted_; }
  uint32_t runsFinished() const { return runsFinished_; }
  uint32_t runsAborted() const { return runsAborted_; }

 private:
  struct Run {
    std::string runId;
    std::string sessionKey;
    std::string message;
    std::shared_ptr<RunSink> sink;
    std::vector<std::function<void(Run&)>> steps;
    size_t next = 0;
    uv_timer_t* timer = nullptr;
    AgentResult result;
  };

  void step(const std::string& runId);
  void finish(Run& run, const std::string& status);

  uv_loop_t* loop_;
  std::chrono::milliseconds step_;
  uint32_t nextRun_ = 1;
  uint32_t runsStarted_ = 0, runsFinished_ = 0, runsAborted_ = 0;
  std::map<std::string, std::unique_ptr<Run>> runs_;
  std::map<std::string, ChatHistory> histories_;
};

}  // namespace chitin::gateway
