// SPDX-License-Identifier: Apache-2.0
// The email channel (see email-platform.h).
// Runs in: worker (sandboxed)

#include "email-platform.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "../format.h"
#include "mime-compose.h"

namespace chitin::channel::email {

namespace {

using std::chrono::milliseconds;

constexpr size_t MAX_THREADS_KEPT = 500;
// What the supervisor accepts of one message (supervisor/channels/inbound.h); ids are bounded
// where they are parsed (mime.h).
constexpr size_t MAX_NAME_BYTES = 256;
constexpr size_t MAX_TEXT_BYTES = 64u << 10;
constexpr size_t MAX_REFERENCES = 20;
constexpr uint64_t MAX_SEND_BYTES = 25u << 20;  // what common providers accept

int64_t nowMs() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

ImapSession::Tls imapTlsOption(Settings& settings) {
  std::string v = settings.take("imapTls", "tls");
  if (v == "tls") return ImapSession::Tls::IMPLICIT;
  if (v == "starttls") return ImapSession::Tls::STARTTLS;
  if (v == "none") return ImapSession::Tls::NONE;
  throw ChannelError("email option \"imapTls\": expected tls, starttls or none, got '" + v + "'");
}

SmtpConfig::Tls smtpTlsOption(Settings& settings) {
  std::string v = settings.take("smtpTls", "starttls");
  if (v == "tls") return SmtpConfig::Tls::IMPLICIT;
  if (v == "starttls") return SmtpConfig::Tls::STARTTLS;
  if (v == "none") return SmtpConfig::Tls::NONE;
  throw ChannelError("email option \"smtpTls\": expected tls, starttls or none, got '" + v + "'");
}

std::string hostOption(Settings& settings, const std::string& key) {
  std::string host = settings.take(key);
  if (host.empty() || host.size() > 253 || host.find_first_of(" /:@\r\n") != std::string::npos) {
    throw ChannelError("email option \"" + key + "\": expected a host name, e.g. imap.example.org");
  }
  return host;
}

bool validMessageId(const std::string& id) {
  return !id.empty() && id.size() <= 250 && id.find('@') != std::string::npos &&
         std::none_of(id.begin(), id.end(), [](char c) {
           return static_cast<unsigned char>(c) <= 0x20 || c == '<' || c == '>' || c == 0x7F;
         });
}

std::string safeFileName(const std::string& mailbox) {
  std::string out;
  for (char c : mailbox) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

// Writes `content` to `path` so that a crash leaves the old or the new file, never a torn one.
void writeFileAtomically(const std::string& path, const std::string& content) {
  std::string temp = path + ".tmp";
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw ChannelError("cannot write " + temp + ": " + std::strerror(errno));
  bool ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(temp.c_str(), path.c_str()) != 0) {
    throw ChannelError("cannot write " + path + ": " + std::strerror(errno));
  }
}

std::string oneField(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  }
  return out;
}

}  // namespace

EmailConfig emailConfigFromSettings(Settings& settings) {
  EmailConfig c;
  c.address = lowerAscii(settings.take("address"));
  if (!validAddress(c.address)) {
    throw ChannelError(
        "email option \"address\": expected the mailbox's address, e.g. assistant@example.org");
  }
  c.fromName = settings.take("fromName", "chitin");
  c.username = settings.take("username", c.address);
  c.imapHost = hostOption(settings, "imapHost");
  c.imapTls = imapTlsOption(settings);
  // Default ports are those of the default security (993 implicit TLS, 587 STARTTLS), as the
  // supervisor's egress allowlist assumes; another mode names its port.
  if (c.imapTls != ImapSession::Tls::IMPLICIT && settings.options.count("imapPort") == 0) {
    throw ChannelError("email option \"imapPort\": needed when imapTls is not tls (usually 143)");
  }
  c.imapPort = static_cast<uint16_t>(settings.takeInt("imapPort", 993, 1, 65535));
  c.mailbox = settings.take("mailbox", "INBOX");
  if (c.mailbox.empty() || c.mailbox.find_first_of("\r\n\"\\") != std::string::npos) {
    throw ChannelError("email option \"mailbox\": expected a mailbox name such as INBOX");
  }
  c.smtp.host = hostOption(settings, "smtpHost");
  c.smtp.tls = smtpTlsOption(settings);
  if (c.smtp.tls != SmtpConfig::Tls::STARTTLS && settings.options.count("smtpPort") == 0) {
    throw ChannelError(
        "email option \"smtpPort\": needed when smtpTls is not starttls (usually 465 for tls)");
  }
  c.smtp.port = static_cast<uint16_t>(settings.takeInt("smtpPort", 587, 1, 65535));
  c.smtp.username = c.username;
  c.smtp.heloDomain = c.address.substr(c.address.find('@') + 1);
  c.caFile = settings.take("caFile");
  c.smtp.caFile = c.caFile;
  c.idleTime = std::chrono::seconds(settings.takeInt("idleSeconds", 25 * 60, 1, 29 * 60));
  c.pollInterval = std::chrono::seconds(settings.takeInt("pollSeconds", 60, 1, 3600));
  c.maxMessageBytes =
      static_cast<uint64_t>(settings.takeInt("maxMessageBytes", 32 << 20, 4096, 256 << 20));
  c.trustedAuthServId = settings.take("trustedAuthServId");
  c.subject = settings.take("subject", "Message from chitin");
  settings.finish();
  return c;
}

