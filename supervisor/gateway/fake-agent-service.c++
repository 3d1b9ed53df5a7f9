// SPDX-License-Identifier: Apache-2.0
// A scripted AgentService for the gateway's tests and the web chat's test server.
// Runs in: supervisor (tests only)

#include "fake-agent-service.h"

#include <google/protobuf/util/json_util.h>

#include <uv.h>

namespace chitin::gateway {

namespace {

struct TimerData {
  FakeAgentService* self;
  std::string runId;
  void (*fire)(FakeAgentService*, const std::string&);
};

void closeTimer(uv_timer_t* timer) {
  uv_timer_stop(timer);
  uv_close(reinterpret_cast<uv_handle_t*>(timer), [](uv_handle_t* handle) {
    delete static_cast<TimerData*>(handle->data);
    delete reinterpret_cast<uv_timer_t*>(handle);
  });
}

AgentEvent delta(const std::string& runId, const std::string& sessionKey, std::string text) {
  AgentEvent event;
  event.set_run_id(runId);
  event.set_session_key(sessionKey);
  event.set_stream("assistant");
  event.set_delta(std::move(text));
  return event;
}

}  // namespace

FakeAgentService::FakeAgentService(uv_loop_t* loop, std::chrono::milliseconds step)
    : loop_(loop), step_(step) {}

FakeAgentService::~FakeAgentService() { close(); }

void FakeAgentService::close() {
  for (auto& [id, run] : runs_) {
    if (run->timer != nullptr) closeTimer(run->timer);
    run->timer = nullptr;
  }
  runs_.clear();
}

Result<AgentAccepted> FakeAgentService::startRun(const AgentParams& params,
                                                 const ClientIdentity& who,
                                                 std::shared_ptr<RunSink> sink) {
  if (params.message() == "fail-start") {
    return UserError{"UNAVAILABLE", "no model is configured (fake)"};
  }
  auto run = std::make_unique<Run>();
  run->runId = "run-" + std::to_string(nextRun_++);
  run->sessionKey = params.session_key().empty()
                        ? "agent:main:" + who.clientId + ":direct:" + who.user
                        : params.session_key();
  run->message = params.message();
  run->sink = std::move(sink);
  run->result.set_run_id(run->runId);
  run->result.set_session_key(run->sessionKey);
  ++runsStarted_;

  AgentAccepted accepted;
  accepted.set_run_id(run->runId);
  accepted.set_status("accepted");
  accepted.set_session_key(run->sessionKey);

  if (params.message() == "fail-fast") {
    // Like a core that finds no model: the result arrives before startRun returns.
    run->result.set_status("error");
    run->result.set_error("no model is configured (fake)");
    run->result.set_reply("I cannot answer: no model is configured.");
    run->sink->finished(run->result);
    ++runsFinished_;
    return accepted;
  }

  std::string reply = "Hello! You said: " + params.message();
  if (params.message().find("burst") != std::string::npos) {
    // Many events queued at once (the socket writes several per writeable callback).
    std::string text;
    for (int i = 0; i < 200; ++i) text += "<" + std::to_string(i) + ">";
    reply = text;
    run->steps.push_back([text](Run& r) {
      for (size_t at = 0; at < text.size(); at = text.find('<', at + 1)) {
        size_t end = text.find('<', at + 1);
        r.sink->event(delta(r.runId, r.sessionKey,
                            text.substr(at, end == std::string::npos ? end : end - at)));
        if (end == std::string::npos) break;
      }
    });
    run->result.set_reply(reply);
  } else {
    run->steps.push_back(
        [reply](Run& r) { r.sink->event(delta(r.runId, r.sessionKey, reply.substr(0, 3))); });
  }
  if (params.message().find("tool") != std::string::npos) {
    ToolCallSummary tool;
    tool.set_id("call-1");
    tool.set_name("exec");
    tool.set_arguments_json(R"({"command":"ls -la /workspace"})");
    tool.set_status("running");
    run->steps.push_back([tool](Run& r) {
      AgentEvent event;
      event.set_run_id(r.runId);
      event.set_session_key(r.sessionKey);
      event.set_stream("tool");
      event.set_phase("start");
      *event.mutable_tool() = tool;
      r.sink->event(event);
    });
    run->steps.push_back([tool](Run& r) mutable {
      tool.set_status("ok");
      tool.set_summary("total 8\nnotes.md");
      AgentEvent event;
      event.set_run_id(r.runId);
      event.set_session_key(r.sessionKey);
      event.set_stream("tool");
      event.set_phase("end");
      *event.mutable_tool() = tool;
      *r.result.add_tools() = tool;
      r.sink->event(event);
    });
  }
  if (params.message().find("burst") == std::string::npos) {
    run->steps.push_back(
        [reply](Run& r) { r.sink->event(delta(r.runId, r.sessionKey, reply.substr(3))); });
    run->result.set_reply(reply);
  }

  auto step =
      params.message().find("slow") != std::string::npos ? std::chrono::milliseconds(400) : step_;
  run->timer = new uv_timer_t;
  uv_timer_init(loop_, run->timer);
  run->timer->data = new TimerData{
      this, run->runId, [](FakeAgentService* self, const std::string& id) { self->step(id); }};
  uv_timer_start(
      run->timer,
      [](uv_timer_t* timer) {
        auto* data = static_cast<TimerData*>(timer->data);
        data->fire(data->self, std::string(data->runId));
      },
      static_cast<uint64_t>(step.count()), static_cast<uint64_t>(step.count()));
  runs_[run->runId] = std::move(run);
  return accepted;
}

void FakeAgentService::step(const std::string& runId) {
  auto it = runs_.find(runId);
  if (it == runs_.end()) return;
  Run& run = *it->second;
  if (run.next < run.steps.size()) {
    run.steps[run.next++](run);
  } else {
    finish(run, "ok");  // erases `run`
  }
}

void FakeAgentService::finish(Run& run, const std::string& status) {
  run.result.set_status(status);
  if (status != "ok") run.result.set_reply("");
  auto& history = histories_[run.sessionKey];
  history.set_session_key(run.sessionKey);
  auto* user = history.add_messages();
  user->set_role("user");
  user->set_content(run.message);
  user->set_run_id(run.runId);
  auto* assistant = history.add_messages();
  assistant->set_role("assistant");
  assistant->set_content(run.result.reply());
  assistant->set_run_id(run.runId);

  ++runsFinished_;
  if (status == "aborted") ++runsAborted_;
  std::shared_ptr<RunSink> sink = run.sink;
  AgentResult result = run.result;
  if (run.timer != nullptr) closeTimer(run.timer);
  runs_.erase(run.runId);  // `run` is gone from here on
  sink->finished(result);
}

Result<bool> FakeAgentService::abortRun(const std::string& runId) {
  auto it = runs_.find(runId);
  if (it == runs_.end()) return false;
  finish(*it->second, "aborted");
  return true;
}

Result<ChatHistory> FakeAgentService::history(const ChatHistoryParams& params,
                                              const ClientIdentity& who) {
  std::string key = params.session_key().empty()
                        ? "agent:main:" + who.clientId + ":direct:" + who.user
                        : params.session_key();
  auto it = histories_.find(key);
  if (it == histories_.end()) return UserError{"NOT_FOUND", "no session \"" + key + "\""};
  ChatHistory history = it->second;
  if (params.limit() != 0 && static_cast<uint32_t>(history.messages_size()) > params.limit()) {
    history.mutable_messages()->DeleteSubrange(
        0, history.messages_size() - static_cast<int>(params.limit()));
  }
  return history;
}

SessionsList FakeAgentService::sessions() {
  SessionsList list;
  for (const auto& [key, history] : histories_) {
    auto* session = list.add_sessions();
    session->set_key(key);
    session->set_messages(static_cast<uint64_t>(history.messages_size()));
  }
  return list;
}

StatusPayload FakeAgentService::status() {
  StatusPayload status;
  status.set_version("fake");
  status.set_model_provider("fake");
  status.set_model("scripted");
  status.set_model_configured(true);
  status.set_active_runs(static_cast<uint32_t>(runs_.size()));
  status.set_sandbox("ok");
  return status;
}

std::optional<Result<google::protobuf::Struct>> FakeAgentService::control(
    const std::string& method, const google::protobuf::Struct& params, const ClientIdentity&) {
  std::string json;
  if (method == "channels.status") {
    json = R"({"accounts":[{"kind":"whatsapp","account":"default","state":"login_required",)"
           R"("detail":"waiting for a QR scan"}]})";
  } else if (method == "channels.login") {
    auto after = params.fields().find("after");
    if (after != params.fields().end() && after->second.number_value() > 0)
      return Result<google::protobuf::Struct>(
          UserError{"UNAVAILABLE", "the fake has no second code"});
    auto phone = params.fields().find("phoneNumber");
    if (phone != params.fields().end() && !phone->second.string_value().empty()) {
      if (phone->second.string_value() != FAKE_LOGIN_PHONE)
        return Result<google::protobuf::Struct>(
            UserError{"INVALID_ARGUMENT",
                      "the fake expects the phone number " + std::string(FAKE_LOGIN_PHONE)});
      json = R"({"pairingCode":"K7QW2M9X","seq":1,"state":"login_required"})";
    } else {
      json = R"({"qr":"fake-payload","seq":1,"state":"login_required","qrRows":[)";
      for (int y = 0; y < 21; ++y) {
        json += y ? ",\"" : "\"";
        for (int x = 0; x < 21; ++x) json += (x + y) % 2 == 0 ? '1' : '0';
        json += '"';
      }
      json += "]}";
    }
  } else {
    return std::nullopt;
  }
  google::protobuf::Struct out;
  if (!google::protobuf::util::JsonStringToMessage(json, &out).ok())
    return Result<google::protobuf::Struct>(UserError{"INTERNAL", "fake: bad canned JSON"});
  return Result<google::protobuf::Struct>(std::move(out));
}

}  // namespace chitin::gateway
