// SPDX-License-Identifier: Apache-2.0
// chitin-worker-memory: serves one memory call (memory_search, memory_get, or the CLI's status
// and index) over the agent's memory files, with the index kept in its state directory.
// Runs in: worker (sandboxed; sandbox-profiles/memory.textproto): the workspace read-only at
// /workspace, the agent's memory state directory at /state, no network.
// Trusts: the supervisor. The memory files are data (any session may have written them); the
// index file is derived and replaced when it is not valid (memory-index.h).
//
// Worker flags (besides the spawner's): --workspace-root=DIR (tool-worker-common.h) and
// --state-dir=DIR (default /state); the spawner passes neither, tests use both.

#include <fcntl.h>
#include <kj/debug.h>
#include <kj/io.h>

#include <algorithm>
#include <memory>
#include <nlohmann/json.hpp>

#include "memory-index.h"
#include "model.capnp.h"
#include "tool-worker-common.h"

namespace chitin {
namespace {

using nlohmann::json;

constexpr const char STATE_DIR_FLAG[] = "--state-dir=";
constexpr const char INDEX_FILE[] = "index.sqlite";

static_assert(MemoryIndex::MAX_PATH_BYTES == rpc::MAX_MEMORY_PATH_BYTES,
              "the index skips the paths tool.capnp does not allow");
static_assert(MemoryIndex::WALK_EVERY_SECONDS == rpc::MEMORY_WALK_EVERY_SECONDS,
              "the index walks as often as tool.capnp promises");
static_assert(HybridWeights{}.vectorWeight == rpc::MEMORY_VECTOR_WEIGHT &&
                  HybridWeights{}.candidateFactor == rpc::MEMORY_CANDIDATE_FACTOR &&
                  HybridWeights{}.minVectorOnlySimilarity == rpc::MEMORY_MIN_VECTOR_ONLY_SIMILARITY,
              "the hybrid ranking is tool.capnp's");

json statsJson(const MemoryStats& s) {
  return json{{"files", s.files},
              {"chunks", s.chunks},
              {"indexBytes", s.indexBytes},
              {"added", s.added},
              {"changed", s.changed},
              {"removed", s.removed},
              {"unchanged", s.unchanged},
              {"stale", s.stale},
              {"skipped", s.skipped},
              {"updatedAt", s.updatedAt},
              {"rebuiltBecause", cutAtCharacter(s.rebuiltBecause, rpc::MAX_MEMORY_TEXT_BYTES)}};
}

// One memory_search or memoryIndex call with embeddings (tool.capnp MemoryEmbeddings): the index
// brought up to date, then chunks without a vector embedded through the supervisor's Embedder
// in batches (at most the call's maxTexts, and only while EMBED_FOR lasts, so the answer
// never waits out the sandbox's wall clock), then the query embedded and the hybrid ranking.
// Whatever the embedder does, the call answers: without vectors it ranks by keywords and says
// why in "embeddingError".
struct EmbeddingCall {
  std::unique_ptr<MemoryIndex> index;
  MemoryStats stats;
  rpc::Embedder::Client embedder = nullptr;
  std::string model;
  uint32_t left = 0;         // chunk texts this call may still embed
  uint64_t embeddedNow = 0;  // chunk texts it did embed
  std::string error;         // why embedding stopped early, or ""
  std::string failed;        // why the call itself failed (its answer is `failed`), or ""
  kj::TimePoint deadline = kj::origin<kj::TimePoint>();
};

// How long one call spends embedding chunks (the query is embedded after, on its own clock).
constexpr kj::Duration EMBED_FOR = 20 * kj::SECONDS;
constexpr kj::Duration EMBED_QUERY_FOR = 20 * kj::SECONDS;

// The vectors of an Embedder answer, or none and `error` set.
std::vector<std::vector<float>> vectorsOf(rpc::Embedder::EmbedResults::Reader answer, size_t texts,
                                          std::string& error) {
  if (answer.getFailed().size() > 0) {
    error = cutAtCharacter(answer.getFailed(), rpc::MAX_MEMORY_TEXT_BYTES / 2);
    return {};
  }
  auto vectors = answer.getVectors();
  if (vectors.size() != texts) {
    error = "the embedder answered " + std::to_string(vectors.size()) + " vectors for " +
            std::to_string(texts) + " texts";
    return {};
  }
  std::vector<std::vector<float>> out;
  out.reserve(texts);
  for (auto vector : vectors) {
    if (vector.size() == 0 || vector.size() > rpc::MAX_EMBEDDING_DIMENSIONS) {
      error = "the embedder answered a vector of " + std::to_string(vector.size()) + " dimensions";
      return {};
    }
    out.emplace_back(vector.begin(), vector.end());
  }
  return out;
}

// Cap'n Proto 0.9.2's generated Server bases have no virtual destructor; kj::heap's disposer
// destroys the concrete type, so -Wnon-virtual-dtor's concern does not arise.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class MemoryWorker final : public rpc::ToolWorker::Server {
 public:
  MemoryWorker(WorkerContext& worker, kj::AutoCloseFd root, std::string stateDir)
      : oneCall(worker, {rpc::ToolInvocation::MEMORY_SEARCH, rpc::ToolInvocation::MEMORY_GET,
                         rpc::ToolInvocation::MEMORY_STATUS, rpc::ToolInvocation::MEMORY_INDEX}),
        timer(worker.io.provider->getTimer()),
        root(kj::mv(root)),
        stateDir(kj::mv(stateDir)) {}

