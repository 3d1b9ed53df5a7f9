// SPDX-License-Identifier: Apache-2.0
// chitin.conf: loading (protobuf text format, file:line:column errors), defaults, the
// commented example written on first start, and the CHITIN_MODEL_* environment overrides.
// Runs in: supervisor

#pragma once

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.pb.h"

namespace chitin {

// A config problem the owner must fix. The message names the file (and line:column when the
// parser knows it) and what was expected. The CLI exits 2 on it.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup processEnvironment();

// The model settings after config + environment, including the key (held only in memory and
// handed to the model worker over Cap'n Proto).
struct ModelSettings {
  config::ModelConfig::Provider provider = config::ModelConfig::PROVIDER_UNSPECIFIED;
  std::string baseUrl;
  std::string model;
  std::string apiKey;
  uint32_t maxTokens = 4096;
  uint32_t requestTimeoutSeconds = 120;
  uint32_t maxRetries = 3;
  std::vector<std::string> alternatives;  // model.alternatives: what /model may switch to
  std::string embeddingModel;             // model.embedding_model; "" = no embeddings

  // `name` is the configured model or one of its alternatives.
  bool offers(const std::string& name) const;
  bool configured() const {
    return provider != config::ModelConfig::PROVIDER_UNSPECIFIED && !model.empty();
  }
  std::string providerName() const;
};

// The commented example written to a fresh $CHITIN_HOME/chitin.conf.
extern const char EXAMPLE_CONFIG[];

// Parses `text` (named `path` in errors) and fills defaults. Throws ConfigError.
config::ChitinConfig parseConfig(const std::string& text, const std::string& path);

// Reads `path`; when it does not exist writes EXAMPLE_CONFIG there (mode 0600) first.
config::ChitinConfig loadConfigFile(const std::string& path);

// Resolves the model settings: config first, then CHITIN_MODEL_PROVIDER, CHITIN_MODEL_BASE_URL,
// CHITIN_MODEL, CHITIN_MODEL_API_KEY / CHITIN_MODEL_API_KEY_FILE override it. `readFile` reads
// key files (throws std::exception on error). Throws ConfigError on bad values.
ModelSettings resolveModelSettings(const config::ChitinConfig& config, const EnvLookup& env,
                                   const std::function<std::string(const std::string&)>& readFile);

// The chat platforms a channel account may be (channels.account.kind); supervisor/channels
// knows each one's hosts and defaults.
const std::vector<std::string>& channelKinds();

// Is `name` 1..maxLength of a-z 0-9 _ - (channel account names)?
bool plainName(const std::string& name, size_t maxLength);

// channels.max_attachment_bytes at most: attachments travel inside one Cap'n Proto message.
constexpr uint64_t MAX_CHANNEL_ATTACHMENT_BYTES = 32u << 20;

// What every reply says while no model is configured.
extern const char NO_MODEL_MESSAGE[];

}  // namespace chitin
