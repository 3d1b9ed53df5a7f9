// SPDX-License-Identifier: Apache-2.0
// The model worker's bootstrap capability: a ModelProvider for one configured provider.
// Runs in: worker (sandboxed)
//
// configure() is accepted once; it is the only way the API key enters this process. Each
// complete() and embed() runs on its own CallThread (on a transfer thread kept between calls),
// so calls from several sessions proceed in parallel; dropping a call cancels its HTTP request.

#pragma once

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "call-thread.h"
#include "model.capnp.h"
#include "transfer.h"

namespace chitin::model {

// What configure() fixed for every later call.
struct ProviderSettings {
  Api api = Api::OPENAI_CHAT;
  std::string url;                   // the endpoint POSTed to
  std::vector<std::string> headers;  // including the auth header
  std::string apiKey;                // kept for redaction only; it is already in `headers`
  BodySettings body;
  std::vector<std::string> models;  // further models a request may name
  // embed(): the model ("" = none) and its endpoint, with the JSON Accept header.
  std::string embeddingModel;
  std::string embeddingsUrl;
  std::vector<std::string> embeddingsHeaders;
  std::chrono::seconds idleTimeout{120};
  uint32_t maxRetries = 3;
  std::chrono::seconds maxRetryWait{30};
};

// Validates a ProviderConfig and derives the settings. Throws, naming the field, on bad input;
// the messages never include the key itself.
ProviderSettings settingsFromConfig(rpc::ProviderConfig::Reader config);

// The Completion for an outcome.
void fillCompletion(rpc::Completion::Builder completion, const Outcome& outcome);

// Cap'n Proto's Capability::Server has no virtual destructor by design (servers are owned
// through kj::Own, which records the concrete type), so -Wnon-virtual-dtor does not apply.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class ModelProviderServer final : public rpc::ModelProvider::Server {
 public:
  // `egressSocket` as for HttpSession ("" = direct).
  explicit ModelProviderServer(std::string egressSocket = "")
      : egressSocket_(std::move(egressSocket)) {}
  ~ModelProviderServer() { waiting_.clear(); }

  // Calls that run at once; later ones wait their turn. Each call has a transfer thread (and
  // libcurl a resolver thread): the sandbox's RLIMIT_NPROC (32, threads included) must never be
  // what refuses a call -- a thread that cannot start fails the call as a fault, and the
  // supervisor then stops the whole worker. Idle transfer threads kept count too: at most
  // MAX_CONCURRENT_CALLS transfer threads exist at once, kept or running.
  static constexpr size_t MAX_CONCURRENT_CALLS = 8;

 protected:
  kj::Promise<void> configure(ConfigureContext context) override;
  kj::Promise<void> complete(CompleteContext context) override;
  kj::Promise<void> embed(EmbedContext context) override;

 private:
  std::unique_ptr<HttpSession> takeIdleSession();
  std::unique_ptr<TransferThread> takeIdleThread();
  // Runs `spec` on a CallThread once a slot is free; `done` fills the results from the outcome.
  template <typename Done>
  kj::Promise<void> runCall(CallSpec spec, kj::Maybe<rpc::TextStream::Client> stream, Done done);

  // A permission to run one call; destroying it lets the next waiting call run.
  class Slot {
   public:
    explicit Slot(ModelProviderServer& server) : server_(server) {}
    ~Slot() { server_.releaseSlot(); }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;

   private:
    ModelProviderServer& server_;
  };
  kj::Promise<kj::Own<Slot>> acquireSlot();
  void releaseSlot();
  size_t running_ = 0;
  std::deque<kj::Own<kj::PromiseFulfiller<kj::Own<Slot>>>> waiting_;

  std::string egressSocket_;
  std::optional<ProviderSettings> settings_;
  // Sessions of finished calls, with their open connections, reused by later calls.
  std::vector<std::unique_ptr<HttpSession>> idleSessions_;
  static constexpr size_t MAX_IDLE_SESSIONS = 4;
  // Transfer threads of finished calls, idle until the next call takes one (a new thread is
  // started only when none is idle, so kept and running threads together stay within
  // MAX_CONCURRENT_CALLS).
  std::vector<std::unique_ptr<TransferThread>> idleThreads_;
  static constexpr size_t MAX_IDLE_THREADS = 4;
};
#pragma GCC diagnostic pop

}  // namespace chitin::model
