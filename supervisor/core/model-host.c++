// SPDX-License-Identifier: Apache-2.0
// Model worker lifetime (see model-host.h).
// Runs in: supervisor

#include "model-host.h"

#include <kj/debug.h>
#include <spdlog/spdlog.h>

#include "task-errors.h"
#include "worker-host.h"

namespace chitin {

namespace {

LogTaskErrors modelTaskErrors("model worker task");

}  // namespace

kj::Own<capnp::MallocMessageBuilder> failedCompletion(rpc::ModelFailure::Kind kind,
                                                      kj::StringPtr message) {
  auto msg = kj::heap<capnp::MallocMessageBuilder>();
  auto failed = msg->initRoot<rpc::Completion>().initFailed();
  failed.setKind(kind);
  failed.setMessage(message);
  return msg;
}

ModelHost::ModelHost(uv_loop_t* loop, kj::AsyncIoContext& io, spawn::Spawner& spawner,
                     ModelSettings settings, egress::Broker& broker,
                     std::vector<egress::Rule> egressRules)
    : loop_(loop),
      io_(io),
      spawner_(spawner),
      settings_(std::move(settings)),
      broker_(broker),
      egressRules_(std::move(egressRules)),
      tasks_(modelTaskErrors) {}

ModelHost::~ModelHost() noexcept(false) { stop(); }

bool ModelHost::running() const { return host_.get() != nullptr && !host_->exited(); }

void ModelHost::stop() {
  client_ = nullptr;
  host_ = nullptr;
  endpoint_ = nullptr;  // after the worker: its tunnels end with it
}

rpc::ModelProvider::Client ModelHost::ensureWorker() {
  KJ_IF_MAYBE (c, client_) {
    if (running()) return *c;
  }
  client_ = nullptr;
  host_ = nullptr;
  endpoint_ = nullptr;

  // A socket of its own per worker: its identity at the broker, closed with it.
  auto endpoint = broker_.open("model", egressRules_);
  spawn::SpawnRequest request;
  request.profile = "model";
  request.egressSocket = endpoint->socketPath();
  host_ = kj::heap<WorkerHost>(loop_, io_, spawner_.spawn(request), "model worker");
  endpoint_ = std::move(endpoint);
  auto client = host_->bootstrap<rpc::ModelProvider>();

  // The key travels only here: over the socketpair, in memory.
  auto configure = client.configureRequest();
  auto c = configure.initConfig();
  c.setApi(settings_.provider == config::ModelConfig::ANTHROPIC
               ? rpc::ProviderConfig::Api::ANTHROPIC
               : rpc::ProviderConfig::Api::OPENAI_CHAT);
  c.setBaseUrl(settings_.baseUrl);
  c.setApiKey(settings_.apiKey);
  c.setModel(settings_.model);
  auto models = c.initModels(settings_.alternatives.size());
  for (size_t i = 0; i < settings_.alternatives.size(); ++i) models.set(i, settings_.alternatives[i]);
  c.setMaxTokens(settings_.maxTokens);
  c.setRequestTimeoutSeconds(settings_.requestTimeoutSeconds);
  c.setMaxRetries(settings_.maxRetries);
  c.setEmbeddingModel(settings_.embeddingModel);
  // Calls on one capability are delivered in order, so `complete` queues behind this.
  tasks_.add(configure.send().ignoreResult());

  // Forget a dead worker so the next call starts a fresh one.
  uint64_t generation = ++generation_;
  tasks_.add(host_->onExit().then([this, generation](WorkerExit e) {
    if (generation == generation_) {
      spdlog::warn("model worker {}", e.describe());
      client_ = nullptr;
    }
  }));
  client_ = client;
  return client;
}

kj::OneOf<rpc::ModelProvider::Client, kj::String> ModelHost::worker() {
  try {
    return ensureWorker();
  } catch (const spawn::SandboxUnavailable& e) {
    return kj::str("the model worker could not start because its sandbox could not be set up: ",
                   e.what());
  } catch (const kj::Exception& e) {
    // Our own failure (a syscall in the spawn path), not the session's: say so as an outcome.
    spdlog::error("cannot start the model worker: {}", e.getDescription().cStr());
    return kj::str("the model worker could not be started (see the gateway log)");
  }
}

kj::String ModelHost::callFailed(const kj::Exception& e) {
  spdlog::warn("model worker call failed: {}", e.getDescription().cStr());
  if (e.getType() != kj::Exception::Type::DISCONNECTED && host_.get() != nullptr) {
    host_->kill("protocol violation");  // treat it as compromised; a fresh one starts next
  }
  return kj::str(e.getType() == kj::Exception::Type::DISCONNECTED
                     ? "the model worker stopped unexpectedly; it will be restarted on the next "
                       "message"
                     : "the model worker broke the protocol and was stopped");
}

kj::Promise<kj::Own<capnp::MallocMessageBuilder>> ModelHost::complete(
    rpc::CompletionRequest::Reader request, rpc::TextStream::Client stream) {
  auto started = worker();
  if (started.is<kj::String>())
    return failedCompletion(rpc::ModelFailure::Kind::NETWORK, started.get<kj::String>());
  auto req = started.get<rpc::ModelProvider::Client>().completeRequest();
  req.setRequest(request);
  req.setStream(kj::mv(stream));
  return req.send()
      .then([](capnp::Response<rpc::ModelProvider::CompleteResults>&& response) {
        auto msg = kj::heap<capnp::MallocMessageBuilder>();
        msg->setRoot(response.getCompletion());
        return msg;
      })
      .catch_([this](kj::Exception&& e) {
        return failedCompletion(rpc::ModelFailure::Kind::NETWORK, callFailed(e));
      });
}

kj::Promise<kj::Own<capnp::MallocMessageBuilder>> ModelHost::embed(
    capnp::List<capnp::Text>::Reader texts) {
  auto failedEmbedding = [](kj::StringPtr message) {
    auto msg = kj::heap<capnp::MallocMessageBuilder>();
    auto failed = msg->initRoot<rpc::EmbeddingResult>().initFailed();
    failed.setKind(rpc::ModelFailure::Kind::NETWORK);
    failed.setMessage(message);
    return msg;
  };
  KJ_REQUIRE(!settings_.embeddingModel.empty(), "ModelHost::embed() without an embedding model");
  auto started = worker();
  if (started.is<kj::String>()) return failedEmbedding(started.get<kj::String>());
  auto req = started.get<rpc::ModelProvider::Client>().embedRequest();
  req.setTexts(texts);
  return req.send()
      .then([](capnp::Response<rpc::ModelProvider::EmbedResults>&& response) {
        auto msg = kj::heap<capnp::MallocMessageBuilder>();
        msg->setRoot(response.getResult());
        return msg;
      })
      .catch_([this, failedEmbedding](kj::Exception&& e) { return failedEmbedding(callFailed(e)); });
}

}  // namespace chitin
