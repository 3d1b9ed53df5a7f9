// SPDX-License-Identifier: Apache-2.0
// The model worker's lifetime: started on first use in the `model` sandbox profile, handed the
// provider settings (and the API key) over Cap'n Proto, restarted if it dies.
// Runs in: supervisor

#pragma once

#include <capnp/message.h>
#include <kj/async-io.h>
#include <uv.h>

#include "config.h"
#include "model.capnp.h"
#include "spawner.h"

namespace chitin {

class WorkerHost;

class ModelHost {
 public:
  ModelHost(uv_loop_t* loop, kj::AsyncIoContext& io, spawn::Spawner& spawner,
            ModelSettings settings);
  ~ModelHost() noexcept(false);

  // One completion. Never rejects for expected failures: a sandbox that cannot be built or a
  // worker that dies mid-call come back as `failed` completions. The returned message's root is
  // an rpc::Completion.
  kj::Promise<kj::Own<capnp::MallocMessageBuilder>> complete(rpc::CompletionRequest::Reader request,
                                                             rpc::TextStream::Client stream);

  const ModelSettings& settings() const { return settings_; }
  bool running() const;
  // Stops the worker (shutdown).
  void stop();

 private:
  uv_loop_t* loop_;
  kj::AsyncIoContext& io_;
  spawn::Spawner& spawner_;
  ModelSettings settings_;
  kj::Own<WorkerHost> host_;
  kj::Maybe<rpc::ModelProvider::Client> client_;
  kj::TaskSet tasks_;
  uint64_t generation_ = 0;

  rpc::ModelProvider::Client ensureWorker();
};

// A failed Completion message, for failures the supervisor itself detects.
kj::Own<capnp::MallocMessageBuilder> failedCompletion(rpc::ModelFailure::Kind kind,
                                                      kj::StringPtr message);

}  // namespace chitin
