// SPDX-License-Identifier: Apache-2.0
// The real chitin-worker-model binary, spawned unsandboxed on a socketpair (fd 3) with the
// spawner's argv limits, driven over Cap'n Proto against tests/fakes/fake_model.py.
// Runs in: tests only (the worker under test runs its own "model" lockdown).

#include <capnp/rpc-twoparty.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <kj/async-io.h>
#include <kj/async-unix.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "model.capnp.h"
#include "test-request.h"

extern char** environ;

namespace chitin::model {
namespace {

using nlohmann::json;
using testing::fillRequest;
using testing::TestMessage;
using Clock = std::chrono::steady_clock;

constexpr char KEY[] = "sk-test-4f8a1c2e9b7d6a5f3e1d0c9b";
constexpr char LIMITS[] = "--chitin-limits=as=2147483648,nproc=64,nofile=256,cpu=60,fsize=1048576";

std::string requireEnv(const char* name) {
  const char* value = getenv(name);
  INFO(name << " is not set: run this test through `meson test`");
  REQUIRE(value != nullptr);
  return value;
}

pid_t spawnProcess(const std::vector<std::string>& argv, int fdForChild3, bool keepEnvironment,
                   const std::string& stdoutPath = "") {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (fdForChild3 >= 0) posix_spawn_file_actions_adddup2(&actions, fdForChild3, 3);
  if (!stdoutPath.empty()) {
    posix_spawn_file_actions_addopen(&actions, 1, stdoutPath.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
  }
  char* noEnvironment[] = {nullptr};
  pid_t pid = -1;
  int error = posix_spawn(&pid, args[0], &actions, nullptr, args.data(),
                          keepEnvironment ? environ : noEnvironment);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE_MESSAGE(error == 0, "posix_spawn " << argv[0] << ": " << strerror(error));
  return pid;
}

// Waits up to `timeout` for `pid`; returns its wait status, or nullopt if it is still running.
std::optional<int> waitFor(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    if (Clock::now() > deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// fake_model.py on 127.0.0.1 with a script, stopped when this goes out of scope.
class FakeModel {
 public:
  explicit FakeModel(const json& script, const char* expectKey = KEY) {
    std::string python = requireEnv("CHITIN_PYTHON");
    std::string fakeScript = requireEnv("CHITIN_FAKE_MODEL");
    char pattern[] = "/tmp/chitin-model-test-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    dir_ = pattern;
    std::ofstream(dir_ / "script.json") << script.dump();
    std::vector<std::string> argv = {python,        fakeScript,    "--port",   "0",
                                     "--port-file", dir_ / "port", "--script", dir_ / "script.json",
                                     "--log",       logPath()};
    if (expectKey != nullptr) argv.insert(argv.end(), {"--expect-key", expectKey});
    pid_ = spawnProcess(argv, -1, true);
    // Python starts slowly on a loaded machine; the port file appears once it listens.
    auto deadline = Clock::now() + std::chrono::seconds(30);
    while (!std::filesystem::exists(dir_ / "port")) {
      REQUIRE_MESSAGE(Clock::now() < deadline, "fake_model.py did not start");
      REQUIRE_MESSAGE(!waitFor(pid_, std::chrono::milliseconds(0)), "fake_model.py exited");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::ifstream(dir_ / "port") >> port_;
  }
  ~FakeModel() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    std::filesystem::remove_all(dir_);
  }

  std::string baseUrl(bool withV1 = true, const char* host = "127.0.0.1") const {
    return "http://" + std::string(host) + ":" + std::to_string(port_) + (withV1 ? "/v1" : "");
  }
  std::string logPath() const { return dir_ / "log.jsonl"; }
  int port() const { return port_; }

  // Every JSON line logged so far.
  std::vector<json> log() const {
    std::vector<json> lines;
    std::ifstream in(logPath());
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    return lines;
  }
  std::vector<json> requestsFor(const std::string& scenario) const {
    std::vector<json> out;
    for (auto& line : log()) {
      if (line.contains("method") && line.value("scenario", json()) == scenario)
        out.push_back(line);
    }
    return out;
  }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Collects the streamed deltas.
class Collector final : public rpc::TextStream::Server {
 public:
  Collector() = default;
  explicit Collector(kj::Own<kj::PromiseFulfiller<void>> firstDelta)
      : firstDelta_(kj::mv(firstDelta)) {}
  std::vector<std::string> deltas;

 protected:
  kj::Promise<void> delta(DeltaContext context) override {
    deltas.push_back(context.getParams().getText());
    if (firstDelta_.get() != nullptr) firstDelta_->fulfill();
    firstDelta_ = nullptr;
    return kj::READY_NOW;
  }

 private:
  kj::Own<kj::PromiseFulfiller<void>> firstDelta_;
};

// The tests' one SOCKS5 stand-in for the egress broker (socks5_unix.py, written from RFC 1928)
// on a unix socket. After its lockdown the worker has no socket but AF_UNIX, exactly as in its
// sandbox, so it reaches the fake model only through this.
class FakeBroker {
 public:
  FakeBroker() {
    char pattern[] = "/tmp/chitin-socks-test-XXXXXX";
    REQUIRE(mkdtemp(pattern) != nullptr);
    dir_ = pattern;
    pid_ =
        spawnProcess({requireEnv("CHITIN_PYTHON"), requireEnv("CHITIN_SOCKS5_UNIX"), socketPath()},
                     -1, true, outputPath());
    auto deadline = Clock::now() + std::chrono::seconds(30);
    while (output().rfind("ready\n", 0) != 0) {
      REQUIRE_MESSAGE(Clock::now() < deadline, "socks5_unix.py did not start");
      REQUIRE_MESSAGE(!waitFor(pid_, std::chrono::milliseconds(0)), "socks5_unix.py exited");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  ~FakeBroker() {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    std::filesystem::remove_all(dir_);
  }
  std::string socketPath() const { return dir_ / "egress.sock"; }
  // "host:port" of every CONNECT so far.
  std::vector<std::string> connects() const {
    std::vector<std::string> targets;
    std::istringstream lines(output());
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("CONNECT ", 0) == 0) targets.push_back(line.substr(8));
    }
    return targets;
  }

 private:
  std::string outputPath() const { return dir_ / "output"; }
  std::string output() const {
    std::ifstream in(outputPath());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

// One worker process and the RPC connection to it.
class WorkerUnderTest {
 public:
  WorkerUnderTest() : io_(kj::setupAsyncIo()) {
    int fds[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    // The child end must not already be fd 3, or dup2 would leave close-on-exec set.
    int childFd = fcntl(fds[1], F_DUPFD_CLOEXEC, 10);
    REQUIRE(childFd >= 0);
    close(fds[1]);
    pid_ = spawnProcess(
        {requireEnv("CHITIN_MODEL_WORKER"), LIMITS, "--chitin-egress=" + broker_.socketPath()},
        childFd, false);
    close(childFd);
    stream_ =
        io_.lowLevelProvider->wrapUnixSocketFd(fds[0], kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP);
    rpc_ = kj::heap<capnp::TwoPartyClient>(*stream_, 4);
    provider_ = rpc_->bootstrap().castAs<rpc::ModelProvider>();
  }

  ~WorkerUnderTest() {
    provider_ = nullptr;
    rpc_ = nullptr;
    stream_ = nullptr;
    // EOF on fd 3 is the worker's cue to exit cleanly.
    auto status = waitFor(pid_, std::chrono::seconds(10));
    if (!status) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    CHECK_MESSAGE(status.has_value(), "the worker did not exit after the supervisor hung up");
    if (status) {
      CHECK_MESSAGE(WIFEXITED(*status), "worker died by signal " << WTERMSIG(*status));
      if (WIFEXITED(*status)) CHECK(WEXITSTATUS(*status) == 0);
    }
  }

  void configure(rpc::ProviderConfig::Api api, const std::string& baseUrl,
                 const std::string& key = KEY, uint32_t maxRetries = 3,
                 uint32_t timeoutSeconds = 20, const std::string& embeddingModel = "") {
    auto request = provider_.configureRequest();
    auto config = request.initConfig();
    config.setApi(api);
    config.setBaseUrl(baseUrl);
    config.setApiKey(key);
    config.setModel("fake-model-1");
    config.initModels(1).set(0, "fake-model-2");
    config.setMaxTokens(256);
    config.setRequestTimeoutSeconds(timeoutSeconds);
    config.setMaxRetries(maxRetries);
    config.setMaxRetryWaitSeconds(5);
    config.setEmbeddingModel(embeddingModel);
    request.send().wait(io_.waitScope);
  }

  capnp::Response<rpc::ModelProvider::EmbedResults> embed(const std::vector<std::string>& texts) {
    auto request = provider_.embedRequest();
    auto list = request.initTexts(static_cast<capnp::uint>(texts.size()));
    for (size_t i = 0; i < texts.size(); ++i) list.set(static_cast<capnp::uint>(i), texts[i]);
    return request.send().wait(io_.waitScope);
  }

  capnp::Request<rpc::ModelProvider::CompleteParams, rpc::ModelProvider::CompleteResults>
  completeRequest(const std::vector<TestMessage>& messages, rpc::TextStream::Client stream) {
    auto request = provider_.completeRequest();
    fillRequest(request.initRequest(), "You are a test.", messages,
                {{"exec", "run a command",
                  R"({"type":"object","properties":{"command":{"type":"string"}}})"}});
    request.setStream(kj::mv(stream));
    return request;
  }

  capnp::Response<rpc::ModelProvider::CompleteResults> complete(
      const std::vector<TestMessage>& messages, Collector** collector = nullptr,
      const std::string& model = "") {
    auto server = kj::heap<Collector>();
    if (collector) *collector = server.get();
    auto request = completeRequest(messages, kj::mv(server));
    request.getRequest().setModel(model);
    return request.send().wait(io_.waitScope);
  }

  kj::AsyncIoContext& io() { return io_; }
  const FakeBroker& broker() const { return broker_; }

  // The "Seccomp:" line of the worker's /proc status (2 = filter mode).
  std::string seccompMode() const {
    std::ifstream in("/proc/" + std::to_string(pid_) + "/status");
    for (std::string line; std::getline(in, line);) {
      if (line.rfind("Seccomp:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 8));
    }
    return "";
  }

 private:
  FakeBroker broker_;
  kj::AsyncIoContext io_;
  pid_t pid_ = -1;
  kj::Own<kj::AsyncCapabilityStream> stream_;
  kj::Own<capnp::TwoPartyClient> rpc_;
  rpc::ModelProvider::Client provider_ = nullptr;
};

std::vector<TestMessage> ask(const std::string& text) { return {{rpc::Role::USER, text}}; }

std::string joined(const std::vector<std::string>& parts) {
  std::string out;
  for (auto& p : parts) out += p;
  return out;
}

json withScenarios(json scenarios) { return {{"scenarios", std::move(scenarios)}}; }

TEST_CASE("model worker: a plain answer streams deltas; the key travels only in its header") {
  FakeModel fake(withScenarios({{"plain",
                                 {{{"text", "Hello from the fake model, in pieces."},
                                   {"chunk_size", 5},
                                   {"write_size", 7}}}}}));
  WorkerUnderTest worker;
  worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, fake.baseUrl());
  // Serving calls means bootstrap is over: the "model" lockdown must be in force.
  CHECK(worker.seccompMode() == "2");
  Collector* collector = nullptr;
  auto response = worker.complete(ask("[[scenario:plain]] hi"), &collector);
  auto completion = response.getCompletion();
  REQUIRE(completion.isMessage());
  CHECK(completion.getMessage().getRole() == rpc::Role::ASSISTANT);
  CHECK(completion.getMessage().getContent() == "Hello from the fake model, in pieces.");
  CHECK(completion.getStopReason() == "stop");
  CHECK(completion.getInputTokens() > 0);
  CHECK(completion.getOutputTokens() > 0);
  CHECK(joined(collector->deltas) == "Hello from the fake model, in pieces.");

  auto requests = fake.requestsFor("plain");
  REQUIRE(requests.size() == 1);
  CHECK(requests[0]["headers"]["authorization"] == std::string("Bearer ") + KEY);
  CHECK(requests[0]["body"]["model"] == "fake-model-1");
  CHECK(requests[0]["body"].dump().find(KEY) == std::string::npos);

  // No scenario marker: the fake echoes; the same worker serves another call.
  auto echo = worker.complete(ask("just this"));
  REQUIRE(echo.getCompletion().isMessage());
  CHECK(echo.getCompletion().getMessage().getContent() == "echo: just this");

  // Every connection went through the egress socket, named as the base URL has it (socks5h:
  // the worker resolves nothing itself).
  auto connects = worker.broker().connects();
  REQUIRE(!connects.empty());
  for (auto& target : connects) CHECK(target == "127.0.0.1:" + std::to_string(fake.port()));
}

TEST_CASE("model worker: a request may name one of the configured models, and no other") {
  FakeModel fake(withScenarios({{"m", {{{"text", "ok"}}}}}));
  WorkerUnderTest worker;
  worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, fake.baseUrl());
  CHECK(worker.complete(ask("[[scenario:m]] a"), nullptr, "fake-model-2").getCompletion().isMessage());
  CHECK(worker.complete(ask("[[scenario:m]] b")).getCompletion().isMessage());
  auto requests = fake.requestsFor("m");
  REQUIRE(requests.size() == 2);
  CHECK(requests[0]["body"]["model"] == "fake-model-2");
  CHECK(requests[1]["body"]["model"] == "fake-model-1");  // "": the configured one
  // Any other name is the supervisor's fault: refused before anything is sent.
  CHECK_THROWS(worker.complete(ask("[[scenario:m]] c"), nullptr, "gpt-other"));
  CHECK(fake.requestsFor("m").size() == 2);
}

void multiStepToolCall(rpc::ProviderConfig::Api api, const std::string& baseUrl) {
  WorkerUnderTest worker;
  worker.configure(api, baseUrl);
  auto first = worker.complete(ask("[[scenario:tools]] list my files"));
  REQUIRE(first.getCompletion().isMessage());
  auto message = first.getCompletion().getMessage();
  CHECK(message.getContent() == "Let me look.");
  REQUIRE(message.getToolCalls().size() == 2);
  auto exec = message.getToolCalls()[0];
  auto now = message.getToolCalls()[1];
  CHECK(exec.getName() == "exec");
  CHECK(json::parse(exec.getArgumentsJson().cStr()) == json({{"command", "ls -la /tmp"}}));
  CHECK(now.getName() == "now");
  CHECK(json::parse(now.getArgumentsJson().cStr()) == json::object());
  CHECK(exec.getId() != now.getId());

  std::vector<TestMessage> conversation = {
      {rpc::Role::USER, "[[scenario:tools]] list my files"},
      {rpc::Role::ASSISTANT,
       message.getContent(),
       {{exec.getId(), "exec", exec.getArgumentsJson()}, {now.getId(), "now", "{}"}}},
      {rpc::Role::TOOL, "clock unavailable", {}, now.getId(), true},
      {rpc::Role::TOOL, "a.txt b.txt", {}, exec.getId()}};
  auto second = worker.complete(conversation);
  REQUIRE_MESSAGE(second.getCompletion().isMessage(),
                  second.getCompletion().getFailed().getMessage().cStr());
  CHECK(second.getCompletion().getMessage().getContent() == "Files: a.txt b.txt");
  CHECK(second.getCompletion().getMessage().getToolCalls().size() == 0);
}

const json TOOL_SCENARIO = {{"tools",
                             {{{"text", "Let me look."},
                               {"tool_calls",
                                {{{"name", "exec"}, {"arguments", {{"command", "ls -la /tmp"}}}},
                                 {{"name", "now"}, {"arguments", json::object()}}}},
                               {"interleave_tool_calls", true},
                               {"chunk_size", 4}},
                              {{"text", "Files: {{last_tool_result}}"}}}}};

TEST_CASE("model worker: a multi-step tool call round-trips over the OpenAI API") {
  FakeModel fake(withScenarios(TOOL_SCENARIO));
  multiStepToolCall(rpc::ProviderConfig::Api::OPENAI_CHAT, fake.baseUrl());
  CHECK(fake.requestsFor("tools").size() == 2);
}

TEST_CASE("model worker: a multi-step tool call round-trips over the Anthropic API") {
  FakeModel fake(withScenarios(TOOL_SCENARIO));
  // "localhost": name resolution must work under the lockdown too.
  multiStepToolCall(rpc::ProviderConfig::Api::ANTHROPIC, fake.baseUrl(false, "localhost"));
  auto requests = fake.requestsFor("tools");
  REQUIRE(requests.size() == 2);
  CHECK(requests[0]["headers"]["x-api-key"] == KEY);
  CHECK(requests[0]["headers"]["anthropic-version"] == "2023-06-01");
  CHECK_FALSE(requests[0]["headers"].contains("authorization"));
  // Both tool results travel in one user message, as the API requires.
  auto& messages = requests[1]["body"]["messages"];
  REQUIRE(messages.size() == 3);
  CHECK(messages[2]["content"].size() == 2);
}

TEST_CASE("model worker: 429 with retry-after 1 is waited out, then the call succeeds") {
  FakeModel fake(withScenarios({{"limited",
                                 {{{"error", {{"status", 429}, {"retry_after", "1"}, {"times", 1}}},
                                   {"text", "after the wait"}}}}}));
  WorkerUnderTest worker;
  worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, fake.baseUrl());
  auto start = Clock::now();
  auto response = worker.complete(ask("[[scenario:limited]] go"));
  auto elapsed = Clock::now() - start;
  REQUIRE(response.getCompletion().isMessage());
  CHECK(response.getCompletion().getMessage().getContent() == "after the wait");
  CHECK(elapsed >= std::chrono::milliseconds(950));
  CHECK(elapsed < std::chrono::seconds(8));
  auto requests = fake.requestsFor("limited");
  REQUIRE(requests.size() == 2);
  CHECK(requests[0]["status"] == 429);
  CHECK(requests[1]["status"] == 200);
}

TEST_CASE("model worker: 500 until the retries run out is a serverError") {
  FakeModel fake(withScenarios({{"broken", {{{"error", {{"status", 500}}}}}}}));
  WorkerUnderTest worker;
  worker.configure(rpc::ProviderConfig::Api::ANTHROPIC, fake.baseUrl(), KEY, 2);
  auto response = worker.complete(ask("[[scenario:broken]] go"));
  REQUIRE(response.getCompletion().isFailed());
  auto failed = response.getCompletion().getFailed();
  CHECK(failed.getKind() == rpc::ModelFailure::Kind::SERVER_ERROR);
  CHECK(failed.getHttpStatus() == 500);
  std::string message = failed.getMessage();
  CHECK(message.find("scripted error 500") != std::string::npos);
  CHECK(message.find("gave up after 2 retries") != std::string::npos);
  CHECK(fake.requestsFor("broken").size() == 3);
}

TEST_CASE("model worker: a truncated stream is failed.truncated, a malformed one badResponse") {
  FakeModel fake(withScenarios(
      {{"cut", {{{"text", "This reply is cut off half way through."}, {"truncate", true}}}},
       {"garbled", {{{"text", "Some text that never finishes."}, {"malformed", true}}}}}));
  for (auto api : {rpc::ProviderConfig::Api::OPENAI_CHAT, rpc::ProviderConfig::Api::ANTHROPIC}) {
    CAPTURE(static_cast<int>(api));
    WorkerUnderTest worker;
    worker.configure(api, fake.baseUrl());
    auto cut = worker.complete(ask("[[scenario:cut]] go"));
    REQUIRE(cut.getCompletion().isFailed());
    CHECK(cut.getCompletion().getFailed().getKind() == rpc::ModelFailure::Kind::TRUNCATED);
    auto garbled = worker.complete(ask("[[scenario:garbled]] go"));
    REQUIRE(garbled.getCompletion().isFailed());
    CHECK(garbled.getCompletion().getFailed().getKind() == rpc::ModelFailure::Kind::BAD_RESPONSE);
    // The session is intact: the next call works.
    auto after = worker.complete(ask("still there?"));
    REQUIRE(after.getCompletion().isMessage());
    CHECK(after.getCompletion().getMessage().getContent() == "echo: still there?");
  }
}

TEST_CASE("model worker: Anthropic's error event after 200 and a refusal are typed failures") {
  FakeModel fake(withScenarios({{"overloaded",
                                 {{{"text", "Partial answer before the error"},
                                   {"stream_error", {{"type", "overloaded_error"}}}}}},
                                {"refuse", {{{"text", ""}, {"finish_reason", "refusal"}}}}}));
  WorkerUnderTest worker;
  worker.configure(rpc::ProviderConfig::Api::ANTHROPIC, fake.baseUrl());
  auto overloaded = worker.complete(ask("[[scenario:overloaded]] go"));
  REQUIRE(overloaded.getCompletion().isFailed());
  CHECK(overloaded.getCompletion().getFailed().getKind() == rpc::ModelFailure::Kind::SERVER_ERROR);
  CHECK(std::string(overloaded.getCompletion().getFailed().getMessage()).find("overloaded_error") !=
        std::string::npos);
  auto refused = worker.complete(ask("[[scenario:refuse]] go"));
  REQUIRE(refused.getCompletion().isFailed());
  CHECK(refused.getCompletion().getFailed().getKind() == rpc::ModelFailure::Kind::REFUSED);
}

TEST_CASE("model worker: a wrong key is failed.unauthorized and the message never holds it") {
  const std::string wrongKey = "sk-wrong-0123456789abcdef";
  FakeModel fake(withScenarios(json::object()), "sk-the-right-one");
  for (auto api : {rpc::ProviderConfig::Api::OPENAI_CHAT, rpc::ProviderConfig::Api::ANTHROPIC}) {
    CAPTURE(static_cast<int>(api));
    WorkerUnderTest worker;
    worker.configure(api, fake.baseUrl(), wrongKey);
    auto response = worker.complete(ask("hello"));
    REQUIRE(response.getCompletion().isFailed());
    auto failed = response.getCompletion().getFailed();
    CHECK(failed.getKind() == rpc::ModelFailure::Kind::UNAUTHORIZED);
    CHECK(failed.getHttpStatus() == 401);
    std::string message = failed.getMessage();
    INFO(message);
    CHECK(message.find(wrongKey) == std::string::npos);
    CHECK(message.find("[redacted]") != std::string::npos);  // the fake did echo it
  }
}

TEST_CASE("model worker: a provider silent for requestTimeoutSeconds is a network failure") {
  FakeModel fake(withScenarios({{"silent", {{{"text", "too late"}, {"delay_ms", 4000}}}}}));
  WorkerUnderTest worker;
  worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, fake.baseUrl(), KEY, 3, 1);
  auto start = Clock::now();
  auto response = worker.complete(ask("[[scenario:silent]] go"));
  auto elapsed = Clock::now() - start;
  REQUIRE(response.getCompletion().isFailed());
  CHECK(response.getCompletion().getFailed().getKind() == rpc::ModelFailure::Kind::NETWORK);
  CHECK(std::string(response.getCompletion().getFailed().getMessage()).find("no data") !=
        std::string::npos);
  CHECK(elapsed < std::chrono::milliseconds(3500));
}

TEST_CASE("model worker: complete() before configure(), or configure() twice, is refused") {
  WorkerUnderTest worker;
  CHECK_THROWS_AS(worker.complete(ask("hello")), kj::Exception);
  worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, "http://127.0.0.1:9/v1");
  CHECK_THROWS_AS(worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, "http://127.0.0.1:9/v1"),
                  kj::Exception);
  CHECK_THROWS_AS(
      WorkerUnderTest().configure(rpc::ProviderConfig::Api::OPENAI_CHAT, "file:///etc/passwd"),
      kj::Exception);
}

TEST_CASE("model worker: dropping complete() aborts the HTTP request; the worker carries on") {
  FakeModel fake(withScenarios({{"slow",
                                 {{{"text", "This answer never ends because the test cancels it."},
                                   {"wait_for_abort", true}}}}}));
  WorkerUnderTest worker;
  worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, fake.baseUrl());
  auto& waitScope = worker.io().waitScope;
  {
    auto firstDelta = kj::newPromiseAndFulfiller<void>();
    auto call = worker
                    .completeRequest(ask("[[scenario:slow]] go"),
                                     kj::heap<Collector>(kj::mv(firstDelta.fulfiller)))
                    .send();
    firstDelta.promise.wait(waitScope);  // the stream is flowing
  }                                      // `call` dropped here: the supervisor cancels

  auto disconnected = [&]() {
    for (auto& line : fake.log()) {
      if (line.value("event", "") == "client_disconnected" &&
          line.value("scenario", "") == "slow") {
        return true;
      }
    }
    return false;
  };
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!disconnected() && Clock::now() < deadline) {
    worker.io().provider->getTimer().afterDelay(50 * kj::MILLISECONDS).wait(waitScope);
  }
  CHECK_MESSAGE(disconnected(), "the fake never saw the worker close the connection");

  auto after = worker.complete(ask("next please"));
  REQUIRE(after.getCompletion().isMessage());
  CHECK(after.getCompletion().getMessage().getContent() == "echo: next please");
}

double cosine(capnp::List<float>::Reader a, capnp::List<float>::Reader b) {
  double dot = 0, na = 0, nb = 0;
  for (capnp::uint i = 0; i < a.size(); ++i) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / std::sqrt(na * nb);
}

TEST_CASE("model worker: embed() returns one vector per text, in the texts' order") {
  FakeModel fake(withScenarios(json::object()));
  WorkerUnderTest worker;
  worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, fake.baseUrl(), KEY, 3, 20,
                   "fake-embed");
  auto response = worker.embed({"my car is red", "the automobile", "a puppy barked"});
  auto result = response.getResult();
  REQUIRE(result.isVectors());
  auto vectors = result.getVectors();
  REQUIRE(vectors.size() == 3);
  CHECK(vectors[0].size() == 64);
  CHECK(vectors[1].size() == 64);
  // The fake answers in reverse order, naming each text by its index: order is restored.
  CHECK(cosine(vectors[0], vectors[1]) > 0.3);
  CHECK(cosine(vectors[0], vectors[2]) < 0.2);
  CHECK(result.getInputTokens() == 9);  // the fake counts words

  std::vector<json> posts;
  for (auto& line : fake.log())
    if (line.value("path", "") == "/v1/embeddings") posts.push_back(line);
  REQUIRE(posts.size() == 1);
  CHECK(posts[0]["status"] == 200);
  CHECK(posts[0]["headers"]["authorization"] == std::string("Bearer ") + KEY);
  CHECK(posts[0]["body"]["model"] == "fake-embed");
  CHECK(posts[0]["body"]["input"].size() == 3);
  // The same worker still completes.
  CHECK(worker.complete(ask("still here")).getCompletion().isMessage());
}

TEST_CASE("model worker: an embeddings reply that is not one finite vector per text is refused") {
  for (const char* broken : {"wrong_count", "nan", "ragged", "stream"}) {
    CAPTURE(broken);
    FakeModel fake({{"scenarios", json::object()}, {"embeddings", {{"reply", broken}}}});
    WorkerUnderTest worker;
    worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, fake.baseUrl(), KEY, 0, 20,
                     "fake-embed");
    auto response = worker.embed({"one text", "another text"});
    REQUIRE(response.getResult().isFailed());
    CHECK(response.getResult().getFailed().getKind() == rpc::ModelFailure::Kind::BAD_RESPONSE);
  }
}

TEST_CASE("model worker: embeddings retry a 500, report a wrong key without it") {
  {
    FakeModel fake({{"scenarios", json::object()},
                    {"embeddings", {{"error", {{"status", 500}, {"times", 1}}}}}});
    WorkerUnderTest worker;
    worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, fake.baseUrl(), KEY, 2, 20,
                     "fake-embed");
    CHECK(worker.embed({"after a retry"}).getResult().isVectors());
  }
  FakeModel fake(withScenarios(json::object()));
  WorkerUnderTest worker;
  std::string wrong = "sk-wrong-0123456789abcdef";
  worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, fake.baseUrl(), wrong, 0, 20,
                   "fake-embed");
  auto result = worker.embed({"x"});
  REQUIRE(result.getResult().isFailed());
  CHECK(result.getResult().getFailed().getKind() == rpc::ModelFailure::Kind::UNAUTHORIZED);
  CHECK(std::string(result.getResult().getFailed().getMessage().cStr()).find(wrong) ==
        std::string::npos);
}

TEST_CASE("model worker: embed() without an embedding model, or past its bounds, is refused") {
  {
    WorkerUnderTest worker;
    worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, "http://127.0.0.1:9/v1");
    CHECK_THROWS_AS(worker.embed({"no model"}), kj::Exception);
  }
  {
    WorkerUnderTest worker;
    worker.configure(rpc::ProviderConfig::Api::OPENAI_CHAT, "http://127.0.0.1:9/v1", KEY, 3, 20,
                     "fake-embed");
    CHECK_THROWS_AS(worker.embed({}), kj::Exception);
    CHECK_THROWS_AS(worker.embed(std::vector<std::string>(rpc::MAX_EMBED_TEXTS + 1, "t")),
                    kj::Exception);
    CHECK_THROWS_AS(worker.embed({std::string(rpc::MAX_EMBED_TEXT_BYTES + 1, 'x')}),
                    kj::Exception);
  }
  // Anthropic offers no embeddings endpoint.
  CHECK_THROWS_AS(WorkerUnderTest().configure(rpc::ProviderConfig::Api::ANTHROPIC,
                                              "http://127.0.0.1:9", KEY, 3, 20, "fake-embed"),
                  kj::Exception);
}

}  // namespace
}  // namespace chitin::model
