// SPDX-License-Identifier: Apache-2.0
// The Embedder one memory worker call is handed (tool.capnp): embeddings for memory_search's
// hybrid ranking, through the model worker (ModelHost::embed). The memory worker has no network;
// this gives it none: it can only ask for vectors of texts, within its call's budget.
// Runs in: supervisor
//
// Trust: the caller is a sandboxed memory worker reading anybody's notes, so a request past the
// contract's bounds (count, text size) is a protocol fault, and past the call's budget every
// request fails: a compromised worker can spend at most one call's budget of the provider's
// embeddings. What the provider returns was already checked by the model worker (one vector per
// text, one dimension, finite numbers) and is passed on as it is.
#pragma once

#include <capnp/message.h>
#include <kj/async.h>

#include <cstdint>
#include <functional>
#include <string>

#include "tool.capnp.h"

namespace chitin {

// ModelHost::embed: the result message's root is an rpc::EmbeddingResult.
using EmbedFunction = std::function<kj::Promise<kj::Own<capnp::MallocMessageBuilder>>(
    capnp::List<capnp::Text>::Reader texts)>;

// How many texts one memory call may have embedded: maxTexts chunks, and its query.
constexpr uint32_t MEMORY_EMBED_CHUNKS_PER_CALL = 256;

// Cap'n Proto 0.9.2's generated Server bases have no virtual destructor; kj::heap's disposer
// destroys the concrete type, so -Wnon-virtual-dtor's concern does not arise.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class MemoryEmbedder final : public rpc::Embedder::Server {
 public:
  // `budget`: texts this call may embed in all.
  MemoryEmbedder(EmbedFunction embed, uint32_t budget) : embed_(kj::mv(embed)), left_(budget) {}

  uint32_t textsLeft() const { return left_; }

 protected:
  kj::Promise<void> embed(EmbedContext context) override;

 private:
  EmbedFunction embed_;
  uint32_t left_;
};
#pragma GCC diagnostic pop

// The MemoryEmbeddings of a memory call (tool.capnp), filled in `args`.
void grantMemoryEmbeddings(rpc::MemoryEmbeddings::Builder args, EmbedFunction embed,
                           const std::string& model, uint32_t maxChunkTexts);

}  // namespace chitin
