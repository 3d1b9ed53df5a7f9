// SPDX-License-Identifier: Apache-2.0
// The ModelProvider server (see provider.h).
// Runs in: worker (sandboxed)

#include "provider.h"

#include <kj/debug.h>

#include <algorithm>

#include "anthropic.h"
#include "openai-chat.h"
#include "openai-embeddings.h"

namespace chitin::model {

namespace {

bool hasControlOrSpace(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

}  // namespace

ProviderSettings settingsFromConfig(rpc::ProviderConfig::Reader config) {
  ProviderSettings settings;
  settings.api = config.getApi();
  KJ_REQUIRE(settings.api == Api::OPENAI_CHAT || settings.api == Api::ANTHROPIC,
             "ProviderConfig.api is not a known API", static_cast<uint16_t>(settings.api));

  std::string base = toStd(config.getBaseUrl());
  bool http = base.rfind("http://", 0) == 0 && base.size() > 7;
  bool https = base.rfind("https://", 0) == 0 && base.size() > 8;
  KJ_REQUIRE((http || https) && !hasControlOrSpace(base),
             "ProviderConfig.baseUrl must be an http:// or https:// URL without spaces",
             config.getBaseUrl());
  KJ_REQUIRE(base.find('?') == std::string::npos && base.find('#') == std::string::npos,
             "ProviderConfig.baseUrl must not carry a query or fragment", config.getBaseUrl());
  settings.url = settings.api == Api::ANTHROPIC ? anthropicMessagesUrl(base) : openAiChatUrl(base);

  settings.body.model = toStd(config.getModel());
  KJ_REQUIRE(!settings.body.model.empty(), "ProviderConfig.model must name a model");
  for (auto name : config.getModels()) {
    KJ_REQUIRE(name.size() > 0 && !hasControlOrSpace(toStd(name)),
               "ProviderConfig.models must name models, without spaces", name);
    settings.models.push_back(toStd(name));
  }
  settings.body.maxTokens = config.getMaxTokens();
  KJ_REQUIRE(settings.body.maxTokens > 0, "ProviderConfig.maxTokens must be positive");
  KJ_REQUIRE(config.getRequestTimeoutSeconds() > 0,
             "ProviderConfig.requestTimeoutSeconds must be positive");
  settings.idleTimeout = std::chrono::seconds(config.getRequestTimeoutSeconds());
  settings.maxRetries = config.getMaxRetries();
  settings.maxRetryWait = std::chrono::seconds(config.getMaxRetryWaitSeconds());

  settings.apiKey = toStd(config.getApiKey());
  // A newline would inject a header. The key is deliberately not in the message.
  KJ_REQUIRE(!hasControlOrSpace(settings.apiKey),
             "ProviderConfig.apiKey contains spaces or control characters");

  settings.headers = {"Content-Type: application/json", "Accept: text/event-stream"};
  if (settings.api == Api::ANTHROPIC) {
    settings.headers.push_back(std::string("anthropic-version: ") + ANTHROPIC_VERSION);
    if (!settings.apiKey.empty()) settings.headers.push_back("x-api-key: " + settings.apiKey);
  } else if (!settings.apiKey.empty()) {
    settings.headers.push_back("Authorization: Bearer " + settings.apiKey);
  }

  settings.embeddingModel = toStd(config.getEmbeddingModel());
  if (!settings.embeddingModel.empty()) {
    KJ_REQUIRE(!hasControlOrSpace(settings.embeddingModel),
               "ProviderConfig.embeddingModel must name a model, without spaces",
               config.getEmbeddingModel());
    KJ_REQUIRE(settings.api == Api::OPENAI_CHAT,
               "ProviderConfig.embeddingModel needs api openaiChat (Anthropic has no embeddings)");
    settings.embeddingsUrl = openAiEmbeddingsUrl(base);
    settings.embeddingsHeaders = settings.headers;
    settings.embeddingsHeaders[1] = "Accept: application/json";
  }
  return settings;
}

void fillCompletion(rpc::Completion::Builder completion, const Outcome& outcome) {
  completion.setStopReason(outcome.stopReason);
  completion.setInputTokens(outcome.inputTokens);
  completion.setOutputTokens(outcome.outputTokens);
  if (outcome.failure) {
    auto failed = completion.initFailed();
    failed.setKind(outcome.failure->kind);
    failed.setMessage(outcome.failure->message);
    failed.setHttpStatus(outcome.failure->httpStatus);
    return;
  }
  auto message = completion.initMessage();
  message.setRole(rpc::Role::ASSISTANT);
  message.setContent(outcome.content);
  auto calls = message.initToolCalls(static_cast<capnp::uint>(outcome.toolCalls.size()));
  for (size_t i = 0; i < outcome.toolCalls.size(); ++i) {
    auto call = calls[static_cast<capnp::uint>(i)];
    call.setId(outcome.toolCalls[i].id);
    call.setName(outcome.toolCalls[i].name);
    call.setArgumentsJson(outcome.toolCalls[i].argumentsJson);
  }
}

kj::Promise<void> ModelProviderServer::configure(ConfigureContext context) {
  KJ_REQUIRE(settings_ == std::nullopt, "ModelProvider.configure() may be called only once");
  settings_ = settingsFromConfig(context.getParams().getConfig());
  return kj::READY_NOW;
}

kj::Promise<void> ModelProviderServer::complete(CompleteContext context) {
  KJ_REQUIRE(settings_ != std::nullopt, "ModelProvider.complete() called before configure()");
  const ProviderSettings& settings = *settings_;
  auto params = context.getParams();

  CallSpec spec;
  spec.api = settings.api;
  spec.post.url = settings.url;
  spec.post.headers = settings.headers;
  spec.post.idleTimeout = settings.idleTimeout;
  spec.secret = settings.apiKey;
  spec.maxRetries = settings.maxRetries;
  spec.maxRetryWait = settings.maxRetryWait;
  // Built here, on the RPC thread, while the request message is certainly alive; a malformed
  // request throws back to the supervisor before any network traffic.
  // The supervisor names only a model it was configured with: any other is its fault.
  BodySettings body = settings.body;
  if (std::string model = toStd(params.getRequest().getModel()); !model.empty()) {
    KJ_REQUIRE(model == body.model ||
                   std::find(settings.models.begin(), settings.models.end(), model) !=
                       settings.models.end(),
               "CompletionRequest.model is not one this provider was configured with", model);
    body.model = model;
  }
  spec.post.body = settings.api == Api::ANTHROPIC
                       ? buildAnthropicBody(params.getRequest(), body)
                       : buildOpenAiChatBody(params.getRequest(), body);

  // The contract: dropping the call aborts the HTTP request. Capnp 0.9 only cancels a call
  // whose server opted in; ~CallThread then stops the transfer and joins its thread.
  context.allowCancellation();
  return runCall(kj::mv(spec), params.getStream(), [context](const Outcome& outcome) mutable {
    fillCompletion(context.getResults().initCompletion(), outcome);
  });
}

kj::Promise<void> ModelProviderServer::embed(EmbedContext context) {
  KJ_REQUIRE(settings_ != std::nullopt, "ModelProvider.embed() called before configure()");
  const ProviderSettings& settings = *settings_;
  KJ_REQUIRE(!settings.embeddingModel.empty(),
             "ModelProvider.embed() called, but no embeddingModel was configured");
  auto texts = context.getParams().getTexts();
  KJ_REQUIRE(texts.size() > 0 && texts.size() <= rpc::MAX_EMBED_TEXTS,
             "ModelProvider.embed() takes 1 to maxEmbedTexts texts", texts.size());
  std::vector<std::string> copied;
  copied.reserve(texts.size());
  for (auto text : texts) {
    KJ_REQUIRE(text.size() <= rpc::MAX_EMBED_TEXT_BYTES,
               "ModelProvider.embed(): a text is longer than maxEmbedTextBytes", text.size());
    copied.push_back(toStd(text));
  }

  CallSpec spec;
  spec.api = settings.api;
  spec.post.url = settings.embeddingsUrl;
  spec.post.headers = settings.embeddingsHeaders;
  spec.post.idleTimeout = settings.idleTimeout;
  spec.secret = settings.apiKey;
  spec.maxRetries = settings.maxRetries;
  spec.maxRetryWait = settings.maxRetryWait;
  spec.embedTexts = copied.size();
  spec.post.body = buildOpenAiEmbeddingsBody(settings.embeddingModel, copied);

  context.allowCancellation();
  return runCall(kj::mv(spec), nullptr, [context](const Outcome& outcome) mutable {
    auto result = context.getResults().initResult();
    result.setInputTokens(outcome.inputTokens);
    if (outcome.failure) {
      auto failed = result.initFailed();
      failed.setKind(outcome.failure->kind);
      failed.setMessage(outcome.failure->message);
      failed.setHttpStatus(outcome.failure->httpStatus);
      return;
    }
    auto vectors = result.initVectors(static_cast<capnp::uint>(outcome.embeddings.size()));
    for (size_t i = 0; i < outcome.embeddings.size(); ++i) {
      const auto& from = outcome.embeddings[i];
      auto to = vectors.init(static_cast<capnp::uint>(i), static_cast<capnp::uint>(from.size()));
      for (size_t j = 0; j < from.size(); ++j) to.set(static_cast<capnp::uint>(j), from[j]);
    }
  });
}

template <typename Done>
kj::Promise<void> ModelProviderServer::runCall(CallSpec spec,
                                               kj::Maybe<rpc::TextStream::Client> stream,
                                               Done done) {
  return acquireSlot().then([this, spec = kj::mv(spec), stream = kj::mv(stream),
                             done = kj::mv(done)](kj::Own<Slot> slot) mutable {
    auto call = kj::heap<CallThread>(kj::mv(spec), takeIdleSession(), takeIdleThread());
    CallThread& ref = *call;
    return ref.run(kj::mv(stream))
        .then([this, done = kj::mv(done), &ref](kj::Own<Outcome> outcome) mutable {
          done(*outcome);
          if (outcome->failure == std::nullopt && idleSessions_.size() < MAX_IDLE_SESSIONS) {
            idleSessions_.push_back(ref.takeSession());
          }
          if (idleThreads_.size() < MAX_IDLE_THREADS) idleThreads_.push_back(ref.takeThread());
        })
        .attach(kj::mv(call), kj::mv(slot));
  });
}

kj::Promise<kj::Own<ModelProviderServer::Slot>> ModelProviderServer::acquireSlot() {
  if (running_ < MAX_CONCURRENT_CALLS) {
    ++running_;
    return kj::heap<Slot>(*this);
  }
  auto paf = kj::newPromiseAndFulfiller<kj::Own<Slot>>();
  waiting_.push_back(kj::mv(paf.fulfiller));
  return kj::mv(paf.promise);
}

void ModelProviderServer::releaseSlot() {
  // The slot passes to the oldest call still waiting (a cancelled one is skipped).
  while (!waiting_.empty()) {
    auto next = kj::mv(waiting_.front());
    waiting_.pop_front();
    if (next->isWaiting()) {
      next->fulfill(kj::heap<Slot>(*this));
      return;
    }
  }
  --running_;
}

std::unique_ptr<TransferThread> ModelProviderServer::takeIdleThread() {
  if (idleThreads_.empty()) return std::make_unique<TransferThread>();
  auto thread = std::move(idleThreads_.back());
  idleThreads_.pop_back();
  return thread;
}

std::unique_ptr<HttpSession> ModelProviderServer::takeIdleSession() {
  if (idleSessions_.empty()) return std::make_unique<HttpSession>(egressSocket_);
  auto session = std::move(idleSessions_.back());
  idleSessions_.pop_back();
  return session;
}

}  // namespace chitin::model