std::unique_ptr<Platform> makeEmailPlatform(Settings& settings, Host&) {
  EmailConfig config = emailConfigFromSettings(settings);
  config.smtp.egressSocket = settings.egressSocket;
  return std::make_unique<EmailPlatform>(std::move(config), settings.credential,
                                         settings.egressSocket, settings.stateDir,
                                         settings.maxAttachmentBytes);
}

EmailPlatform::EmailPlatform(EmailConfig config, std::string credential, std::string egressSocket,
                             std::string stateDir, uint64_t maxAttachmentBytes)
    : config_(std::move(config)),
      credential_(std::move(credential)),
      egressSocket_(std::move(egressSocket)),
      stateDir_(std::move(stateDir)),
      smtp_(config_.smtp, credential_) {
  limits_.maxAttachmentBytes = maxAttachmentBytes;
  loadThreads();
}

EmailPlatform::~EmailPlatform() { std::fill(credential_.begin(), credential_.end(), '\0'); }

Capabilities EmailPlatform::capabilities() const {
  Capabilities c;
  c.maxMessageChars = 100000;  // one mail holds a whole reply
  c.attachments = true;
  return c;
}

void EmailPlatform::run(Host& host) {
  Backoff backoff;
  while (!host.stopping() && !interrupted_) {
    std::string detail;
    try {
      serve(host, backoff);
    } catch (const ImapAuthFailed& f) {
      host.status(State::FAILED, f.detail);
      return;
    } catch (const Stopping&) {
      return;
    } catch (const StreamInterrupted&) {
      detail = "interrupted";
    } catch (const StreamTimeout&) {
      detail = "the IMAP server did not answer in time";
    } catch (const ChannelError& e) {
      detail = e.what();
    }
    {
      std::lock_guard<std::mutex> lock(sessionMutex_);
      session_.reset();
    }
    if (host.stopping() || interrupted_) break;
    host.status(State::RECONNECTING, detail);
    if (!host.sleepFor(backoff.next())) break;
  }
  host.status(State::STOPPED, "");
}

void EmailPlatform::interrupt() {
  interrupted_ = true;
  smtp_.interrupt();
  std::lock_guard<std::mutex> lock(sessionMutex_);
  if (session_) session_->interrupt();
}

void EmailPlatform::serve(Host& host, Backoff& backoff) {
  host.status(State::STARTING,
              "connecting to IMAP " + config_.imapHost + ":" + std::to_string(config_.imapPort));
  auto session = std::make_shared<ImapSession>(config_.imapHost, config_.imapPort, config_.imapTls,
                                               config_.caFile, egressSocket_);
  {
    std::lock_guard<std::mutex> lock(sessionMutex_);
    session_ = session;
  }
  if (interrupted_) throw StreamInterrupted{};
  session->login(config_.username, credential_);
  Mailbox mailbox = session->select(config_.mailbox);

  Progress progress = loadProgress();
  std::string note;
  if (progress.uidValidity != mailbox.uidValidity) {
    bool firstStart = progress.uidValidity == 0;
    std::vector<uint32_t> existing = session->uidSearch(firstStart ? "ALL" : "UNSEEN");
    uint32_t highest = mailbox.uidNext > 0 ? mailbox.uidNext - 1 : 0;
    for (uint32_t uid : existing) highest = std::max(highest, uid);
    progress = {mailbox.uidValidity, 0};
    if (firstStart) {
      progress.lastUid = highest;  // the mail already there is not for us
      note = "; first start: mail arriving from now on is answered";
    } else {
      // The server renumbered the mailbox: what is unseen may be unanswered.
      catchUp(*session, progress, host, existing);
      progress.lastUid = std::max(progress.lastUid, highest);
      note = "; the server changed UIDVALIDITY: unseen mail was delivered again";
    }
    saveProgress(progress);
  }
  backoff.reset();
  bool idle = session->hasCapability("IDLE");
  host.status(
      State::CONNECTED,
      "IMAP " + config_.imapHost + (session->tls() ? " (TLS)" : " (plain text)") +
          (idle ? ", waiting with IDLE"
                : ", polling every " + std::to_string(config_.pollInterval.count() / 1000) + " s") +
          note,
      config_.address);

  for (;;) {
    std::vector<uint32_t> uids =
        session->uidSearch("UID " + std::to_string(progress.lastUid + 1) + ":*");
    catchUp(*session, progress, host, uids);
    if (host.stopping()) return;
    if (idle) {
      session->idle(config_.idleTime);
    } else {
      if (!host.sleepFor(config_.pollInterval)) return;
      session->noop();
    }
  }
}

