// SPDX-License-Identifier: Apache-2.0
// One turn as the supervisor runs it: the run's state, and the per-turn `Model`, `Tools` and
// text-stream capabilities handed to the session worker.
// Runs in: supervisor
//
// Owns: what a run is (`Run`) and the proxies through which every model call and tool call of
// a turn passes. The proxies record the transcript from what they proxied (never from what the
// worker reports), run only tool calls the model really made (each once, with the arguments it
// sent), and refuse every call once the turn has ended. They may call only their `TurnHost`.

#pragma once

#include <kj/async.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent-service.h"
#include "gateway.pb.h"
#include "guard.h"
#include "json-bounds.h"
#include "model-host.h"
#include "session.capnp.h"
#include "transcript.h"

namespace chitin {

struct Run {
  std::string id;
  std::string sessionKey;
  std::string userText;
  std::string messageUntrusted;  // why the user message itself is content from outside, or ""
  std::shared_ptr<gateway::RunSink> sink;
  bool revoked = false;
  bool finished = false;
  bool aborted = false;  // revoked by the user: late calls are a race, not an attack
  std::vector<gateway::ToolCallSummary> tools;
  struct Requested {
    std::string name;
    std::string arguments;
  };
  std::map<std::string, Requested> requested;  // tool calls the model made, not yet run
  std::string lastAssistantText;
  bool lastHadToolCalls = false;
  std::shared_ptr<TurnFacts> facts;
  // A run may call the session worker more than once: a memory-flush turn before a compaction,
  // then the user's turn. Each call's Model and Tools are valid only in their own phase.
  uint32_t phase = 0;
  bool silent = false;  // the memory-flush phase: its text is not streamed to the client
  // /compact: this run only compacts the session (with these instructions) and reports.
  bool compactOnly = false;
  std::string compactInstructions;
  std::string model;  // the session's /model choice for this run, "" = the configured one
  kj::Canceler canceler;
  kj::Maybe<kj::Promise<void>> turn;
  // Transcript records written and not yet on disk (TranscriptStore::appendAsync); the run's
  // result waits in `deliver` until they are, so no reply is acknowledged before it is kept.
  uint32_t unsyncedAppends = 0;
  int syncError = 0;  // the first failed fdatasync's errno
  std::function<void()> deliver;
};

// What a turn's capabilities may call: the agent core that owns the run.
class TurnHost {
 public:
  virtual ~TurnHost() = default;
  virtual void record(const std::shared_ptr<Run>& run, TranscriptEntry entry) = 0;
  virtual void emitTool(const std::shared_ptr<Run>& run, const gateway::ToolCallSummary& tool,
                        const char* phase) = 0;
  // The session worker running `run` broke the protocol: kill it (the turn then fails).
  virtual void killWorkerOf(const std::shared_ptr<Run>& run, const std::string& reason) = 0;
  virtual ModelHost& model() = 0;
  virtual Guard& guard() = 0;
};

kj::Own<rpc::Model::Server> newModelProxy(TurnHost& host, std::shared_ptr<Run> run);
kj::Own<rpc::Tools::Server> newToolsProxy(TurnHost& host, std::shared_ptr<Run> run);

// Throws (and, for a turn that ended normally, kills the worker) if the run's capabilities have
// been revoked or belong to an earlier phase: a worker that keeps a capability past its turn is
// compromised.
void checkNotRevoked(TurnHost& host, const std::shared_ptr<Run>& run, const char* capability,
                     uint32_t phase);

// Ends a run's phase: its capabilities die, and what the model said in it is not the reply.
void endPhase(Run& run);

// What the next turn replays to the model of a session's transcript: its compacted view
// (compaction.h), the newest entries of it (at most 400, a summary at the start kept), starting
// at a user message after the summary, with open tool exchanges closed.
std::vector<TranscriptEntry> replayWindow(std::vector<TranscriptEntry> entries);

// Why `window` holds untrusted content (the reason of its oldest untrusted entry), or "": the
// session is tainted exactly while this is not empty.
std::string untrustedSourceOf(const std::vector<TranscriptEntry>& window);

// Closes a history that ends inside a tool exchange (a crash between a call and its result):
// unanswered calls get an "interrupted" error result, results without their call are dropped.
void closeOpenToolCalls(std::vector<TranscriptEntry>& entries);

// The bounds a model's reply must keep before anything in the supervisor touches it (issue 8
// §1): the transcript, the guard's parse of the arguments, fingerprints, descriptions and the
// policy's view of the arguments all rely on them. Generous for any real model.
constexpr size_t MAX_ASSISTANT_TEXT_BYTES = 1 << 20;
constexpr JsonBounds TOOL_ARGUMENTS_BOUNDS{4 << 20, 64};
constexpr size_t MAX_COMPLETION_ARGUMENTS_BYTES = 8 << 20;  // all calls of one reply together
constexpr size_t MAX_TOOL_NAME_BYTES = 64;
constexpr size_t MAX_TOOL_CALL_ID_BYTES = 256;

// "" if the model's assistant message keeps those bounds; else why not, naming the call. A
// reply that breaks them is refused as a whole (the turn fails with this reason; nothing of it
// is recorded or run): it came from the model, so it is not the model worker's fault.
std::string checkAssistantMessage(rpc::ChatMessage::Reader message);

// What the core records of the model worker's assistant message: the content made valid UTF-8,
// the tool calls as sent (the Tools proxy later runs only these, exactly as recorded). Throws
// (a protocol fault of the model worker) on more than 128 tool calls.
TranscriptEntry assistantEntryFrom(rpc::ChatMessage::Reader message);

// The `tool` event for a call the session worker asked to run (id, name and arguments come
// from the model worker's completion).
gateway::ToolCallSummary toolCallSummary(const std::string& id, const std::string& name,
                                         const std::string& argumentsJson);

// A short, valid-UTF-8 excerpt for events and error messages (the source may be model output).
std::string summarize(const std::string& raw);

}  // namespace chitin
