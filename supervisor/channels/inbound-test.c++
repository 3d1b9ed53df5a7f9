// SPDX-License-Identifier: Apache-2.0
// Tests for the bounds of an inbound channel message and the ids it maps to.
// Runs in: test

#include "inbound.h"

#include <capnp/any.h>
#include <capnp/message.h>
#include <doctest/doctest.h>

#include <regex>
#include <set>

namespace chitin::channels {
namespace {

struct Message {
  capnp::MallocMessageBuilder builder;
  rpc::InboundMessage::Builder m = builder.initRoot<rpc::InboundMessage>();
  Message() {
    m.setChatId("42");
    m.setSenderId("42");
    m.setMessageId("7");
    m.setText("hi");
  }
  std::string problem(uint64_t maxAttachment = 1000) {
    Inbound out;
    InboundLimits limits;
    limits.maxAttachmentBytes = maxAttachment;
    return copyInbound(m.asReader(), limits, out);
  }
};

TEST_CASE("inbound: a plain message is copied whole") {
  Message msg;
  msg.m.setChatType(rpc::ChatType::GROUP);
  msg.m.setMentioned(true);
  msg.m.setThreadId("1700000000.000100");
  msg.m.setText("caf\xc3\xa9 \xff");
  auto files = msg.m.initAttachments(1);
  files[0].setName("a.txt");
  files[0].setData(kj::StringPtr("abc").asBytes());
  files[0].setSize(3);
  Inbound in;
  REQUIRE(copyInbound(msg.m.asReader(), InboundLimits{}, in) == "");
  CHECK(in.group);
  CHECK(in.mentioned);
  CHECK(in.text == "caf\xc3\xa9 \xef\xbf\xbd");  // the stray byte became U+FFFD
  CHECK(in.threadId == "1700000000.000100");
  REQUIRE(in.attachments.size() == 1);
  CHECK(in.attachments[0].data == "abc");
}

TEST_CASE("inbound: ids must be 1-256 printable ASCII without spaces") {
  for (std::string bad : {std::string(""), std::string("a b"), std::string("a\nb"),
                          std::string(257, 'x'), std::string("caf\xc3\xa9")}) {
    CAPTURE(bad);
    Message a;
    a.m.setChatId(bad);
    CHECK(a.problem().find("chatId") == 0);
    Message b;
    b.m.setSenderId(bad);
    CHECK(b.problem().find("senderId") == 0);
    Message c;
    c.m.setMessageId(bad);
    CHECK(c.problem().find("messageId") == 0);
  }
  Message ok;
  ok.m.setChatId("#chitin");
  ok.m.setMessageId("<CAF00@mail.example.org>");
  ok.m.setSenderId("4915112345678@s.whatsapp.net");
  ok.m.setReplyTo("");
  CHECK(ok.problem() == "");
  ok.m.setReplyTo("a b");
  CHECK(ok.problem().find("replyTo") == 0);
}

TEST_CASE("inbound: text, names and attachments are bounded") {
  Message text;
  text.m.setText(std::string(64 << 10, 'a'));
  CHECK(text.problem() == "");
  text.m.setText(std::string((64 << 10) + 1, 'a'));
  CHECK(text.problem() == "text: longer than 64 KiB");

  Message name;
  name.m.setSenderName(std::string(257, 'n'));
  CHECK(name.problem() == "senderName: longer than 256 bytes");

  Message many;
  many.m.initAttachments(17);
  CHECK(many.problem() == "attachments: more than 16");

  Message big;
  auto files = big.m.initAttachments(1);
  std::string data(1001, 'x');
  files[0].setData(kj::ArrayPtr<const capnp::byte>(
      reinterpret_cast<const capnp::byte*>(data.data()), data.size()));
  CHECK(big.problem(1000) == "attachment data: larger than channels.max_attachment_bytes");
  CHECK(big.problem(1001) == "");
}

TEST_CASE("inbound: text made valid UTF-8 still keeps its bound") {
  // 200 stray bytes keep the 256-byte bound, their 200 U+FFFD (600 bytes) would not.
  Message msg;
  msg.m.setSenderName(std::string(200, '\xff'));
  msg.m.setText(std::string(30000, '\xfe'));
  auto files = msg.m.initAttachments(1);
  files[0].setName(std::string(1000, '\x80'));
  files[0].setMimeType(std::string(256, '\xc3'));
  Inbound in;
  REQUIRE(copyInbound(msg.m.asReader(), InboundLimits{}, in) == "");
  CHECK(in.senderName.size() == 255);  // 85 whole characters
  CHECK(in.text.size() == InboundLimits::MAX_TEXT_BYTES - 1);
  CHECK(in.attachments[0].name.size() == 1023);
  CHECK(in.attachments[0].mimeType.size() == 255);
}

TEST_CASE("inbound: a message capnp cannot read is a refusal, not an exception") {
  // A struct where the text is: what a hostile worker can put on the wire.
  capnp::MallocMessageBuilder wrong;
  auto m = wrong.initRoot<rpc::InboundMessage>();
  m.setSenderId("1");
  m.setMessageId("2");
  capnp::AnyStruct::Builder any = wrong.getRoot<capnp::AnyStruct>();
  any.getPointerSection()[0].initAsAnyStruct(1, 0);  // chatId: a struct, not text
  Inbound in;
  std::string problem;
  CHECK_NOTHROW(
      problem = copyInbound(wrong.getRoot<rpc::InboundMessage>().asReader(), InboundLimits{}, in));
  CHECK(problem.find("not a readable InboundMessage: ") == 0);
}

TEST_CASE("inbound: at most 63 MiB of attachment data in one message") {
  Message msg;
  auto files = msg.m.initAttachments(4);
  std::string data(21 << 20, 'x');
  auto bytes = kj::ArrayPtr<const capnp::byte>(reinterpret_cast<const capnp::byte*>(data.data()),
                                               data.size());
  for (int i = 0; i < 3; ++i) files[i].setData(bytes);
  CHECK(msg.problem(32 << 20) == "");  // exactly 63 MiB
  files[3].setData(kj::StringPtr("y").asBytes());
  CHECK(msg.problem(32 << 20) == "attachments: more than 63 MiB of data in one message");
}

TEST_CASE("session-safe ids: one-to-one, in the agent core's character set") {
  std::regex core("[A-Za-z0-9_.@+:-]{1,128}");
  CHECK(sessionSafeId("123456") == "123456");
  CHECK(sessionSafeId("-1001234") == "-1001234");
  CHECK(sessionSafeId("alice@example.org") == "alice@example.org");
  CHECK(sessionSafeId("+4915112345678") == "+4915112345678");
  CHECK(sessionSafeId("#chitin") == "_23chitin");
  CHECK(sessionSafeId("account:alice") == "account:alice");  // as IRC and Signal qualify ids
  CHECK(sessionSafeId("group:aGVsbG8=") == "group:aGVsbG8_3D");
  CHECK(sessionSafeId("nick[m]") == "nick_5Bm_5D");
  CHECK(sessionSafeId("a_b") == "a_5Fb");  // '_' is escaped too, so "_23" cannot be forged
  std::set<std::string> seen;
  for (std::string id :
       std::vector<std::string>{"#a", "_23a", "_5F23a", std::string(200, 'x'),
                                std::string(201, 'x'), std::string(100, '#'), "A", "a"}) {
    std::string safe = sessionSafeId(id);
    CAPTURE(id);
    CHECK(std::regex_match(safe, core));
    CHECK(seen.insert(safe).second);
  }
  CHECK(sessionSafeId(std::string(200, 'x')).rfind("_Z", 0) == 0);
}

}  // namespace
}  // namespace chitin::channels
