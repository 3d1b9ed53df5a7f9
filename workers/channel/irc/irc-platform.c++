// SPDX-License-Identifier: Apache-2.0
// The IRC channel (see irc-platform.h).
// Runs in: worker (sandboxed)

#include "irc-platform.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cstdio>

#include "../format.h"

namespace chitin::channel::irc {

namespace {

using std::chrono::milliseconds;

// The IRCv3 tags section may add 8191 bytes to the 512 of the message itself; a longer line is
// not IRC and ends the connection (a reconnect follows).
constexpr size_t MAX_INBOUND_LINE = 512 + 8192;
constexpr int MAX_NICK_ATTEMPTS = 9;
constexpr size_t MAX_ID_BYTES = 256;  // what the supervisor accepts (supervisor/channels)
// How long send() waits for a (re)connection before failing the reply.
constexpr milliseconds CONNECT_WAIT{30000};

int64_t nowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

std::string sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  std::string hex;
  char byte[3];
  for (unsigned int i = 0; i < length / 2; ++i) {  // 128 bits are plenty for an id
    std::snprintf(byte, sizeof byte, "%02x", digest[i]);
    hex += byte;
  }
  return hex;
}

}  // namespace

struct IrcPlatform::Session {
  std::shared_ptr<Stream> stream;
  std::string nick;
  int nickAttempt = 0;
  bool registered = false;
  CaseMapping mapping = CaseMapping::RFC1459;
  std::string chantypes = "#&";
  std::set<std::string> offered;  // CAP LS, names without values
  std::string saslMechanisms;     // the value of "sasl=" if any
  std::set<std::string> acked;
  int pendingReqs = 0;
  bool capDone = false;
  std::string account;   // who SASL logged us in as (900)
  std::string userHost;  // our "user@host" once the server shows it
  bool pingSent = false;
};

IrcPlatform::IrcPlatform(IrcConfig config, std::string credential, std::string egressSocket,
                         Host& host)
    : config_(std::move(config)),
      credential_(std::move(credential)),
      egressSocket_(std::move(egressSocket)),
      host_(host),
      bucket_(config_.floodBurst, config_.floodInterval) {}

IrcPlatform::~IrcPlatform() { std::fill(credential_.begin(), credential_.end(), '\0'); }

Capabilities IrcPlatform::capabilities() const {
  Capabilities c;
  c.maxMessageChars = 400;  // about one line; longer replies become several lines
  return c;
}

void IrcPlatform::run(Host& host) {
  Backoff backoff;
  while (!host.stopping() && !interrupted_) {
    std::string detail;
    try {
      serve(host, backoff);
    } catch (const Fatal& f) {
      host.status(State::FAILED, f.detail);
      return;
    } catch (const Stopping&) {
      return;
    } catch (const StreamInterrupted&) {
      detail = "interrupted";
    } catch (const StreamTimeout&) {
      detail = "the server did not answer in time";
    } catch (const ChannelError& e) {
      detail = e.what();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stream_.reset();
    }
    if (host.stopping() || interrupted_) break;
    host.status(State::RECONNECTING, detail);
    if (!host.sleepFor(backoff.next())) break;
  }
  host.status(State::STOPPED, "");
}

void IrcPlatform::interrupt() {
  interrupted_ = true;
  std::lock_guard<std::mutex> lock(mutex_);
  if (!stream_) return;
  // A parting QUIT frees the nick at once (a restarted worker gets it back instead of a
  // fallback). Best effort: skipped when a send holds the writer, never waited for.
  std::unique_lock<std::mutex> writer(writeMutex_, std::try_to_lock);
  if (writer.owns_lock() && !nick_.empty()) {
    try {
      stream_->writeAll("QUIT :stopping\r\n");
    } catch (const ChannelError&) {
      // The connection is already gone: nothing to part from.
    } catch (const StreamInterrupted&) {
      // Interrupted before: the same.
    }
  }
  stream_->interrupt();
}

