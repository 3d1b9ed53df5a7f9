// SPDX-License-Identifier: Apache-2.0
// The model worker's lifetime: started on first use in the `model` sandbox profile with its own
// egress endpoint (the provider's host:port only), handed the provider settings (and the API
// key) over Cap'n Proto, restarted if it dies.
// Runs in: supervisor

#pragma once

#include <capnp/message.h>
#include <kj/async-io.h>
#include <kj/one-of.h>
#include <uv.h>

#include "broker.h"
#include "config.h"
#include "model.capnp.h"
#include "spawner.h"

namespace chitin {

class WorkerHost;

class ModelHost {
 public:
  // Each worker gets its own egress endpoint admitting `egressRules` (egress::modelRules: the
  // base URL's host:port) and nothing else; it lives exactly as long as that worker.
  ModelHost(uv_loop_t* loop, kj::AsyncIoContext& io, spawn::Spawner& spawner,
            ModelSettings settings, egress::Broker& broker, std::vector<egress::Rule> egressRules);
  ~ModelHost() noexcept(false);

  // One completion. Never rejects for expected failures: a sandbox that cannot be built or a
  // worker that dies mid-call come back as `failed` completions. The returned message's root is
  // an rpc::Completion.
  kj::Promise<kj::Own<capnp::MallocMessageBuilder>> complete(rpc::CompletionRequest::Reader request,
                                                             rpc::TextStream::Client stream);

  // The embeddings of `texts` (model.capnp's bounds; settings().embeddingModel must be set).
  // Like complete(): failures come back as a `failed` result, whose message's root is an
  // rpc::EmbeddingResult.
  kj::Promise<kj::Own<capnp::MallocMessageBuilder>> embed(capnp::List<capnp::Text>::Reader texts);

  const ModelSettings& settings() const { return settings_; }
  bool running() const;
  // Stops the worker (shutdown).
  void stop();

 private:
  uv_loop_t* loop_;
  kj::AsyncIoContext& io_;
  spawn::Spawner& spawner_;
  ModelSettings settings_;
  egress::Broker& broker_;
  std::vector<egress::Rule> egressRules_;
  std::unique_ptr<egress::Endpoint> endpoint_;  // the worker's way out; dropped with the worker
  kj::Own<WorkerHost> host_;
  kj::Maybe<rpc::ModelProvider::Client> client_;
  kj::TaskSet tasks_;
  uint64_t generation_ = 0;

  rpc::ModelProvider::Client ensureWorker();
  // ensureWorker(), or why it could not start (a message for the user).
  kj::OneOf<rpc::ModelProvider::Client, kj::String> worker();
  // What a call's failure means, for the user; a protocol violation stops the worker.
  kj::String callFailed(const kj::Exception& e);
};

// A failed Completion message, for failures the supervisor itself detects.
kj::Own<capnp::MallocMessageBuilder> failedCompletion(rpc::ModelFailure::Kind kind,
                                                      kj::StringPtr message);

}  // namespace chitin
