# SPDX-License-Identifier: Apache-2.0
# Boundary: supervisor <-> model worker (one process per configured provider).
#
# The model worker serves `ModelProvider` as its bootstrap capability; the supervisor is the
# only client. The supervisor trusts the worker with exactly one secret -- the provider's API
# key, handed over in `configure` and never in argv, environment or a file -- and with nothing
# else. The worker trusts nothing it receives from the network: it parses the provider's
# HTTP/SSE replies and turns them into the typed `Completion` below. The supervisor treats every
# result as untrusted data (it comes from the internet, via a process that parsed it).

@0xaee2078d045a7814;

$import "/capnp/c++.capnp".namespace("chitin::rpc");

using Common = import "common.capnp";

struct ProviderConfig {
  enum Api {
    openaiChat @0;  # OpenAI-compatible /v1/chat/completions (also Ollama, vLLM, llama.cpp)
    anthropic @1;   # Anthropic /v1/messages
  }
  api @0 :Api;
  baseUrl @1 :Text;       # e.g. "https://api.openai.com/v1" or "http://127.0.0.1:11434/v1"
  apiKey @2 :Text;        # may be empty (local servers)
  model @3 :Text;
  maxTokens @4 :UInt32 = 4096;
  requestTimeoutSeconds @5 :UInt32 = 120;
  maxRetries @6 :UInt32 = 3;      # on 429/5xx, honouring retry-after
  maxRetryWaitSeconds @7 :UInt32 = 30;
  models @8 :List(Text);  # further models of this provider a request may name (`/model NAME`)
  embeddingModel @9 :Text;
  # The model `embed` uses, at the OpenAI-compatible `<baseUrl>/embeddings` (OpenAI, Ollama, vLLM,
  # llama.cpp); "" = this provider embeds nothing. Only with api openaiChat: Anthropic's API
  # offers no embeddings.
}

struct CompletionRequest {
  system @0 :Text;
  messages @1 :List(Common.ChatMessage);
  tools @2 :List(Common.ToolSpec);
  model @3 :Text;  # "" = the configured `model`; else it or one of `models` (else a fault)
}

struct ModelFailure {
  enum Kind {
    rateLimited @0;     # 429 after the retries were spent
    serverError @1;     # 5xx/529 after the retries were spent
    badRequest @2;      # 4xx other than auth: the provider rejected what we sent
    unauthorized @3;    # 401/403
    badResponse @4;     # the reply did not parse as the API says it must
    truncated @5;       # the stream ended before its terminator
    network @6;         # could not connect, TLS failure, timeout
    refused @7;         # the model refused (content filter, stop_reason "refusal")
    cancelled @8;
  }
  kind @0 :Kind;
  message @1 :Text;     # human-readable, safe to show to the user (no secrets)
  httpStatus @2 :UInt16;
}

struct Completion {
  union {
    message @0 :Common.ChatMessage;  # role == assistant; content and/or toolCalls
    failed @1 :ModelFailure;
  }
  stopReason @2 :Text;   # provider's finish/stop reason, for the log
  inputTokens @3 :UInt32;
  outputTokens @4 :UInt32;
}

interface TextStream {
  # Assistant text as it streams in. Purely informational: the final `Completion` is the truth.
  delta @0 (text :Text) -> stream;
}

struct EmbeddingResult {
  union {
    vectors @0 :List(List(Float32));
    # One per text, in the request's order, all of one dimension (1..maxEmbeddingDimensions),
    # every component finite.
    failed @1 :ModelFailure;
  }
  inputTokens @2 :UInt32;
}

const maxEmbedTexts :UInt32 = 64;
# Texts in one `embed` call at most.

const maxEmbedTextBytes :UInt32 = 8192;
# One text at most (the caller cuts longer ones at a character).

const maxEmbeddingDimensions :UInt32 = 4096;
# A longer vector is a bad response (the largest common models have 3,072).

interface ModelProvider {
  configure @0 (config :ProviderConfig) -> ();
  # Must be called exactly once, before `complete`. A second call is a protocol error.

  complete @1 (request :CompletionRequest, stream :TextStream) -> (completion :Completion);
  # One model call. Expected failures are `completion.failed`; only protocol faults throw.
  # Cancelling the call aborts the HTTP request.

  embed @2 (texts :List(Text)) -> (result :EmbeddingResult);
  # The embeddings of `texts` (1..maxEmbedTexts, each at most maxEmbedTextBytes) under the
  # configured embeddingModel. Expected failures are `result.failed`; a call without an
  # embeddingModel, or past the bounds, is a protocol fault. Cancelling aborts the request.
}