void IrcPlatform::serve(Host& host, Backoff& backoff) {
  host.status(State::STARTING,
              "connecting to " + config_.server + ":" + std::to_string(config_.port));
  StreamOptions options;
  options.egressSocket = egressSocket_;
  options.tls = config_.tls;
  options.caFile = config_.caFile;
  Session s;
  s.stream = std::shared_ptr<Stream>(Stream::open(config_.server, config_.port, options));
  s.nick = config_.nick;
  {
    // Published before registration so that interrupt() can wake the reader; send() waits
    // for nick_ (set once registered).
    std::lock_guard<std::mutex> lock(mutex_);
    stream_ = s.stream;
    nick_.clear();
  }
  if (interrupted_) throw StreamInterrupted();

  bool useSasl = config_.sasl && !credential_.empty();
  writeLine(*s.stream, "CAP LS 302");
  if (!config_.sasl && !credential_.empty()) writeLine(*s.stream, "PASS :" + credential_);
  writeLine(*s.stream, "NICK " + s.nick);
  writeLine(*s.stream, "USER " + config_.username + " 0 * :" + config_.realname);

  auto registrationDeadline = std::chrono::steady_clock::now() + config_.registrationTimeout;
  for (;;) {
    milliseconds timeout;
    if (!s.registered) {
      timeout = std::chrono::duration_cast<milliseconds>(registrationDeadline -
                                                         std::chrono::steady_clock::now());
      if (timeout.count() <= 0) throw ChannelError("registration did not complete within 60 s");
    } else {
      timeout = s.pingSent ? config_.pingTimeout : config_.pingInterval;
    }
    std::string line;
    try {
      line = s.stream->readLine(timeout, MAX_INBOUND_LINE);
    } catch (const StreamTimeout&) {
      if (!s.registered) throw ChannelError("registration did not complete in time");
      if (s.pingSent) {
        throw ChannelError("no answer to PING within " +
                           std::to_string(config_.pingTimeout.count() / 1000) + " s");
      }
      writeLine(*s.stream, "PING :chitin");
      s.pingSent = true;
      continue;
    }
    s.pingSent = false;  // any line shows the server is alive
    std::optional<Message> m = parseLine(line);
    if (!m) continue;
    if (useSasl && m->command == "001" && !s.acked.count("sasl")) {
      throw Fatal{
          "the server registered us without SASL: it does not offer SASL PLAIN (set "
          "sasl=false to send the credential as a server password instead)"};
    }
    handle(s, *m, host, backoff);
  }
}