  kj::Promise<void> run(RunContext context) override {
    auto invocation = context.getParams().getInvocation();
    oneCall.begin(invocation);
    auto ok = [context](std::string text) mutable {
      context.getResults().initResult().setOk(text);
    };
    auto failed = [context](const std::string& why) mutable {
      context.getResults().initResult().setFailed(cutAtCharacter(why, rpc::MAX_MEMORY_TEXT_BYTES));
    };
    kj::Promise<void> work = nullptr;
    try {
      KJ_IF_MAYBE (call, begin(invocation)) {
        // The index's lock is held until the call's object goes (it owns the MemoryIndex).
        auto& ref = **call;
        work = embedChunks(ref)
                   .then([this, &ref, invocation]() { return finishEmbedding(ref, invocation); })
                   .then([ok, failed, &ref](std::string text) mutable {
                     if (ref.failed.empty()) {
                       ok(kj::mv(text));
                     } else {
                       failed(ref.failed);
                     }
                   })
                   .attach(kj::mv(*call));
      } else {
        ok(answerWithoutEmbeddings(invocation));
        work = kj::READY_NOW;
      }
    } catch (const std::exception& e) {
      failed(e.what());
      work = kj::READY_NOW;
    }
    return oneCall.finish(kj::mv(work));
  }

 private:
  OneCall oneCall;
  kj::Timer& timer;
  kj::AutoCloseFd root;
  std::string stateDir;
  std::unique_ptr<MemoryIndex> index;  // the call's, when it does not embed

  std::string indexPath() const { return stateDir + "/" + INDEX_FILE; }

  // Every text is dumped with invalid UTF-8 replaced: memory files (and so paths, snippets and
  // the reasons naming them) are anybody's bytes, never a reason to fail.
  static std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
  }

  static WalkSync syncOf(rpc::ToolInvocation::Reader invocation) {
    WalkSync sync;  // the supervisor's watch, when it passed one: maybe no walk is needed
    if (invocation.isMemorySearch()) {
      sync.epoch = invocation.getMemorySearch().getSyncEpoch();
      sync.generation = invocation.getMemorySearch().getSyncGeneration();
    }
    return sync;
  }

  // A search or an index call handed an embedder: its index, brought up to date.
  kj::Maybe<kj::Own<EmbeddingCall>> begin(rpc::ToolInvocation::Reader invocation) {
    bool search = invocation.isMemorySearch();
    if (!search && !invocation.isMemoryIndex()) return nullptr;
    auto embeddings = search ? invocation.getMemorySearch().getEmbeddings()
                             : invocation.getMemoryIndex().getEmbeddings();
    if (!embeddings.hasEmbedder() || embeddings.getModel().size() == 0) return nullptr;
    auto call = kj::heap<EmbeddingCall>();
    call->index = std::make_unique<MemoryIndex>(indexPath());
    call->stats = call->index->update(root, syncOf(invocation));
    call->embedder = embeddings.getEmbedder();
    call->model = embeddings.getModel();
    call->left = embeddings.getMaxTexts();
    call->deadline = timer.now() + EMBED_FOR;
    return kj::mv(call);
  }

