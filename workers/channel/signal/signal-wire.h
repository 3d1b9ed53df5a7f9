// SPDX-License-Identifier: Apache-2.0
// signal-cli's JSON (signal-cli-jsonrpc(5)) to and from chitin's channel messages: receive
// envelopes in, JSON-RPC parameters out.
// Runs in: worker (sandboxed)
//
// Pure translation, no I/O, so every rule is unit-tested on hostile input. The envelope comes
// from the user's own signal-cli daemon, but its contents come from whoever can message the
// account: every field is checked for type and size where it is read.
//
// Identities: a sender is its ACI (the UUID signal-cli calls `sourceUuid`): stable for the
// life of the Signal account, present even when the sender hides their number (phone number
// privacy), unchanged by a number change. The number is used only when no ACI was given. A
// direct chat's id is that sender id; a group's is "group:" + the base64 group id. A message's
// id is "<author>:<sender timestamp>", the pair Signal itself uses to name a message (quotes,
// reactions, deletes); the timestamp alone is not unique across senders.

#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform.h"

namespace chitin::channel {

bool isSignalNumber(std::string_view s);  // "+" and 1-19 digits
bool isSignalUuid(std::string_view s);    // 8-4-4-4-12 hex digits

struct SignalSelf {
  std::string number;  // the account's number, "+15551234567"
  std::string uuid;    // its ACI, if the owner gave it ("" = unknown)
  // Names that address the assistant in a group when written in the text ("chitin"): matched
  // case-insensitively as whole words, with or without a leading '@'.
  std::vector<std::string> mentionNames;
};

struct SignalAttachmentRef {  // an inbound attachment still on the daemon
  std::string id;
  std::string name;
  std::string mimeType;
  uint64_t size = 0;
};

struct SignalReceived {
  Inbound message;  // attachments still empty: the caller fetches them (getAttachment)
  std::vector<SignalAttachmentRef> attachments;
  std::string groupId;        // base64, "" for a direct message
  std::string senderAddress;  // what getAttachment's `recipient` takes for a direct message
};

// One `receive` event's data ({"envelope": ..., "account": ...}). nullopt for everything that
// is not a message to answer: sync messages (our own other devices), typing, receipts, calls,
// stories, edits, reactions, remote deletes, group updates without text, messages from
// ourselves (`why` empty), and anything malformed (`why` says what, for the log).
std::optional<SignalReceived> parseReceiveEvent(std::string_view data, const SignalSelf& self,
                                                std::string& why);

// "recipient" or "groupId" for a chat id (see above). Throws ChannelError for a chat id that
// is neither a number, a UUID nor "group:<base64 of 32 bytes>".
nlohmann::json signalTarget(const std::string& chatId);

std::string signalMessageId(const std::string& author, int64_t timestamp);
// Splits "<author>:<timestamp>"; false (and outputs untouched) when it does not parse.
bool parseSignalMessageId(const std::string& id, std::string& author, int64_t& timestamp);

// An attachment as signal-cli takes it over JSON-RPC: an RFC 2397 data URI,
// "data:<type>;filename=<percent-encoded name>;base64,<data>". (A path would name a file on
// the daemon's disk, which this worker does not share.)
std::string signalDataUri(const Attachment& attachment);

// getAttachment's `data`; nullopt when it is not base64.
std::optional<std::string> signalBase64Decode(std::string_view base64);

// The text of a JSON-RPC error for people: "signal-cli send: <message> (code <n>)", and the
// wait signal-cli asks for on a rate limit (the largest retryAfterSeconds among the send
// results in error.data.response), 0 when none.
std::string signalRpcError(std::string_view method, const nlohmann::json& error);
int64_t signalRetryAfterSeconds(const nlohmann::json& error);

}  // namespace chitin::channel