void IrcPlatform::handle(Session& s, const Message& m, Host& host, Backoff& backoff) {
  const std::string& c = m.command;
  if (c == "PING") {
    writeLine(*s.stream, "PONG :" + m.param(0));
  } else if (c == "CAP") {
    handleCap(s, m);
  } else if (c == "AUTHENTICATE") {
    // The server's "+" asks for our first response; InspIRCd sends it as ":+".
    if (m.param(0) == "+") {
      for (const std::string& l : saslPlainLines(config_.saslUser, credential_))
        writeLine(*s.stream, l);
    }
  } else if (c == "900") {
    s.account = m.param(2);
  } else if (c == "903") {
    writeLine(*s.stream, "CAP END");
    s.capDone = true;
  } else if (c == "902" || c == "904" || c == "905") {
    throw Fatal{"SASL login as '" + config_.saslUser + "' failed: " + m.params.back()};
  } else if ((c == "433" || c == "436" || c == "432") && !s.registered) {
    if (c == "432" && s.nickAttempt == 0) {
      throw Fatal{"the server refuses the nick '" + config_.nick + "': " + m.params.back()};
    }
    if (++s.nickAttempt > MAX_NICK_ATTEMPTS) {
      throw ChannelError("nick '" + config_.nick + "' and its fallbacks are all in use");
    }
    s.nick = config_.nick + (s.nickAttempt <= 2 ? std::string(s.nickAttempt, '_')
                                                : std::to_string(s.nickAttempt - 2));
    writeLine(*s.stream, "NICK " + s.nick);
  } else if (c == "001") {
    registered(s, m, host, backoff);
  } else if (c == "005") {
    for (size_t i = 1; i + 1 < m.params.size(); ++i) {
      const std::string& token = m.params[i];
      if (token.rfind("CASEMAPPING=", 0) == 0) s.mapping = caseMappingFromToken(token.substr(12));
      if (token.rfind("CHANTYPES=", 0) == 0) s.chantypes = token.substr(10);
    }
  } else if (c == "JOIN" && lowerIrc(m.prefix.nick, s.mapping) == lowerIrc(s.nick, s.mapping)) {
    // Our own JOIN echoes our full prefix: the real length of what others see before our text.
    if (!m.prefix.host.empty()) {
      s.userHost = m.prefix.user + "@" + m.prefix.host;
      std::lock_guard<std::mutex> lock(mutex_);
      prefixBytes_ = s.nick.size() + 1 + s.userHost.size();
    }
  } else if (c == "NICK" && lowerIrc(m.prefix.nick, s.mapping) == lowerIrc(s.nick, s.mapping)) {
    s.nick = m.param(0);
    std::lock_guard<std::mutex> lock(mutex_);
    nick_ = s.nick;
    prefixBytes_ = s.userHost.empty() ? conservativePrefixBytes(s.nick)
                                      : s.nick.size() + 1 + s.userHost.size();
  } else if (c == "ERROR") {
    throw ChannelError("the server closed the link: " + m.param(0));
  } else if (c == "KICK" && lowerIrc(m.param(1), s.mapping) == lowerIrc(s.nick, s.mapping)) {
    host.status(State::CONNECTED, "kicked from " + m.param(0) + " by " + m.prefix.nick, s.nick);
  } else if (c == "471" || c == "473" || c == "474" || c == "475" || c == "403" || c == "405") {
    host.status(State::CONNECTED, "cannot join " + m.param(1) + ": " + m.params.back(), s.nick);
  } else if (c == "PRIVMSG" && s.registered) {
    handlePrivmsg(s, m, host);
  }
  // NOTICE is never answered (RFC 2812 3.3.2: it exists so that bots do not loop), so it is not
  // delivered; everything else is not for the assistant.
}

void IrcPlatform::handleCap(Session& s, const Message& m) {
  const std::string& sub = m.param(1);
  if (sub == "LS" && !s.capDone) {
    bool more = m.params.size() >= 4 && m.param(2) == "*";  // CAP LS 302 multi-line reply
    for (const std::string& cap : splitList(m.params.back(), ' ')) {
      size_t eq = cap.find('=');
      s.offered.insert(cap.substr(0, eq));
      if (cap.substr(0, eq) == "sasl" && eq != std::string::npos)
        s.saslMechanisms = cap.substr(eq + 1);
    }
    if (more) return;
    std::vector<std::string> optional;
    for (const char* cap : {"message-tags", "server-time", "account-tag"}) {
      if (s.offered.count(cap)) optional.push_back(cap);
    }
    bool useSasl = config_.sasl && !credential_.empty();
    if (useSasl) {
      bool plain = s.saslMechanisms.empty() ||  // "sasl" without a list: mechanisms unknown
                   ("," + s.saslMechanisms + ",").find(",PLAIN,") != std::string::npos;
      if (!s.offered.count("sasl") || !plain) {
        throw Fatal{"the server does not offer SASL PLAIN (offered: " +
                    join(std::vector<std::string>(s.offered.begin(), s.offered.end()), " ") +
                    "); set sasl=false to send the credential as a server password instead"};
      }
    }
    // Two requests: a server that refuses an optional capability must not take SASL with it.
    if (!optional.empty()) {
      writeLine(*s.stream, "CAP REQ :" + join(optional, " "));
      ++s.pendingReqs;
    }
    if (useSasl) {
      writeLine(*s.stream, "CAP REQ :sasl");
      ++s.pendingReqs;
    }
    if (s.pendingReqs == 0) finishCaps(s);
  } else if ((sub == "ACK" || sub == "NAK") && s.pendingReqs > 0) {
    if (sub == "ACK") {
      for (const std::string& cap : splitList(m.params.back(), ' ')) s.acked.insert(cap);
    }
    if (--s.pendingReqs == 0) finishCaps(s);
  }
  // CAP NEW/DEL after registration change nothing we rely on.
}

