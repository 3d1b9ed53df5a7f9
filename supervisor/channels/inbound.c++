// SPDX-License-Identifier: Apache-2.0
// Bounds and copy of an inbound channel message (see inbound.h).
// Runs in: supervisor

#include "inbound.h"

#include "audit-log.h"
#include "utf8.h"

namespace chitin::channels {

namespace {

// Printable ASCII without space: every platform's ids fit (numbers, "#chan", "<id@host>",
// "123@s.whatsapp.net", base64 group ids), and none can smuggle a line break into a log, the
// seen store or an audit record.
bool plainId(capnp::Text::Reader id, bool required) {
  if (id.size() == 0) return !required;
  if (id.size() > InboundLimits::MAX_ID_BYTES) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

// `text` as valid UTF-8 within `limit` bytes: a malformed byte becomes U+FFFD (three bytes), so
// a text that kept its bound as bytes may pass it once made valid; it is cut at a character.
std::string utf8(capnp::Text::Reader text, size_t limit) {
  std::string s = sanitizeUtf8(kj::ArrayPtr<const char>(text.begin(), text.size())).cStr();
  if (s.size() > limit)
    s.resize(utf8BoundaryAtOrBefore(kj::ArrayPtr<const char>(s.data(), s.size()), limit));
  return s;
}

// Each field read once: every read counts against the connection's traversal limit
// (channelReaderOptions), which leaves no room for reading 63 MiB of attachments twice.
struct FileFields {
  capnp::Text::Reader name, mimeType;
  capnp::Data::Reader data;
  uint64_t size;
};

std::string copyChecked(rpc::InboundMessage::Reader m, const InboundLimits& limits, Inbound& out) {
  auto chatId = m.getChatId(), senderId = m.getSenderId(), messageId = m.getMessageId();
  auto replyTo = m.getReplyTo(), threadId = m.getThreadId();
  auto senderName = m.getSenderName(), text = m.getText();
  if (!plainId(chatId, true)) return "chatId: expected 1-256 printable ASCII characters";
  if (!plainId(senderId, true)) return "senderId: expected 1-256 printable ASCII characters";
  if (!plainId(messageId, true)) return "messageId: expected 1-256 printable ASCII characters";
  if (!plainId(replyTo, false)) return "replyTo: expected at most 256 printable ASCII";
  if (!plainId(threadId, false)) return "threadId: expected at most 256 printable ASCII";
  if (senderName.size() > InboundLimits::MAX_NAME_BYTES) return "senderName: longer than 256 bytes";
  if (text.size() > InboundLimits::MAX_TEXT_BYTES) return "text: longer than 64 KiB";
  rpc::ChatType type = m.getChatType();
  if (type != rpc::ChatType::DIRECT && type != rpc::ChatType::GROUP)
    return "chatType: not direct or group";
  auto list = m.getAttachments();
  if (list.size() > InboundLimits::MAX_ATTACHMENTS) return "attachments: more than 16";
  std::vector<FileFields> files;
  uint64_t total = 0;
  for (auto f : list) {
    files.push_back({f.getName(), f.getMimeType(), f.getData(), f.getSize()});
    const FileFields& file = files.back();
    if (file.name.size() > InboundLimits::MAX_ATTACHMENT_NAME_BYTES)
      return "attachment name: longer than 1024 bytes";
    if (file.mimeType.size() > InboundLimits::MAX_MIME_BYTES)
      return "attachment mimeType: longer than 256 bytes";
    // The worker was told the limit (ChannelSettings.maxAttachmentBytes) and must not send
    // more: it checks the platform's stated size before downloading.
    if (file.data.size() > limits.maxAttachmentBytes)
      return "attachment data: larger than channels.max_attachment_bytes";
    total += file.data.size();
    if (total > InboundLimits::MAX_TOTAL_ATTACHMENT_BYTES)
      return "attachments: more than 63 MiB of data in one message";
  }

  out.chatId = chatId;
  out.group = type == rpc::ChatType::GROUP;
  out.senderId = senderId;
  out.senderName = utf8(senderName, InboundLimits::MAX_NAME_BYTES);
  out.messageId = messageId;
  out.text = utf8(text, InboundLimits::MAX_TEXT_BYTES);
  out.replyTo = replyTo;
  out.threadId = threadId;
  out.mentioned = m.getMentioned();
  out.timestampMs = m.getTimestampMs();
  out.attachments.clear();
  for (const auto& f : files) {
    InboundFile file;
    file.name = utf8(f.name, InboundLimits::MAX_ATTACHMENT_NAME_BYTES);
    file.mimeType = utf8(f.mimeType, InboundLimits::MAX_MIME_BYTES);
    file.data.assign(reinterpret_cast<const char*>(f.data.begin()), f.data.size());
    file.size = f.size;
    out.attachments.push_back(std::move(file));
  }
  return "";
}

}  // namespace

std::string copyInbound(rpc::InboundMessage::Reader m, const InboundLimits& limits, Inbound& out) {
  try {
    return copyChecked(m, limits, out);
  } catch (const kj::Exception& e) {
    // A pointer of the wrong kind, text without its NUL, past the traversal or nesting limit:
    // capnp's own description, which names the fault and never the bytes.
    return "not a readable InboundMessage: " + clipUtf8(e.getDescription().cStr(), 200);
  }
}

capnp::ReaderOptions channelReaderOptions() {
  // A Text of n bytes takes its NUL too, rounded up to words.
  auto textWords = [](uint64_t bytes) { return (bytes + 1 + 7) / 8; };
  using L = InboundLimits;
  // The RPC Message, Call, Payload, MessageParams and InboundMessage structs with their pointers,
  // and the few small re-reads the RPC layer makes of them: measured well under 100 words.
  constexpr uint64_t ENVELOPE_WORDS = 1024;
  constexpr uint64_t ATTACHMENT_STRUCT_WORDS = 1 + 3;  // `size`, then name, mimeType, data
  uint64_t words =
      ENVELOPE_WORDS + 5 * textWords(L::MAX_ID_BYTES) + textWords(L::MAX_NAME_BYTES) +
      textWords(L::MAX_TEXT_BYTES) + 1 +
      L::MAX_ATTACHMENTS * (ATTACHMENT_STRUCT_WORDS + textWords(L::MAX_ATTACHMENT_NAME_BYTES) +
                            textWords(L::MAX_MIME_BYTES) + 1) +
      L::MAX_TOTAL_ATTACHMENT_BYTES / 8;
  capnp::ReaderOptions options;
  options.traversalLimitInWords = words;
  options.nestingLimit = 16;
  return options;
}

std::string sessionSafeId(const std::string& id) {
  static const char HEX[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : id) {
    if (isalnum(c) || c == '.' || c == '@' || c == '+' || c == '-' || c == ':') {
      out += static_cast<char>(c);
    } else {
      out += '_';
      out += HEX[c >> 4];
      out += HEX[c & 15];
    }
  }
  if (!out.empty() && out.size() <= 128) return out;
  // "_Z" is never produced by the escapes above ('Z' is not a hex digit).
  return "_Z" + audit::sha256Hex(id);
}

}  // namespace chitin::channels