void EmailPlatform::catchUp(ImapSession& session, Progress& progress, Host& host,
                            const std::vector<uint32_t>& uids) {
  for (uint32_t uid : uids) {
    // "n:*" always names the highest UID, even below n (RFC 3501 6.4.8): skip what we had.
    if (uid <= progress.lastUid) continue;
    bool delivered = deliverOne(session, progress, uid, host);
    progress.lastUid = uid;
    saveProgress(progress);    // only now: a crash before this redelivers, never skips
    if (!delivered) continue;  // skipped mail stays unseen for the human
    try {
      session.markSeen(uid);
    } catch (const ChannelError&) {
      // A read-only mailbox: \Seen is a courtesy to the human, not our bookkeeping.
    }
  }
}

bool EmailPlatform::deliverOne(ImapSession& session, const Progress& progress, uint32_t uid,
                               Host& host) {
  FetchedMessage fetched = session.fetchMessage(uid, config_.maxMessageBytes);
  if (fetched.uid == 0) return false;  // expunged meanwhile
  ParsedMail mail = parseMail(fetched.bytes, limits_, charsets_);
  if (mail.from.address.empty() || mail.from.address == config_.address) return false;
  if (!mail.autoSubmitted.empty() && mail.autoSubmitted != "no") return false;

  Inbound in;
  in.chatId = mail.from.address;
  in.group = false;
  bool verified =
      config_.trustedAuthServId.empty() || senderAuthenticated(mail, config_.trustedAuthServId);
  in.senderId = verified ? mail.from.address : "unverified:" + mail.from.address;
  in.senderName =
      truncateUtf8(mail.from.name.empty() ? mail.from.address : mail.from.name, MAX_NAME_BYTES);
  in.messageId = !mail.messageId.empty()
                     ? mail.messageId
                     : "uid:" + std::to_string(progress.uidValidity) + ":" + std::to_string(uid);
  in.replyTo = mail.inReplyTo;
  in.threadId = !mail.references.empty()  ? mail.references.front()
                : !mail.inReplyTo.empty() ? mail.inReplyTo
                                          : in.messageId;
  in.text = mail.subject.empty() ? mail.text : "Subject: " + mail.subject + "\n\n" + mail.text;
  if (fetched.truncated) {
    in.text += "\n[this mail is " + std::to_string(fetched.size) + " bytes; only the first " +
               std::to_string(config_.maxMessageBytes) + " were read]";
  }
  if (mail.attachmentsDropped > 0) {
    in.text +=
        "\n[" + std::to_string(mail.attachmentsDropped) + " more attachments were not delivered]";
  }
  if (mail.partsDropped)
    in.text += "\n[parts of this mail nested too deep or too many were skipped]";
  in.text = truncateUtf8(in.text, MAX_TEXT_BYTES);  // a long subject is the only way past it
  in.attachments = std::move(mail.attachments);
  in.timestampMs = mail.dateMs ? mail.dateMs : nowMs();

  if (validMessageId(mail.messageId)) {
    ThreadInfo info{mail.subject, mail.references};
    if (info.references.empty() && validMessageId(mail.inReplyTo))
      info.references.push_back(mail.inReplyTo);
    info.references.push_back(mail.messageId);
    rememberThread(mail.messageId, std::move(info));
  }
  host.deliver(std::move(in));
  return true;
}