void IrcPlatform::finishCaps(Session& s) {
  if (s.acked.count("sasl")) {
    writeLine(*s.stream, "AUTHENTICATE PLAIN");  // CAP END follows 903
    return;
  }
  if (config_.sasl && !credential_.empty()) {
    throw Fatal{"the server refused the sasl capability"};
  }
  writeLine(*s.stream, "CAP END");
  s.capDone = true;
}

void IrcPlatform::registered(Session& s, const Message& welcome, Host& host, Backoff& backoff) {
  s.registered = true;
  s.nick = welcome.param(0);
  // RFC 2812's welcome ends in our full prefix ("... Network nick!user@host").
  const std::string& text = welcome.params.back();
  std::string last = text.substr(text.rfind(' ') + 1);
  size_t bang = last.find('!'), at = last.find('@');
  if (bang != std::string::npos && at != std::string::npos && bang < at)
    s.userHost = last.substr(bang + 1);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    nick_ = s.nick;
    prefixBytes_ = s.userHost.empty() ? conservativePrefixBytes(s.nick)
                                      : s.nick.size() + 1 + s.userHost.size();
  }
  if (!config_.channels.empty()) writeLine(*s.stream, "JOIN " + join(config_.channels, ","));
  backoff.reset();
  std::string detail = "connected to " + config_.server + ":" + std::to_string(config_.port) +
                       (s.stream->tls() ? " (TLS)" : " (plain text)");
  if (!s.account.empty()) detail += ", logged in as " + s.account;
  if (!config_.channels.empty()) detail += ", joining " + join(config_.channels, " ");
  host.status(State::CONNECTED, detail, s.nick);
}

void IrcPlatform::handlePrivmsg(Session& s, const Message& m, Host& host) {
  if (m.params.size() < 2 || m.prefix.nick.empty() || m.prefix.host.empty()) return;
  const std::string lowerNick = lowerIrc(s.nick, s.mapping);
  if (lowerIrc(m.prefix.nick, s.mapping) == lowerNick) return;  // our own line, echoed back
  const std::string& target = m.param(0);
  std::string text = m.params[1];

  if (std::optional<Ctcp> ctcp = parseCtcp(text)) {
    if (ctcp->command == "ACTION") {
      text = "/me " + ctcp->argument;
    } else {
      // VERSION and PING get the answer clients expect, when the flood budget allows; a CTCP
      // flood then costs us nothing but dropped replies.
      std::string reply;
      if (ctcp->command == "VERSION") reply = "VERSION chitin";
      if (ctcp->command == "PING") reply = "PING " + cleanInboundText(ctcp->argument).substr(0, 64);
      if (!reply.empty() && validTarget(m.prefix.nick) && tryTakeToken()) {
        writeLine(*s.stream, "NOTICE " + m.prefix.nick + " :\x01" + reply + "\x01");
      }
      return;
    }
  }

  Inbound in;
  in.group = !target.empty() && s.chantypes.find(target.front()) != std::string::npos;
  if (in.group) {
    in.chatId = lowerIrc(target, s.mapping);
  } else if (lowerIrc(target, s.mapping) == lowerNick) {
    in.chatId = m.prefix.nick;
  } else {
    return;  // a status-message or server-mask target: not a conversation with us
  }
  // The chat id is where a reply goes, so it cannot be escaped; the supervisor takes only
  // printable ASCII ids (a nick or channel outside it, rare on IRC, is not answered).
  if (!plainAscii(in.chatId) || in.chatId.size() > MAX_ID_BYTES) return;
  std::string account = s.acked.count("account-tag") ? m.tag("account") : std::string();
  in.senderId =
      escapeId(!account.empty() && account != "*" ? "account:" + lowerIrc(account, s.mapping)
                                                  : "nick:" + lowerIrc(m.prefix.nick, s.mapping));
  if (in.senderId.size() > MAX_ID_BYTES) in.senderId = "hash:" + sha256Hex(in.senderId);
  in.senderName = cleanInboundText(m.prefix.nick).substr(0, 64);
  in.text = cleanInboundText(text);
  in.mentioned = in.group && mentions(in.text, s.nick, s.mapping);
  std::optional<int64_t> serverTime = parseServerTime(m.tag("time"));
  in.timestampMs = serverTime ? *serverTime : nowMs();
  in.messageId = nextMessageId(m, in.text);
  host.deliver(std::move(in));
}