  // Embeds chunks without a vector, a batch at a time, while the budget and the time last.
  kj::Promise<void> embedChunks(EmbeddingCall& call) {
    if (call.left == 0 || !call.error.empty() || timer.now() >= call.deadline) return kj::READY_NOW;
    std::vector<ChunkToEmbed> batch;
    try {
      batch = call.index->chunksToEmbed(call.model, std::min(call.left, rpc::MAX_EMBED_TEXTS));
    } catch (const std::exception& e) {
      call.error = e.what();
      return kj::READY_NOW;
    }
    if (batch.empty()) return kj::READY_NOW;
    auto request = call.embedder.embedRequest();
    auto texts = request.initTexts(static_cast<capnp::uint>(batch.size()));
    for (size_t i = 0; i < batch.size(); ++i)
      texts.set(static_cast<capnp::uint>(i),
                cutAtCharacter(batch[i].text, rpc::MAX_EMBED_TEXT_BYTES));
    auto sent = request.send().then(
        [this, &call, batch = kj::mv(batch)](
            capnp::Response<rpc::Embedder::EmbedResults>&& answer) mutable -> kj::Promise<void> {
          auto vectors = vectorsOf(answer, batch.size(), call.error);
          if (!call.error.empty()) return kj::READY_NOW;
          try {
            call.index->putVectors(call.model, batch, vectors);
          } catch (const std::exception& e) {
            call.error = e.what();
            return kj::READY_NOW;
          }
          call.left -= static_cast<uint32_t>(std::min<size_t>(call.left, batch.size()));
          call.embeddedNow += batch.size();
          return embedChunks(call);
        },
        [&call](kj::Exception&& e) {
          call.error = std::string("the embedder failed: ") + e.getDescription().cStr();
        });
    return timer.timeoutAfter(call.deadline - timer.now(), kj::mv(sent))
        .catch_([&call](kj::Exception&& e) {
          if (call.error.empty())
            call.error = e.getType() == kj::Exception::Type::OVERLOADED
                             ? "embedding took longer than this call may spend on it"
                             : std::string("the embedder failed: ") + e.getDescription().cStr();
        });
  }

  // After the chunks: the index call's answer, or the query embedded and the search.
  kj::Promise<std::string> finishEmbedding(EmbeddingCall& call,
                                           rpc::ToolInvocation::Reader invocation) {
    if (!invocation.isMemorySearch())
      return guarded(call, [&] { return dump(embeddingJson(call, statsJson(call.stats))); });
    auto search = invocation.getMemorySearch();
    std::string query = search.getQuery();
    uint32_t most = std::min(search.getMaxResults(), rpc::MAX_MEMORY_HITS);
    if (!call.error.empty()) return searchAnswer(call, query, most, {});
    auto request = call.embedder.embedRequest();
    request.initTexts(1).set(0, cutAtCharacter(query, rpc::MAX_EMBED_TEXT_BYTES));
    auto asked = request.send().then(
        [&call](capnp::Response<rpc::Embedder::EmbedResults>&& answer) {
          auto vectors = vectorsOf(answer, 1, call.error);
          return vectors.empty() ? std::vector<float>() : kj::mv(vectors[0]);
        },
        [&call](kj::Exception&& e) {
          call.error = std::string("the embedder failed: ") + e.getDescription().cStr();
          return std::vector<float>();
        });
    return timer.timeoutAfter(EMBED_QUERY_FOR, kj::mv(asked))
        .catch_([&call](kj::Exception&&) {
          call.error = "embedding the query took longer than this call may spend on it";
          return std::vector<float>();
        })
        .then([this, &call, query, most](std::vector<float> vector) {
          return searchAnswer(call, query, most, vector);
        });
  }

  // `answer()`, or "" with call.failed set when it throws (a query without words, an index
  // that cannot be read): the call's `failed` answer, as without embeddings.
  template <typename F>
  static std::string guarded(EmbeddingCall& call, F&& answer) {
    try {
      return answer();
    } catch (const std::exception& e) {
      call.failed = e.what();
      return "";
    }
  }

