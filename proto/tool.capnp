# SPDX-License-Identifier: Apache-2.0
# Boundary: supervisor <-> tool worker (one process per tool call, each in its own sandbox).
#
# The tool worker serves `ToolWorker` as its bootstrap capability and accepts exactly one `run`
# call, then exits. The supervisor has already parsed and validated the arguments, decided
# whether the call may run, and chosen the sandbox profile (which decides what the worker can
# see: for file tools only the agent's workspace, mounted at /workspace). The supervisor trusts
# nothing in the result beyond its shape: output is attacker-influenced text.

@0xf25667dd34c51d5e;

$import "/capnp/c++.capnp".namespace("chitin::rpc");

using Common = import "common.capnp";

struct ExecArgs {
  command @0 :Text;
  workdir @1 :Text;          # relative to the workspace root; "" = the root
  timeoutSeconds @2 :UInt32; # already clamped by the supervisor
}

struct ReadArgs {
  path @0 :Text;             # relative to the workspace root (or under /workspace/)
}

struct WriteArgs {
  path @0 :Text;
  content @1 :Text;
}

struct EditArgs {
  path @0 :Text;
  oldText @1 :Text;
  newText @2 :Text;
}

interface Embedder {
  # The supervisor's, passed to the memory worker for one call: embeddings through the model
  # worker (the memory worker has no network, and this opens no new path to one).
  embed @0 (texts :List(Text)) -> (vectors :List(List(Float32)), failed :Text);
  # One vector per text, in order (at most maxEmbedTexts texts, each at most maxEmbedTextBytes:
  # model.capnp), or `failed` non-empty saying why there are none. Past the call's budget
  # (MemoryEmbeddings.maxTexts, plus the query) every call fails.
}

struct MemoryEmbeddings {
  # Hybrid ranking for memory_search: present when the model provider has an embeddings model.
  embedder @0 :Embedder;
  model @1 :Text;       # that model's name: vectors the index holds for another are not used
  maxTexts @2 :UInt32;  # chunk texts this call may embed (the index embeds the rest later)
}

struct MemorySearchArgs {
  query @0 :Text;            # words to look for (not FTS5 syntax: the worker quotes each word)
  maxResults @1 :UInt32;     # already clamped by the supervisor (1..maxMemoryHits)
  # The supervisor's watch on the memory files (supervisor/core/memory-watch.h), 0 = none. When
  # the index last walked the files at this same epoch and generation, and less than
  # memoryWalkEverySeconds ago, nothing the watch sees has changed since: the worker searches
  # without walking. Otherwise it walks, and records the pair for the next search.
  syncEpoch @2 :UInt64;
  syncGeneration @3 :UInt64;
  embeddings @4 :MemoryEmbeddings;  # null: BM25 alone
}

struct MemoryIndexArgs {
  embeddings @0 :MemoryEmbeddings;  # null: the full-text index alone
}

# Vectors of the query and the chunks are combined as memoryVectorWeight x cosine similarity +
# (1 - memoryVectorWeight) x the BM25 score scaled to 0..1 within the candidates, each side
# contributing maxResults x memoryCandidateFactor candidates; a chunk sharing no word with the
# query is a hit only at a similarity of memoryMinVectorOnlySimilarity or more.
const memoryVectorWeight :Float64 = 0.7;
const memoryCandidateFactor :UInt32 = 4;
const memoryMinVectorOnlySimilarity :Float64 = 0.35;

# A walk at least this often whatever the watch says: it cannot see a file changed through a
# shared mapping without a write.
const memoryWalkEverySeconds :UInt32 = 300;

struct MemoryGetArgs {
  path @0 :Text;             # clean: MEMORY.md or beneath memory/ (checked by both sides)
  from @1 :UInt32;           # first line, 1-based
  lines @2 :UInt32;          # how many lines (already clamped by the supervisor)
}

struct ToolInvocation {
  union {
    exec @0 :ExecArgs;
    read @1 :ReadArgs;
    write @2 :WriteArgs;
    edit @3 :EditArgs;
    # The memory worker (workers/memory/): the index is brought up to date before each answer.
    memorySearch @4 :MemorySearchArgs;  # ok: JSON {"hits":[{path,startLine,endLine,snippet,score}],...}
    memoryGet @5 :MemoryGetArgs;        # ok: the lines, each prefixed with its number
    memoryStatus @6 :Void;              # ok: JSON {"files","chunks","indexBytes","stale",
                                        #   "embedded","embeddingModels",...}
    memoryIndex @7 :MemoryIndexArgs;    # ok: JSON, as memoryStatus, after updating the index
  }
}

struct ToolResult {
  union {
    ok @0 :Text;        # what the model sees on success
    failed @1 :Text;    # an expected failure (file not found, exit status != 0, timeout...)
  }
  exitCode @2 :Int32 = -1;    # exec only
  truncated @3 :Bool;         # output was cut at the cap
  timedOut @4 :Bool;
}

# Bounds of the memory worker's answers (workers/memory/). The worker keeps within them and cuts
# every text at a character; the supervisor reads the memory worker's connection with a traversal
# limit derived from maxMemoryResultBytes (readerOptionsFor), so a worker past them is killed as
# a protocol breaker instead of being read.

const maxMemoryHits :UInt32 = 50;
# memorySearch's hits at most (the supervisor clamps maxResults to this).

const maxMemoryPathBytes :UInt32 = 1024;
# A memory file's workspace-relative path at most; a file with a longer path is not indexed
# (counted as skipped).

const maxMemorySnippetBytes :UInt32 = 2048;
# A hit's snippet at most, before JSON escaping.

const maxMemoryTextBytes :UInt32 = 8192;
# Any other text of an answer at most (why the index was rebuilt, a failure).

const maxMemoryGetTextBytes :UInt32 = 524288;
# memoryGet's lines at most (512 KiB); the worker stops at the last whole line that fits and says
# so in a last line.

const maxMemoryResultBytes :UInt64 = 1048576;
# What one memory ToolResult may take in all (1 MiB). The JSON of memorySearch is the largest:
# JSON escapes a byte as at most 6 (\u0001), so maxMemoryHits hits of a path and a snippet at
# their bounds, with their numbers, the statistics with a text of maxMemoryTextBytes, and with
# embeddings the model's name (maxMemoryPathBytes) and why they failed (maxMemoryTextBytes / 2),
# come to under 1,010,000 bytes; memoryGet's text is at most half of it.

interface ToolWorker {
  run @0 (invocation :ToolInvocation, output :Common.ByteSink) -> (result :ToolResult);
  # `output` receives live output (exec only); the final `result` carries the capped text the
  # model will see. Calling `run` with a member this worker kind does not implement, or twice,
  # is a protocol error.
}