std::string IrcPlatform::nextMessageId(const Message& m, const std::string& text) {
  std::string msgid = m.tag("msgid");
  if (plainAscii(msgid) && msgid.size() <= 200) return "msgid:" + msgid;
  std::string time = m.tag("time");
  if (!time.empty()) {
    return "hash:" + sha256Hex(time + '\0' + m.prefix.nick + '!' + m.prefix.user + '@' +
                               m.prefix.host + '\0' + m.param(0) + '\0' + text);
  }
  return "recv:" + std::to_string(nowMs()) + "-" + std::to_string(++counter_);
}

void IrcPlatform::writeLine(Stream& stream, const std::string& line) {
  // Every line we build keeps its parts free of CR, LF and NUL; this is the last guard.
  if (line.find_first_of(std::string("\r\n\0", 3)) != std::string::npos ||
      line.size() + 2 > MAX_LINE_BYTES) {
    throw ChannelError("internal: refusing to write a malformed IRC line");
  }
  std::lock_guard<std::mutex> lock(writeMutex_);
  stream.writeAll(line + "\r\n");
}

bool IrcPlatform::tryTakeToken() {
  std::lock_guard<std::mutex> lock(bucketMutex_);
  return bucket_.take().count() == 0;
}

std::vector<std::string> IrcPlatform::send(const Outbound& message) {
  if (!validTarget(message.chatId)) {
    throw ChannelError("IRC: '" + message.chatId + "' is not a nick or channel name");
  }
  if (!message.attachments.empty()) {
    throw ChannelError("IRC cannot carry files; send a link instead");
  }
  std::string text = convertMarkdown(message.text, Format::PLAIN);

  std::shared_ptr<Stream> stream;
  size_t prefixBytes = 0;
  for (auto waited = milliseconds(0);; waited += milliseconds(200)) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stream_ && !nick_.empty()) {
        stream = stream_;
        prefixBytes = prefixBytes_;
        break;
      }
    }
    if (waited >= CONNECT_WAIT || !host_.sleepFor(milliseconds(200))) {
      throw ChannelError("IRC: not connected to " + config_.server + "; the reply was not sent");
    }
  }

  std::vector<std::string> lines = privmsgLines(message.chatId, text, prefixBytes);
  if (lines.size() > config_.maxLines) {
    size_t dropped = lines.size() - (config_.maxLines - 1);
    lines.resize(config_.maxLines - 1);
    lines.push_back("PRIVMSG " + message.chatId + " :[" + std::to_string(dropped) +
                    " more lines not sent]");
  }
  std::vector<std::string> ids;
  for (const std::string& line : lines) {
    for (;;) {
      milliseconds wait;
      {
        std::lock_guard<std::mutex> lock(bucketMutex_);
        wait = bucket_.take();
      }
      if (wait.count() == 0) break;
      if (!host_.sleepFor(wait)) throw ChannelError("IRC: stopping; the reply was cut short");
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stream_ != stream) {
        throw ChannelError("IRC: the connection dropped after " + std::to_string(ids.size()) +
                           " of " + std::to_string(lines.size()) + " lines");
      }
    }
    writeLine(*stream, line);
    // IRC gives sent lines no id; these name them for the audit log only.
    ids.push_back("sent:" + std::to_string(nowMs()) + "-" + std::to_string(++sentCounter_));
  }
  return ids;
}

void IrcPlatform::typing(const std::string&, bool) {
  // IRC has only the +typing client tag, which few clients show; nothing is sent.
}

void IrcPlatform::react(const std::string&, const std::string&, const std::string&) {
  throw ChannelError("IRC has no reactions");
}

}  // namespace chitin::channel::irc
