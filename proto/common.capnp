# SPDX-License-Identifier: Apache-2.0
# Shared value types that appear on more than one boundary (chat messages, tool calls).
#
# Parties: none by itself -- imported by session.capnp, model.capnp and tool.capnp.
# Trust: these are plain data. Whoever receives one validates it where it is used; a value
# arriving from a worker is attacker-controlled until checked.

@0xecd5a37e7d6b8326;

$import "/capnp/c++.capnp".namespace("chitin::rpc");

enum Role {
  system @0;
  user @1;
  assistant @2;
  tool @3;
}

struct ToolCall {
  # One call the model asked for. `argumentsJson` is the model's JSON object, unparsed: it is
  # parsed and checked by the supervisor before any tool worker sees a typed form of it.
  id @0 :Text;
  name @1 :Text;
  argumentsJson @2 :Text;
}

struct ChatMessage {
  role @0 :Role;
  content @1 :Text;
  toolCalls @2 :List(ToolCall);  # role == assistant only
  toolCallId @3 :Text;           # role == tool only: the call this message answers
  toolName @4 :Text;             # role == tool only
  isError @5 :Bool;              # role == tool only: the tool failed or was refused
}

struct ToolSpec {
  # A tool as offered to the model (OpenAI/Anthropic function schema).
  name @0 :Text;
  description @1 :Text;
  parametersJson @2 :Text;  # JSON Schema of the arguments object
}

interface ByteSink {
  # A flow-controlled byte stream (tool output, streamed text). The receiver may stop early by
  # throwing; the sender must then stop writing.
  write @0 (chunk :Data) -> stream;
  end @1 ();
}
