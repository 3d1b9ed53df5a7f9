// SPDX-License-Identifier: Apache-2.0
// IRC lines in and out: parsing (IRCv3 tags, prefix, parameters), nick casemapping and
// mentions, CTCP, and cutting a reply into PRIVMSG lines that fit the 512-byte limit.
// Runs in: worker (sandboxed)
//
// Everything parsed here comes from the IRC server and, through it, from anyone on the network:
// lines are bounded by the reader, parsing never throws, and what we write is built so that no
// byte of a message or target can end a line (CR, LF and NUL never reach the wire).

#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chitin::channel::irc {

// RFC 1459 section 2.3: the line limit, CRLF included. IRCv3 tags have a budget of their own.
inline constexpr size_t MAX_LINE_BYTES = 512;

struct Prefix {
  std::string nick;  // or a server name when there is no '!'/'@'
  std::string user;
  std::string host;
};

struct Message {
  std::map<std::string, std::string> tags;  // unescaped values
  Prefix prefix;
  std::string command;              // upper-cased; numerics stay digits ("001")
  std::vector<std::string> params;  // the trailing parameter is the last one

  const std::string& param(size_t i) const;       // "" when absent
  std::string tag(const std::string& key) const;  // "" when absent
};

// nullopt for a line that is not an IRC message (empty, no command, over-long tags).
std::optional<Message> parseLine(std::string_view line);

// The server's ISUPPORT CASEMAPPING: rfc1459 (default: also []\~ -> {}|^), strict-rfc1459
// (no ~ -> ^), ascii.
enum class CaseMapping { RFC1459, STRICT_RFC1459, ASCII };
CaseMapping caseMappingFromToken(std::string_view value);
std::string lowerIrc(std::string_view s, CaseMapping mapping);

// Whether `nick` appears in `text` as a word: case-insensitive under `mapping`, with no nick
// character (letters, digits, []\`_^{|}-) directly before or after it. "chitin: hi" and
// "hey @chitin" mention chitin; "chitinous" does not.
bool mentions(std::string_view text, std::string_view nick, CaseMapping mapping);

// CTCP (a PRIVMSG/NOTICE text framed by \x01): the command (upper-cased) and its argument.
struct Ctcp {
  std::string command;
  std::string argument;
};
std::optional<Ctcp> parseCtcp(std::string_view text);

// Drops mIRC formatting (bold, colour with its digits, italics, underline, reverse, reset,
// monospace, strikethrough) and other C0 controls but tab; invalid UTF-8 is read as Latin-1
// (old clients still send it).
std::string cleanInboundText(std::string_view text);

// A valid PRIVMSG target we may write: a nick or a channel, 1..200 bytes, without space,
// comma, CR, LF, NUL or a leading ':'.
bool validTarget(std::string_view target);

// An id the supervisor accepts (1-256 printable ASCII without space): bytes outside '!'..'~'
// and '%' itself become %XX, so distinct nicks or accounts stay distinct ids.
std::string escapeId(std::string_view raw);
bool plainAscii(std::string_view s);  // non-empty, all of '!'..'~'

// The items of a `sep`-separated list, blanks around each trimmed, empty ones dropped.
std::vector<std::string> splitList(const std::string& s, char sep);

// Valid nick for registration: RFC 2812 letters/specials first, then also digits and '-'.
bool validNick(std::string_view nick);

// The lines (without CRLF) that send `text` to `target` as PRIVMSG: one per line of text (empty
// lines skipped, CR and NUL dropped), each cut on UTF-8 boundaries (chunkText) so that
// ":<ourPrefix> PRIVMSG <target> :<text>\r\n" -- what other clients receive -- fits 512 bytes.
// A text starting with "/me " goes out as CTCP ACTION. `ourPrefixBytes` is the length of
// "nick!user@host" (see conservativePrefixBytes when the host is not known yet).
std::vector<std::string> privmsgLines(std::string_view target, std::string_view text,
                                      size_t ourPrefixBytes);

// When our user@host is not yet known: nick + "!" + a 10-byte user + "@" + a 63-byte host
// (the longest DNS label; cloaks and IPv6 addresses are shorter).
size_t conservativePrefixBytes(std::string_view nick);

// The IRCv3 server-time tag ("2011-10-19T16:40:51.620Z") in ms since the epoch; nullopt when
// it does not parse.
std::optional<int64_t> parseServerTime(std::string_view value);

// SASL PLAIN (RFC 4616) as AUTHENTICATE lines: base64 of authzid NUL authcid NUL password,
// in 400-byte pieces, with a final "+" when the last piece is exactly 400 bytes (IRCv3 sasl-3.1).
std::vector<std::string> saslPlainLines(std::string_view user, std::string_view password);

// Flood control: a token bucket holding `burst` lines, refilled by one every `interval`.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket(size_t burst, std::chrono::milliseconds interval);
  // 0 when a line may go now (and takes its token), else how long to wait before asking again.
  std::chrono::milliseconds take(Clock::time_point now = Clock::now());

 private:
  void refill(Clock::time_point now);
  double tokens_;
  double burst_;
  std::chrono::milliseconds interval_;
  Clock::time_point last_;
};

}  // namespace chitin::channel::irc