std::vector<std::string> EmailPlatform::send(const Outbound& message) {
  std::string to = lowerAscii(message.chatId);
  if (!validAddress(to)) throw ChannelError("email: '" + message.chatId + "' is not an address");
  OutgoingMail mail;
  mail.from = {config_.address, config_.fromName};
  mail.to = to;
  mail.dateMs = nowMs();
  mail.messageId = randomToken(16) + "@" + config_.smtp.heloDomain;
  mail.text = convertMarkdown(message.text, Format::PLAIN);
  mail.attachments = message.attachments;

  ThreadInfo info;
  std::string answered = validMessageId(message.replyTo) ? message.replyTo : "";
  bool known = !answered.empty() && findThread(answered, &info);
  if (!known && validMessageId(message.threadId)) known = findThread(message.threadId, &info);
  mail.subject = known              ? replySubject(info.subject)
                 : answered.empty() ? config_.subject
                                    : "Re: your message";
  if (!answered.empty()) {
    mail.inReplyTo = answered;
    if (info.references.empty() || info.references.back() != answered) {
      if (info.references.empty() && validMessageId(message.threadId) &&
          message.threadId != answered) {
        info.references.push_back(message.threadId);
      }
      info.references.push_back(answered);
    }
    // RFC 5322 3.6.4: keep the first (the thread's root) and the most recent ones.
    if (info.references.size() > MAX_REFERENCES) {
      info.references.erase(info.references.begin() + 1,
                            info.references.end() - (MAX_REFERENCES - 1));
    }
    mail.references = info.references;
  }
  std::string bytes = composeMail(mail, "chitin-" + randomToken(12));
  if (bytes.size() > MAX_SEND_BYTES) {
    throw ChannelError("email: the message with its attachments is " +
                       std::to_string(bytes.size() >> 20) + " MiB; at most " +
                       std::to_string(MAX_SEND_BYTES >> 20) + " MiB can be sent");
  }
  smtp_.send(config_.address, to, bytes);
  return {mail.messageId};
}

void EmailPlatform::typing(const std::string&, bool) {
  // Mail has no typing notification.
}

void EmailPlatform::react(const std::string&, const std::string&, const std::string&) {
  throw ChannelError("email has no reactions");
}

EmailPlatform::Progress EmailPlatform::loadProgress() const {
  Progress p;
  if (stateDir_.empty()) return p;
  std::ifstream in(stateDir_ + "/imap-" + safeFileName(config_.mailbox) + ".state");
  uint64_t validity = 0, last = 0;
  if (in >> validity >> last && validity <= 0xFFFFFFFFu && last <= 0xFFFFFFFFu) {
    p.uidValidity = static_cast<uint32_t>(validity);
    p.lastUid = static_cast<uint32_t>(last);
  }
  return p;
}

void EmailPlatform::saveProgress(const Progress& p) const {
  if (stateDir_.empty()) return;
  writeFileAtomically(stateDir_ + "/imap-" + safeFileName(config_.mailbox) + ".state",
                      std::to_string(p.uidValidity) + " " + std::to_string(p.lastUid) + "\n");
}

// threads.tsv: "message-id TAB subject TAB space-separated references" per line, newest last,
// so that a reply after a restart still carries the subject and the References chain.
void EmailPlatform::loadThreads() {
  if (stateDir_.empty()) return;
  std::ifstream in(stateDir_ + "/threads.tsv");
  std::string line;
  while (std::getline(in, line) && threadOrder_.size() < 4 * MAX_THREADS_KEPT) {
    std::stringstream fields(line);
    std::string id, subject, refs, ref;
    if (!std::getline(fields, id, '\t') || !std::getline(fields, subject, '\t')) continue;
    std::getline(fields, refs);
    ThreadInfo info{subject, {}};
    std::stringstream refStream(refs);
    while (refStream >> ref && info.references.size() < 100) info.references.push_back(ref);
    if (!threads_.count(id)) threadOrder_.push_back(id);
    threads_[id] = std::move(info);
  }
  while (threadOrder_.size() > MAX_THREADS_KEPT) {
    threads_.erase(threadOrder_.front());
    threadOrder_.pop_front();
  }
}

void EmailPlatform::rememberThread(const std::string& messageId, ThreadInfo info) {
  std::lock_guard<std::mutex> lock(threadsMutex_);
  if (!threads_.count(messageId)) threadOrder_.push_back(messageId);
  threads_[messageId] = std::move(info);
  while (threadOrder_.size() > MAX_THREADS_KEPT) {
    threads_.erase(threadOrder_.front());
    threadOrder_.pop_front();
  }
  if (stateDir_.empty()) return;
  std::string content;
  for (const std::string& id : threadOrder_) {
    const ThreadInfo& t = threads_[id];
    content += id + "\t" + oneField(t.subject) + "\t";
    for (const std::string& r : t.references) content += r + " ";
    content += "\n";
  }
  writeFileAtomically(stateDir_ + "/threads.tsv", content);
}

bool EmailPlatform::findThread(const std::string& messageId, ThreadInfo* info) {
  std::lock_guard<std::mutex> lock(threadsMutex_);
  auto it = threads_.find(messageId);
  if (it == threads_.end()) return false;
  *info = it->second;
  return true;
}

}  // namespace chitin::channel::email
