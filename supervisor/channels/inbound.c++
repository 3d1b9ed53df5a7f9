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

std::string utf8(capnp::Text::Reader text) {
  return sanitizeUtf8(kj::ArrayPtr<const char>(text.begin(), text.size())).cStr();
}

}  // namespace

std::string copyInbound(rpc::InboundMessage::Reader m, const InboundLimits& limits, Inbound& out) {
  if (!plainId(m.getChatId(), true)) return "chatId: expected 1-256 printable ASCII characters";
  if (!plainId(m.getSenderId(), true)) return "senderId: expected 1-256 printable ASCII characters";
  if (!plainId(m.getMessageId(), true))
    return "messageId: expected 1-256 printable ASCII characters";
  if (!plainId(m.getReplyTo(), false)) return "replyTo: expected at most 256 printable ASCII";
  if (!plainId(m.getThreadId(), false)) return "threadId: expected at most 256 printable ASCII";
  if (m.getSenderName().size() > InboundLimits::MAX_NAME_BYTES)
    return "senderName: longer than 256 bytes";
  if (m.getText().size() > InboundLimits::MAX_TEXT_BYTES) return "text: longer than 64 KiB";
  rpc::ChatType type = m.getChatType();
  if (type != rpc::ChatType::DIRECT && type != rpc::ChatType::GROUP)
    return "chatType: not direct or group";
  auto files = m.getAttachments();
  if (files.size() > InboundLimits::MAX_ATTACHMENTS) return "attachments: more than 16";
  for (auto f : files) {
    if (f.getName().size() > InboundLimits::MAX_ATTACHMENT_NAME_BYTES)
      return "attachment name: longer than 1024 bytes";
    if (f.getMimeType().size() > InboundLimits::MAX_MIME_BYTES)
      return "attachment mimeType: longer than 256 bytes";
    // The worker was told the limit (ChannelSettings.maxAttachmentBytes) and must not send
    // more: it checks the platform's stated size before downloading.
    if (f.getData().size() > limits.maxAttachmentBytes)
      return "attachment data: larger than channels.max_attachment_bytes";
  }

  out.chatId = m.getChatId();
  out.group = type == rpc::ChatType::GROUP;
  out.senderId = m.getSenderId();
  out.senderName = utf8(m.getSenderName());
  out.messageId = m.getMessageId();
  out.text = utf8(m.getText());
  out.replyTo = m.getReplyTo();
  out.threadId = m.getThreadId();
  out.mentioned = m.getMentioned();
  out.timestampMs = m.getTimestampMs();
  out.attachments.clear();
  for (auto f : files) {
    InboundFile file;
    file.name = utf8(f.getName());
    file.mimeType = utf8(f.getMimeType());
    file.data.assign(reinterpret_cast<const char*>(f.getData().begin()), f.getData().size());
    file.size = f.getSize();
    out.attachments.push_back(std::move(file));
  }
  return "";
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
