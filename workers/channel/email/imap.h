// SPDX-License-Identifier: Apache-2.0
// The IMAP4rev1 subset the email channel needs (RFC 3501, IDLE from RFC 2177) on a Stream:
// greeting, CAPABILITY, STARTTLS, AUTHENTICATE PLAIN / LOGIN, SELECT, UID SEARCH, UID FETCH,
// UID STORE, IDLE, NOOP, LOGOUT.
// Runs in: worker (sandboxed)
//
// Responses are read into values (atoms, strings, literals, lists) by a small tokenizer with
// bounds on line and literal sizes; a body is fetched as a partial BODY.PEEK[]<0.N> so that the
// server, not its claimed RFC822.SIZE, bounds what we read.

#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "../stream.h"

namespace chitin::channel::email {

struct ImapValue {
  enum class Kind { ATOM, STRING, LIST };
  Kind kind = Kind::ATOM;
  std::string text;  // ATOM and STRING (literals are strings)
  std::vector<ImapValue> items;
  bool isNil() const { return kind == Kind::ATOM && text == "NIL"; }
};

// One response line with its literals spliced in: "{N}" in `text` stands for the next literal.
struct ImapLine {
  std::string text;
  std::vector<std::string> literals;
};

// The values of a response line (after "* " or the tag), for tests and the session.
std::vector<ImapValue> tokenizeImap(const ImapLine& line);

// The response code in "[...]" at the start of `text`, e.g. "UIDVALIDITY 3857529045".
std::string responseCode(std::string_view text);

// Fatal for the account: the server refused our credentials.
struct ImapAuthFailed {
  std::string detail;
};

struct Mailbox {
  uint32_t uidValidity = 0;
  uint32_t uidNext = 0;  // 0 when the server did not say
  uint32_t exists = 0;
};

struct FetchedMessage {
  uint32_t uid = 0;
  uint64_t size = 0;  // RFC822.SIZE
  std::string bytes;  // the message (or its first maxBytes bytes)
  bool truncated = false;
};

class ImapSession {
 public:
  enum class Tls { IMPLICIT, STARTTLS, NONE };

  ImapSession(const std::string& host, uint16_t port, Tls tls, const std::string& caFile,
              const std::string& egressSocket);
  ~ImapSession();

  // AUTHENTICATE PLAIN when offered, else LOGIN. Throws ImapAuthFailed on NO.
  void login(const std::string& user, const std::string& password);
  Mailbox select(const std::string& mailbox);
  std::vector<uint32_t> uidSearch(const std::string& criteria);
  // RFC822.SIZE only, to decide what to fetch.
  uint64_t fetchSize(uint32_t uid);
  // At most maxBytes of the message; truncated when the message is longer.
  FetchedMessage fetchMessage(uint32_t uid, uint64_t maxBytes);
  void markSeen(uint32_t uid);
  void noop();
  // IDLE until the server reports new mail (true) or `maxWait` passes (false). Ends IDLE with
  // DONE either way. Returns true at once when an EXISTS came with an earlier command's answer
  // after the last uidSearch(). Throws StreamInterrupted when interrupted.
  bool idle(std::chrono::milliseconds maxWait);
  void logout();

  bool hasCapability(const std::string& name) const;  // upper-case name
  bool tls() const;
  void interrupt();  // from any thread

 private:
  struct Response {
    std::string status;  // OK, NO, BAD
    std::string text;
    std::vector<ImapLine> untagged;
  };
  ImapLine readLine(std::chrono::milliseconds timeout);
  Response command(const std::string& line,
                   std::chrono::milliseconds timeout = std::chrono::seconds(60));
  Response commandOk(const std::string& line, const std::string& what);
  void readCapabilities(const std::vector<ImapLine>& lines, const std::string& taggedText);
  void parseCapabilityList(std::string_view list);
  void noteExists(const ImapLine& line);
  std::string nextTag();

  std::unique_ptr<Stream> stream_;
  std::string peer_;
  std::set<std::string> capabilities_;
  uint64_t tagCounter_ = 0;
  size_t maxLiteral_ = 64u << 20;
  bool newMail_ = false;  // an EXISTS arrived since the last search
};

}  // namespace chitin::channel::email
