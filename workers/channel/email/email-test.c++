// SPDX-License-Identifier: Apache-2.0
// Unit tests of the email channel's parsers and composer: transfer encodings, RFC 2047/2231,
// charsets, HTML to text, MIME structure with its limits, addresses, dates, Authentication-
// Results, the outgoing message, and the IMAP response tokenizer.
// Runs in: tests
//
// The live behaviour (IMAP IDLE, SMTP, restart without loss) runs against Dovecot and aiosmtpd
// in tests/channels/test_email.py, whose Python peer also parses what we compose.

#include <doctest/doctest.h>

#include "email-platform.h"
#include "imap.h"
#include "mime-compose.h"
#include "mime-decode.h"
#include "mime.h"

namespace chitin::channel::email {
namespace {

TEST_CASE("email: base64 and quoted-printable decode, tolerating line breaks and junk") {
  CHECK(decodeBase64("aGVs\r\nbG8g d29y\nbGQ=") == "hello world");
  CHECK(decodeBase64("aGk=junk") == "hi");
  CHECK(encodeBase64("hello world") == "aGVsbG8gd29ybGQ=");
  CHECK(encodeBase64(std::string(100, 'x'), 76).find("\r\n") == 76);
  CHECK(decodeQuotedPrintable("caf=C3=A9 =\r\nau lait=3D=\nok") == "caf\xc3\xa9 au lait=ok");
  CHECK(decodeQuotedPrintable("a=ZZb=") == "a=ZZb");
  CHECK(decodeQuotedPrintable("a_b=5F", true) == "a b_");
}

TEST_CASE("email: RFC 2047 words decode, adjacent ones join, bad ones stay") {
  Charsets cs;
  CHECK(decodeHeaderWords("=?UTF-8?B?w6ljb2xl?= =?ISO-8859-1?Q?=E9t=E9?= suite", cs) ==
        "\xc3\xa9"
        "cole\xc3\xa9t\xc3\xa9 suite");
  CHECK(decodeHeaderWords("Re: =?utf-8?q?caf=C3=A9?=", cs) == "Re: caf\xc3\xa9");
  CHECK(decodeHeaderWords("=?bogus?X?abc?= plain", cs) == "=?bogus?X?abc?= plain");
  CHECK(decodeHeaderWords("caf\xe9", cs) == "caf\xc3\xa9");            // raw Latin-1 in a header
  CHECK(decodeHeaderWords("=?iso-8859-2?Q?=B1?=", cs) == "\xc4\x85");  // through iconv
}

TEST_CASE("email: RFC 2047 encoding round-trips and keeps words short") {
  Charsets cs;
  std::string subject = "R\xc3\xa9ponse \xe2\x82\xac " + std::string(80, 'x') + " \xf0\x9f\x98\x80";
  std::string encoded = encodeHeaderWords(subject);
  for (size_t start = 0; start < encoded.size();) {
    size_t end = encoded.find("\r\n ", start);
    std::string word =
        encoded.substr(start, end == std::string::npos ? std::string::npos : end - start);
    CHECK(word.size() <= 75);
    start = end == std::string::npos ? encoded.size() : end + 3;
  }
  CHECK(decodeHeaderWords(encoded, cs) == subject);
  CHECK(encodeHeaderWords("plain ascii") == "plain ascii");
}

TEST_CASE("email: charsets convert to UTF-8, unknown or broken bytes become replacements") {
  Charsets cs;
  CHECK(cs.toUtf8("\x80 \xe9", "windows-1252") == "\xe2\x82\xac \xc3\xa9");
  CHECK(cs.toUtf8("\xe9", "\"ISO-8859-1\"") == "\xc3\xa9");
  CHECK(cs.toUtf8("\xd0\xd2\xc9", "koi8-r") == "\xd0\xbf\xd1\x80\xd0\xb8");
  CHECK(cs.toUtf8("ok", "x-no-such-charset") == "ok");
  CHECK(cs.toUtf8("\x82\xa0\xff", "shift_jis").find("\xef\xbf\xbd") != std::string::npos);
  CHECK(utf8OrLatin1("\xc3\xa9") == "\xc3\xa9");
  CHECK(utf8OrLatin1("\xc3") == "\xc3\x83");
}

TEST_CASE("email: HTML becomes readable text") {
  std::string html =
      "<html><head><title>t</title><style>p{color:red}</style></head><body>"
      "<p>Hello&nbsp;<b>world</b> &amp; friends</p><script>alert(1)</script>"
      "<ul><li>one</li><li>two</li></ul><a href=\"https://example.org/x\">the link</a>"
      "<br>end &#8364; &#x263A;<!-- hidden --></body></html>";
  CHECK(htmlToText(html) ==
        "Hello world & friends\n\n- one\n- two\nthe link (https://example.org/x)\nend \xe2\x82\xac "
        "\xe2\x98\xba");
  CHECK(htmlToText("<SCRIPT>x</SCRIPT>ok") == "ok");
}

const char* SIMPLE =
    "Return-Path: <alice@example.org>\r\n"
    "From: =?utf-8?q?Alice_M=C3=BCller?= <Alice@Example.ORG>\r\n"
    "To: bot@test.local\r\n"
    "Subject: =?utf-8?B?SGVsbG8g4oKs?=\r\n"
    "Message-ID: <m2@example.org>\r\n"
    "In-Reply-To: <m1@test.local>\r\n"
    "References: <root@example.org>\r\n <m1@test.local>\r\n"
    "Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--outer\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=E9 tonight?\r\n"
    "--inner\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<p>HTML version</p>\r\n"
    "--inner--\r\n"
    "--outer\r\n"
    "Content-Type: application/pdf; name=\"x.pdf\"\r\n"
    "Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "JVBERi0xLjQK\r\n"
    "--outer--\r\n"
    "epilogue\r\n";

TEST_CASE("email: a multipart message gives sender, thread, text and attachment") {
  Charsets cs;
  ParsedMail m = parseMail(SIMPLE, MimeLimits{}, cs);
  CHECK(m.from.address == "alice@example.org");
  CHECK(m.from.name == "Alice M\xc3\xbcller");
  CHECK(m.subject == "Hello \xe2\x82\xac");
  CHECK(m.messageId == "m2@example.org");
  CHECK(m.inReplyTo == "m1@test.local");
  CHECK(m.references == std::vector<std::string>{"root@example.org", "m1@test.local"});
  CHECK(m.dateMs == 1057049557000);
  CHECK(m.text == "Caf\xc3\xa9 tonight?");  // the plain part, not the HTML one
  REQUIRE(m.attachments.size() == 1);
  CHECK(m.attachments[0].name == "r\xc3\xa9sum\xc3\xa9.pdf");
  CHECK(m.attachments[0].mimeType == "application/pdf");
  CHECK(m.attachments[0].data == "%PDF-1.4\n");
  CHECK(m.attachments[0].size == 9);
}

TEST_CASE("email: limits hold: attachment cap, text cap, part count, nesting depth") {
  Charsets cs;
  MimeLimits small;
  small.maxAttachmentBytes = 4;
  small.maxTextBytes = 5;
  ParsedMail m = parseMail(SIMPLE, small, cs);
  REQUIRE(m.attachments.size() == 1);
  CHECK(m.attachments[0].data.empty());
  CHECK(m.attachments[0].size == 9);
  CHECK(m.text.rfind("Caf", 0) == 0);
  CHECK(m.text.find("cut at 5 bytes") != std::string::npos);

  std::string nested = "Content-Type: multipart/mixed; boundary=b0\r\n\r\n";
  for (int i = 1; i < 40; ++i) {
    nested += "--b" + std::to_string(i - 1) + "\r\nContent-Type: multipart/mixed; boundary=b" +
              std::to_string(i) + "\r\n\r\n";
  }
  ParsedMail deep = parseMail(nested, MimeLimits{}, cs);
  CHECK(deep.partsDropped);

  std::string files = "Content-Type: multipart/mixed; boundary=f\r\n\r\n";
  for (int i = 0; i < 20; ++i)
    files += "--f\r\nContent-Type: image/png; name=" + std::string(2000, 'n') + "\r\n\r\nx\r\n";
  ParsedMail twenty = parseMail(files + "--f--\r\n", MimeLimits{}, cs);
  CHECK(twenty.attachments.size() == 16);
  CHECK(twenty.attachmentsDropped == 4);
  CHECK(twenty.attachments[0].name.size() == 255);

  std::string wide = "Content-Type: multipart/mixed; boundary=w\r\n\r\n";
  for (int i = 0; i < 300; ++i) wide += "--w\r\nContent-Type: text/plain\r\n\r\npart\r\n";
  wide += "--w--\r\n";
  ParsedMail many = parseMail(wide, MimeLimits{}, cs);
  CHECK(many.partsDropped);
}

TEST_CASE("email: an HTML-only message is reduced to text; a bare message is text") {
  Charsets cs;
  ParsedMail html = parseMail(
      "From: a@b.c\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<div>Hi <i>there</i></div>",
      MimeLimits{}, cs);
  CHECK(html.text == "Hi there");
  ParsedMail bare = parseMail("From: a@b.c\nSubject: x\n\nline one\nline two\n", MimeLimits{}, cs);
  CHECK(bare.text == "line one\nline two");
  CHECK(bare.attachments.empty());
}

TEST_CASE("email: From in its many forms gives one lower-cased address") {
  Charsets cs;
  CHECK(parseAddress("\"Doe, John\" <John.Doe@Example.com>", cs).address == "john.doe@example.com");
  CHECK(parseAddress("\"Doe, John\" <John.Doe@Example.com>", cs).name == "Doe, John");
  CHECK(parseAddress("bob@example.com (Bob)", cs).address == "bob@example.com");
  CHECK(parseAddress("<x@y.z>, <other@y.z>", cs).address == "x@y.z");
  CHECK(parseAddress("\"<evil@x.y>\" <real@x.y>", cs).address == "real@x.y");
  CHECK(parseAddress("nobody", cs).address.empty());
  CHECK(parseAddress("<a b@c.d>", cs).address.empty());
  CHECK(validAddress("a@b.c"));
  CHECK_FALSE(validAddress("a@b.c\r\nBcc: x@y.z"));
  CHECK_FALSE(validAddress("a@@b"));
  CHECK_FALSE(validAddress("<a@b>"));
  CHECK_FALSE(validAddress("caf\xc3\xa9@example.org"));  // internationalized: not supported
  CHECK_FALSE(validAddress(std::string(240, 'a') + "@b.c"));
  CHECK(parseMessageIds("<a\xc3\xa9@x> <ok@x>") == std::vector<std::string>{"ok@x"});
}

TEST_CASE("email: dates with zones and obsolete forms") {
  CHECK(parseDate("Tue, 1 Jul 2003 10:52:37 +0200") == 1057049557000);
  CHECK(parseDate("1 Jul 2003 08:52:37 GMT") == 1057049557000);
  CHECK(parseDate("Tue, 01 Jul 03 04:52:37 EDT") == 1057049557000);
  CHECK(parseDate("garbage") == 0);
  CHECK(parseDate("Tue, 1 Foo 2003 10:52:37 +0200") == 0);
}

TEST_CASE(
    "email: Authentication-Results vouch only from the trusted server, and only the topmost") {
  Charsets cs;
  auto with = [&](const std::string& headers) {
    return parseMail(headers + "From: Boss <boss@corp.example>\r\n\r\nhi", MimeLimits{}, cs);
  };
  CHECK(senderAuthenticated(
      with("Authentication-Results: mx.provider.net; dmarc=pass header.from=corp.example\r\n"),
      "mx.provider.net"));
  CHECK(senderAuthenticated(with("Authentication-Results: mx.provider.net 1; spf=fail; dkim=pass "
                                 "header.d=corp.example\r\n"),
                            "mx.provider.net"));
  CHECK_FALSE(senderAuthenticated(
      with("Authentication-Results: mx.provider.net; dmarc=fail header.from=corp.example\r\n"),
      "mx.provider.net"));
  CHECK_FALSE(senderAuthenticated(
      with("Authentication-Results: mx.provider.net; dkim=pass header.d=evil.example\r\n"),
      "mx.provider.net"));
  CHECK_FALSE(senderAuthenticated(with("Authentication-Results: attacker.example; dmarc=pass\r\n"),
                                  "mx.provider.net"));
  // The sender's own forged header sits below the one the receiving server added.
  CHECK_FALSE(senderAuthenticated(
      with("Authentication-Results: mx.provider.net; dmarc=fail header.from=corp.example\r\n"
           "Authentication-Results: mx.provider.net; dmarc=pass header.from=corp.example\r\n"),
      "mx.provider.net"));
  CHECK_FALSE(senderAuthenticated(with(""), "mx.provider.net"));
}

TEST_CASE("email: a composed reply parses back and keeps lines short") {
  Charsets cs;
  OutgoingMail out;
  out.from = {"bot@test.local", "Chitin \"Bot\""};
  out.to = "alice@example.org";
  out.subject = replySubject("Hello \xe2\x82\xac\r\nBcc: evil@x.y");
  out.messageId = "abc@test.local";
  out.inReplyTo = "m2@example.org";
  out.references = {"root@example.org", "m1@test.local", "m2@example.org"};
  out.dateMs = 1057049557000;
  out.text =
      "Line one \xc3\xa9\n.\nA very long line " + std::string(200, 'y') + " end   \nlast=line";
  out.attachments.push_back({"notes \xc3\xa9.txt", "text/plain", "file body", 9});
  out.attachments.push_back({"x.bin", "bad type\r\nX-Evil: 1", std::string("\x00\x01\x02", 3), 3});
  std::string raw = composeMail(out, "BOUNDARY123");
  for (size_t start = 0; start < raw.size();) {
    size_t end = raw.find("\r\n", start);
    REQUIRE(end != std::string::npos);
    CHECK(end - start <= 78);
    CHECK(raw.substr(start, end - start).find('\n') == std::string::npos);  // no bare LF
    start = end + 2;
  }
  CHECK(raw.find("\r\nBcc:") == std::string::npos);
  CHECK(raw.find("X-Evil") == std::string::npos);
  CHECK(raw.find("Auto-Submitted: auto-replied") != std::string::npos);
  ParsedMail back = parseMail(raw, MimeLimits{}, cs);
  CHECK(back.from.address == "bot@test.local");
  CHECK(back.from.name == "Chitin \"Bot\"");
  CHECK(back.subject == "Re: Hello \xe2\x82\xac Bcc: evil@x.y");
  CHECK(back.messageId == "abc@test.local");
  CHECK(back.inReplyTo == "m2@example.org");
  CHECK(back.references == out.references);
  CHECK(back.dateMs == out.dateMs);
  CHECK(back.text ==
        "Line one \xc3\xa9\n.\nA very long line " + std::string(200, 'y') + " end   \nlast=line");
  REQUIRE(back.attachments.size() == 2);
  CHECK(back.attachments[0].name == "notes \xc3\xa9.txt");
  CHECK(back.attachments[0].data == "file body");
  CHECK(back.attachments[1].mimeType == "application/octet-stream");
  CHECK(back.attachments[1].data == std::string("\x00\x01\x02", 3));
  CHECK(replySubject("RE: x") == "RE: x");
}

TEST_CASE("email: options are checked; another security mode names its port") {
  auto base = std::map<std::string, std::string>{{"address", "Bot@Example.org"},
                                                 {"imapHost", "imap.example.org"},
                                                 {"smtpHost", "smtp.example.org"}};
  Settings settings;
  settings.options = base;
  EmailConfig c = emailConfigFromSettings(settings);
  CHECK(c.address == "bot@example.org");
  CHECK(c.username == "bot@example.org");
  CHECK(c.imapPort == 993);
  CHECK(c.smtp.port == 587);
  CHECK(c.smtp.heloDomain == "example.org");
  auto refused = [&](std::map<std::string, std::string> extra, const char* needle) {
    Settings s;
    s.options = base;
    for (auto& [k, v] : extra) s.options[k] = v;
    try {
      emailConfigFromSettings(s);
      FAIL("accepted: ", needle);
    } catch (const ChannelError& e) {
      CHECK_MESSAGE(std::string(e.what()).find(needle) != std::string::npos, e.what());
    }
  };
  refused({{"imapTls", "starttls"}}, "\"imapPort\"");
  refused({{"smtpTls", "tls"}}, "\"smtpPort\"");
  refused({{"smtpHost", "smtp.example.org:25"}}, "\"smtpHost\"");
  refused({{"mailbox", "a\r\nb"}}, "\"mailbox\"");
  refused({{"idleSeconds", "3600"}}, "\"idleSeconds\"");
  refused({{"signature", "x"}}, "\"signature\"");
}

TEST_CASE("imap: responses tokenize into atoms, strings, literals and lists") {
  ImapLine fetch{
      "* 12 FETCH (UID 40 RFC822.SIZE 9 FLAGS (\\Seen) BODY[]<0> {9} INTERNALDATE \"1-Jan-2024\")",
      {"Subject:\r\n"}};
  auto v = tokenizeImap(fetch);
  REQUIRE(v.size() == 4);
  CHECK(v[1].text == "12");
  CHECK(v[2].text == "FETCH");
  REQUIRE(v[3].kind == ImapValue::Kind::LIST);
  const auto& items = v[3].items;
  REQUIRE(items.size() == 10);
  CHECK(items[5].kind == ImapValue::Kind::LIST);
  CHECK(items[5].items[0].text == "\\Seen");
  CHECK(items[6].text == "BODY[]<0>");
  CHECK(items[7].kind == ImapValue::Kind::STRING);
  CHECK(items[7].text == "Subject:\r\n");
  CHECK(items[9].text == "1-Jan-2024");
  auto section = tokenizeImap({"* 1 FETCH (BODY[HEADER.FIELDS (FROM TO)] NIL)", {}});
  REQUIRE(section.size() == 4);
  CHECK(section[3].items[0].text == "BODY[HEADER.FIELDS (FROM TO)]");
  CHECK(section[3].items[1].isNil());
  CHECK(responseCode("[UIDVALIDITY 3857529045] UIDs valid") == "UIDVALIDITY 3857529045");
  CHECK(responseCode("no code") == "");
  // Hostile input: unbalanced parentheses, deep nesting, a missing literal.
  CHECK_NOTHROW(tokenizeImap({"* ((((((((((((((((((((((((((((((((((((((((((x", {}}));
  CHECK_NOTHROW(tokenizeImap({"* ) ) {5}", {}}));
  CHECK_NOTHROW(tokenizeImap({"* \"unterminated", {}}));
}

}  // namespace
}  // namespace chitin::channel::email
