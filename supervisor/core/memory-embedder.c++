// SPDX-License-Identifier: Apache-2.0
// The memory worker's Embedder (see memory-embedder.h).
// Runs in: supervisor

#include "memory-embedder.h"

#include <kj/debug.h>

#include "model.capnp.h"

namespace chitin {

kj::Promise<void> MemoryEmbedder::embed(EmbedContext context) {
  auto texts = context.getParams().getTexts();
  KJ_REQUIRE(texts.size() > 0 && texts.size() <= rpc::MAX_EMBED_TEXTS,
             "Embedder.embed() takes 1 to maxEmbedTexts texts", texts.size());
  for (auto text : texts) {
    KJ_REQUIRE(text.size() <= rpc::MAX_EMBED_TEXT_BYTES,
               "Embedder.embed(): a text is longer than maxEmbedTextBytes", text.size());
  }
  if (texts.size() > left_) {
    context.getResults().setFailed("this call's embedding budget is spent");
    return kj::READY_NOW;
  }
  left_ -= texts.size();
  // A memory worker that is gone (its wall clock, its call cancelled) takes its request with it:
  // the model worker's HTTP request is aborted.
  context.allowCancellation();
  return embed_(texts).then([context](kj::Own<capnp::MallocMessageBuilder> message) mutable {
    auto result = message->getRoot<rpc::EmbeddingResult>().asReader();
    auto results = context.getResults();
    if (result.isFailed()) {
      results.setFailed(result.getFailed().getMessage());
      return;
    }
    results.setVectors(result.getVectors());
  });
}

void grantMemoryEmbeddings(rpc::MemoryEmbeddings::Builder args, EmbedFunction embed,
                           const std::string& model, uint32_t maxChunkTexts) {
  // The query is embedded too: one text beyond the chunks.
  args.setEmbedder(kj::heap<MemoryEmbedder>(kj::mv(embed), maxChunkTexts + 1));
  args.setModel(model);
  args.setMaxTexts(maxChunkTexts);
}

}  // namespace chitin
