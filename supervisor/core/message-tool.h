// SPDX-License-Identifier: Apache-2.0
// The `message` tool: the agent sends text and workspace files to a chat, through the channel
// worker of that chat's platform.
// Runs in: supervisor
//
// OpenClaw's name and arguments: {action: "send", to: "<channel>:<chatId>", text, media?}. The
// guard decides it as Action::"message_send" on Recipient::"<channel>:<chatId>" (the exact
// recipient and text are in the ask and the audit record, like every call's arguments), so it
// only gets here once the policy (and, where it asks, the owner) allowed exactly this message.
// It runs in the supervisor, not in a sandbox: it starts no program and parses nothing, it
// reads the named files beneath the workspace (openat2, RESOLVE_BENEATH: a symlink cannot lead
// out) and hands bytes to the channel worker, which alone holds the platform credential.

#pragma once

#include <kj/async.h>

#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "tool-runner.h"

namespace chitin {

struct OutgoingFile {
  std::string name;  // the file's base name
  std::string mimeType;
  std::string data;
};

struct OutgoingMessage {
  std::string channel;  // a channel kind: "telegram", "irc", ...
  std::string chatId;
  std::string text;  // Markdown
  std::vector<OutgoingFile> files;
};

// Who can deliver a message to a chat: the channel host. Rejects (kj::Exception, description
// for people) when no running account of that channel exists or the platform refused.
class ChannelSender {
 public:
  virtual ~ChannelSender() noexcept(false) = default;
  virtual kj::Promise<std::vector<std::string>> sendMessage(OutgoingMessage message) = 0;
};

// Limits on what one call may send.
constexpr size_t MAX_MESSAGE_TEXT_BYTES = 64 << 10;
constexpr size_t MAX_MESSAGE_FILES = 10;
constexpr size_t MAX_MESSAGE_FILE_BYTES = 20 << 20;
constexpr size_t MAX_MESSAGE_TOTAL_BYTES = 50 << 20;

// "telegram:12345" -> channel "telegram", chatId "12345". "" when valid, else the reason. A
// channel is [a-z0-9_-]{1,32}; a chat id 1-256 bytes of printable ASCII or UTF-8, no spaces
// at either end, no control characters.
std::string parseRecipient(const std::string& to, std::string& channel, std::string& chatId);

// `to` in the form the platform's sender ids take, so that a person and their direct chat are
// one entity to the policy (Recipient::"whatsapp:15551234567" is Sender::"whatsapp:15551234567"'s
// chat): WhatsApp "+15551234567" and "15551234567@s.whatsapp.net" -> "15551234567". Other
// channels' ids already are that form (Telegram, Signal, Discord user ids) or have none (an IRC
// nick is not an identity: see policies/README.md). A `to` that does not parse is returned as is.
std::string canonicalRecipient(const std::string& to);

// Checks a `message` call's parsed arguments; "" when valid, else a message for the model
// naming the argument and what was expected.
std::string checkMessageArguments(const nlohmann::json& args);

// The model's tool executor with `message` handled here and every other tool passed on.
class MessageTool final : public ToolDecorator {
 public:
  // `sender` may be null: no channel is configured, and a message says so.
  MessageTool(ToolExecutor& inner, ChannelSender* sender) : ToolDecorator(inner), sender_(sender) {}

  void setSender(ChannelSender* sender) { sender_ = sender; }

  kj::Promise<ToolOutcome> run(const std::string& tool, const std::string& argumentsJson,
                               const std::string& workspaceDir,
                               const std::vector<std::string>& hiddenDirs,
                               CallScope* scope = nullptr) override;

 private:
  ChannelSender* sender_;
};

// The files named by `media` (workspace-relative), read beneath `workspaceDir`. "" when all
// were read, else why not (naming the path).
std::string readMessageFiles(const std::string& workspaceDir, const std::vector<std::string>& media,
                             std::vector<OutgoingFile>& out);

}  // namespace chitin
