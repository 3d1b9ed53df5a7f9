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
#include <nlohmann/json.hpp>

#include "memory-index.h"
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

// Cap'n Proto 0.9.2's generated Server bases have no virtual destructor; kj::heap's disposer
// destroys the concrete type, so -Wnon-virtual-dtor's concern does not arise.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class MemoryWorker final : public rpc::ToolWorker::Server {
 public:
  MemoryWorker(WorkerContext& worker, kj::AutoCloseFd root, std::string stateDir)
      : oneCall(worker, {rpc::ToolInvocation::MEMORY_SEARCH, rpc::ToolInvocation::MEMORY_GET,
                         rpc::ToolInvocation::MEMORY_STATUS, rpc::ToolInvocation::MEMORY_INDEX}),
        root(kj::mv(root)),
        stateDir(kj::mv(stateDir)) {}

  kj::Promise<void> run(RunContext context) override {
    auto invocation = context.getParams().getInvocation();
    oneCall.begin(invocation);
    return oneCall.finish(kj::evalNow([&]() -> kj::Promise<void> {
      auto result = context.getResults().initResult();
      try {
        std::string text = answer(invocation);
        result.setOk(text);
      } catch (const std::exception& e) {
        result.setFailed(cutAtCharacter(e.what(), rpc::MAX_MEMORY_TEXT_BYTES));
      }
      return kj::READY_NOW;
    }));
  }

 private:
  OneCall oneCall;
  kj::AutoCloseFd root;
  std::string stateDir;

  std::string answer(rpc::ToolInvocation::Reader invocation) {
    if (invocation.isMemoryGet()) {
      auto get = invocation.getMemoryGet();
      std::string error;
      std::string text = readMemoryLines(root, get.getPath(), get.getFrom(), get.getLines(), error);
      if (!error.empty()) throw std::runtime_error(error);
      return boundedLines(text, rpc::MAX_MEMORY_GET_TEXT_BYTES);
    }
    MemoryIndex index(stateDir + "/" + INDEX_FILE);
    // Every text is dumped with invalid UTF-8 replaced: memory files (and so paths, snippets and
    // the reasons naming them) are anybody's bytes, never a reason to fail.
    auto dump = [](const json& j) {
      return j.dump(-1, ' ', false, json::error_handler_t::replace);
    };
    if (invocation.isMemoryStatus()) return dump(statsJson(index.status(root)));
    WalkSync sync;  // the supervisor's watch, when it passed one: maybe no walk is needed
    if (invocation.isMemorySearch()) {
      sync.epoch = invocation.getMemorySearch().getSyncEpoch();
      sync.generation = invocation.getMemorySearch().getSyncGeneration();
    }
    MemoryStats stats = index.update(root, sync);
    if (invocation.isMemoryIndex()) return dump(statsJson(stats));
    auto search = invocation.getMemorySearch();
    json hits = json::array();
    uint32_t most = std::min(search.getMaxResults(), rpc::MAX_MEMORY_HITS);
    for (const auto& hit : index.search(search.getQuery(), most)) {
      if (hit.path.size() > rpc::MAX_MEMORY_PATH_BYTES) continue;  // never indexed so
      hits.push_back(json{{"path", hit.path},
                          {"startLine", hit.startLine},
                          {"endLine", hit.endLine},
                          {"snippet", cutAtCharacter(hit.snippet, rpc::MAX_MEMORY_SNIPPET_BYTES)},
                          {"score", hit.score}});
    }
    json out = statsJson(stats);
    out["hits"] = kj::mv(hits);
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
