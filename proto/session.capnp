# SPDX-License-Identifier: Apache-2.0
# Boundary: supervisor <-> session worker (one process per active session key).
#
# The session worker serves `SessionWorker` as its bootstrap capability. It runs the agent loop
# and nothing else: it has no network, no filesystem, no credentials. For each turn the
# supervisor hands it two capabilities, `Model` and `Tools`, which are the supervisor's own
# objects: every model call and tool call goes through the supervisor, which records it, decides
# whether it may happen, and revokes both capabilities when the turn ends or is aborted.
#
# The supervisor does not trust the session worker: it writes the transcript itself from what
# it proxied (never from what the worker reports), validates every tool call where it is used,
# and kills the worker on a protocol violation. The worker trusts the supervisor.

@0xeddf3bca571aee40;

$import "/capnp/c++.capnp".namespace("chitin::rpc");

using Common = import "common.capnp";
using ModelApi = import "model.capnp";

struct ContextFile {
  # A workspace file injected into the system prompt (AGENTS.md, SOUL.md, USER.md).
  name @0 :Text;
  content @1 :Text;
}

struct TurnRequest {
  sessionKey @0 :Text;
  runId @1 :Text;
  systemPrompt @2 :Text;
  contextFiles @3 :List(ContextFile);
  history @4 :List(Common.ChatMessage);  # from the supervisor's transcript
  userText @5 :Text;
  maxSteps @6 :UInt32 = 16;              # model calls per turn
}

struct TurnOutcome {
  union {
    answered @0 :Text;       # the assistant's final text
    failed @1 :Text;         # a user-facing reason (model error, step limit)
  }
  steps @2 :UInt32;
}

interface Model {
  complete @0 (request :ModelApi.CompletionRequest) -> (completion :ModelApi.Completion);
  # Throws "revoked" once the turn has ended.
}

interface Tools {
  call @0 (call :Common.ToolCall) -> (result :Common.ChatMessage);
  # Runs one tool call in its own sandbox. Denials, bad arguments and tool failures are
  # results (role == tool, isError == true) that the model reads; only faults throw.
}

interface SessionWorker {
  runTurn @0 (request :TurnRequest, model :Model, tools :Tools) -> (outcome :TurnOutcome);
  # At most one turn at a time; a second concurrent call is a protocol error.
}
