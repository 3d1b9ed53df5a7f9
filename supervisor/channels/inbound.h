// SPDX-License-Identifier: Apache-2.0
// An inbound channel message, checked once where it enters the supervisor: every id, text and
// attachment bounded, then copied out of the worker's Cap'n Proto message.
// Runs in: supervisor
//
// A channel worker parses internet content and may be compromised, so what it delivers is
// attacker-controlled. A message that breaks these bounds is a protocol violation: the caller
// kills the worker (it is restarted) instead of answering. The bounds are generous for every
// supported platform; the worker is expected to cut long texts itself.

#pragma once

#include <capnp/message.h>

#include <cstdint>
#include <string>
#include <vector>

#include "channel.capnp.h"

namespace chitin::channels {

struct InboundLimits {
  static constexpr size_t MAX_ID_BYTES = 256;  // chat, sender, message, reply and thread ids
  static constexpr size_t MAX_NAME_BYTES = rpc::MAX_INBOUND_NAME_BYTES;    // 256
  static constexpr size_t MAX_TEXT_BYTES = rpc::MAX_INBOUND_TEXT_BYTES;    // 64 KiB
  static constexpr size_t MAX_ATTACHMENTS = rpc::MAX_INBOUND_ATTACHMENTS;  // 16
  static constexpr size_t MAX_ATTACHMENT_NAME_BYTES = 1024;
  static constexpr size_t MAX_MIME_BYTES = 256;
  // All data of one message's attachments (the contract's maxInboundAttachmentBytes, 63 MiB):
  // what sizes the channel connection's traversal limit (channelReaderOptions).
  static constexpr uint64_t MAX_TOTAL_ATTACHMENT_BYTES = rpc::MAX_INBOUND_ATTACHMENT_BYTES;
  uint64_t maxAttachmentBytes = 20u << 20;  // channels.max_attachment_bytes, per file
};

// How the supervisor reads every message on a channel worker's connection: a traversal limit
// that admits the biggest InboundSink.message within InboundLimits (all ids, name and text at
// their maximum, 16 attachments with 63 MiB of data) plus the RPC envelope, and little more; a
// nesting limit of 16 (the deepest legitimate path is 7 pointers). A message past them fails the
// connection (WorkerConnection reports it and the worker is killed as a protocol breaker).
capnp::ReaderOptions channelReaderOptions();

struct InboundFile {
  std::string name;  // as the platform gave it (valid UTF-8); sanitized when saved
  std::string mimeType;
  std::string data;   // empty when the platform's file was over the limit
  uint64_t size = 0;  // the platform's stated size
};

struct Inbound {
  std::string chatId;
  bool group = false;
  std::string senderId;
  std::string senderName;  // valid UTF-8
  std::string messageId;
  std::string text;  // valid UTF-8 (malformed bytes became U+FFFD)
  std::string replyTo;
  std::string threadId;
  bool mentioned = false;
  std::vector<InboundFile> attachments;
  int64_t timestampMs = 0;
};

// Copies `message` into `out`. Returns "" when it keeps the bounds, else what it broke (for the
// log and the kill reason; never echoes the offending bytes); a message capnp refuses to read
// (a pointer of the wrong kind, text without its NUL, past the traversal limit) is such a
// refusal too, never an exception. Text fields are made valid UTF-8 and then cut to their bound
// (U+FFFD for a malformed byte takes three). Reads each field once (see channelReaderOptions).
std::string copyInbound(rpc::InboundMessage::Reader message, const InboundLimits& limits,
                        Inbound& out);

// A platform id as the agent core's sender and group ids must be ([A-Za-z0-9_.@+:-]{1,128}),
// one-to-one: A-Z a-z 0-9 . @ + : - stay, every other byte becomes "_XX" (hex); an id whose
// spelling would be longer than 128 becomes "_Z" + the SHA-256 of the id (hex). So IRC's
// "#chitin" is "_23chitin", and no two ids share a session or a principal.
std::string sessionSafeId(const std::string& id);

}  // namespace chitin::channels