  std::string searchAnswer(EmbeddingCall& call, const std::string& query, uint32_t most,
                           const std::vector<float>& vector) {
    return guarded(call, [&] { return rankedAnswer(call, query, most, vector); });
  }

  std::string rankedAnswer(EmbeddingCall& call, const std::string& query, uint32_t most,
                           const std::vector<float>& vector) {
    std::vector<MemoryHit> hits;
    bool hybrid = !vector.empty();
    if (hybrid) {
      try {
        hits = call.index->searchHybrid(query, vector, call.model, most);
      } catch (const std::invalid_argument& e) {
        call.error = e.what();  // a vector of zeros or infinities: keywords alone
        hybrid = false;
      }
    }
    if (!hybrid) hits = call.index->search(query, most);
    json out = hitsJson(call.stats, hits);
    out["ranking"] = hybrid ? "hybrid" : "keyword";
    return dump(embeddingJson(call, kj::mv(out)));
  }

  json embeddingJson(EmbeddingCall& call, json out) {
    out["embeddingModel"] = cutAtCharacter(call.model, rpc::MAX_MEMORY_PATH_BYTES);
    out["embedded"] = call.index->embeddedChunks(call.model);
    out["embeddedNow"] = call.embeddedNow;
    if (!call.error.empty())
      out["embeddingError"] = cutAtCharacter(call.error, rpc::MAX_MEMORY_TEXT_BYTES / 2);
    return out;
  }

  static json hitsJson(const MemoryStats& stats, const std::vector<MemoryHit>& found) {
    json hits = json::array();
    for (const auto& hit : found) {
      if (hit.path.size() > rpc::MAX_MEMORY_PATH_BYTES) continue;  // never indexed so
      hits.push_back(json{{"path", hit.path},
                          {"startLine", hit.startLine},
                          {"endLine", hit.endLine},
                          {"snippet", cutAtCharacter(hit.snippet, rpc::MAX_MEMORY_SNIPPET_BYTES)},
                          {"score", hit.score}});
    }
    json out = statsJson(stats);
    out["hits"] = kj::mv(hits);
    return out;
  }

  std::string answerWithoutEmbeddings(rpc::ToolInvocation::Reader invocation) {
    if (invocation.isMemoryGet()) {
      auto get = invocation.getMemoryGet();
      std::string error;
      std::string text = readMemoryLines(root, get.getPath(), get.getFrom(), get.getLines(), error);
      if (!error.empty()) throw std::runtime_error(error);
      return boundedLines(text, rpc::MAX_MEMORY_GET_TEXT_BYTES);
    }
    index = std::make_unique<MemoryIndex>(indexPath());
    if (invocation.isMemoryStatus()) {
      json out = statsJson(index->status(root));
      json models = json::object();
      for (const auto& [model, count] : index->vectorCounts())
        models[cutAtCharacter(model, rpc::MAX_MEMORY_PATH_BYTES)] = count;
      out["vectors"] = kj::mv(models);
      return dump(out);
    }
    MemoryStats stats = index->update(root, syncOf(invocation));
    if (invocation.isMemoryIndex()) return dump(statsJson(stats));
    auto search = invocation.getMemorySearch();
    uint32_t most = std::min(search.getMaxResults(), rpc::MAX_MEMORY_HITS);
    json out = hitsJson(stats, index->search(search.getQuery(), most));
    out["ranking"] = "keyword";
    return dump(out);
  }
};
#pragma GCC diagnostic pop

}  // namespace
}  // namespace chitin

int main(int argc, char** argv) {
  std::string stateDir = "/state";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind(chitin::STATE_DIR_FLAG, 0) == 0)
      stateDir = arg.substr(sizeof(chitin::STATE_DIR_FLAG) - 1);
  }
  return chitin::runWorker(
      argc, argv, "memory", [argc, argv, stateDir](chitin::WorkerContext& worker) {
        kj::StringPtr rootPath = chitin::workspaceRootFromArgs(argc, argv);
        int fd;
        KJ_SYSCALL(fd = open(rootPath.cStr(), O_RDONLY | O_DIRECTORY | O_CLOEXEC), rootPath);
        return capnp::Capability::Client(
            kj::heap<chitin::MemoryWorker>(worker, kj::AutoCloseFd(fd), stateDir));
      });
}
