# SPDX-License-Identifier: Apache-2.0
# Boundary: supervisor <-> channel worker (one process per configured channel account).
#
# The channel worker serves `ChannelWorker` as its bootstrap capability; the supervisor is the
# only client. The worker holds exactly one secret -- its account's credential, handed over in
# `start` and never in argv, environment or a file the worker can open -- and reaches exactly
# one platform, through the supervisor's egress broker (a SOCKS5 socket at /run/chitin/egress.sock,
# which admits only the host:port pairs configured for this account).
#
# Trust: the supervisor treats everything a channel worker says as attacker-controlled. In
# particular the (channel, account) of an inbound message is *which worker delivered it*: the
# supervisor knows that from the connection, and `InboundMessage` has no field to claim
# another. Ids and text are bounded and checked by the supervisor where they are used. The
# worker trusts the supervisor.

@0xc3a1f0d2b7e94a51;

$import "/capnp/c++.capnp".namespace("chitin::rpc");

struct ChannelSettings {
  # What a worker needs to run one account. Built by the supervisor from chitin.conf.
  kind @0 :Text;          # "telegram", "discord", "slack", "signal", "irc", "email", "whatsapp"
  account @1 :Text;       # "default" unless the owner names several accounts of one kind
  credential @2 :Data;    # the account's secret (bot token, password, ...); may be empty
  options @3 :List(Option);
  # Platform settings from the config, as strings: "apiRoot", "server", "port", "tls", "nick",
  # "channels", "imapHost", ... Each platform documents (and validates) its own keys; an
  # unknown key is an error naming it.
  maxAttachmentBytes @4 :UInt64;
  # Inbound attachments larger than this arrive with empty `data` (and their `size`); the
  # worker checks the platform's stated size before downloading. 0 = the default, 20 MiB
  # (chitin.conf `channels.max_attachment_bytes`).

  struct Option {
    key @0 :Text;
    value @1 :Text;
  }
}

struct Attachment {
  name @0 :Text;       # as the platform gave it; the supervisor sanitizes before saving
  mimeType @1 :Text;
  data @2 :Data;       # the bytes (inbound: capped by the worker at `maxAttachmentBytes`)
  size @3 :UInt64;     # the platform's stated size; data is empty when over the cap
}

enum ChatType {
  direct @0;
  group @1;
}

const maxInboundTextBytes :UInt32 = 65536;
# An InboundMessage's text at most (64 KiB); the worker cuts a longer one, saying so at its end.

const maxInboundNameBytes :UInt32 = 256;
# A sender's display name at most; the worker cuts a longer one.

const maxInboundAttachments :UInt32 = 16;
# Files in one InboundMessage at most; the worker leaves the rest out.

const maxInboundAttachmentBytes :UInt64 = 66060288;
# All attachment data of one InboundMessage together (63 MiB: with every other field at its
# bound the message stays under Cap'n Proto's default 64 MiB, which the worker's own RPC system
# refuses to send past). The worker leaves the data of the files past it out (their `size` stays,
# as for a file over `maxAttachmentBytes`); the supervisor reads a worker's connection with a
# traversal limit sized to this and kills a worker that sends more.

struct InboundMessage {
  chatId @0 :Text;        # where a reply goes (a DM's chat, a group, an IRC channel, an address)
  chatType @1 :ChatType;
  senderId @2 :Text;      # the platform's stable id for the sender (not a display name)
  senderName @3 :Text;    # display name, for people only
  messageId @4 :Text;     # the platform's id: deduplication key within (chatId)
  text @5 :Text;
  replyTo @6 :Text;       # the message id this one answers, if any
  mentioned @7 :Bool;     # group chats: the platform says the assistant was addressed
  attachments @8 :List(Attachment);  # maxInboundAttachments, their data maxInboundAttachmentBytes
  timestampMs @9 :Int64;  # the platform's time of the message, ms since the epoch
  threadId @10 :Text;     # Slack thread_ts, email References root: replies stay in the thread
}

struct OutboundMessage {
  chatId @0 :Text;
  text @1 :Text;          # Markdown; the worker converts it to the platform's format and chunks
  replyTo @2 :Text;
  threadId @3 :Text;
  attachments @4 :List(Attachment);
}

struct ChannelStatus {
  enum State {
    starting @0;
    connected @1;
    reconnecting @2;    # a transient failure; the worker retries with backoff
    loginRequired @3;   # WhatsApp: waiting for a QR scan or a pairing code
    failed @4;          # a fatal error (bad token, fatal close code): the worker stops trying
    stopped @5;
  }
  state @0 :State;
  detail @1 :Text;        # for people: "409: another poller is running", "401 Unauthorized"
  identity @2 :Text;      # who the account is on the platform: "@chitin_bot", "nick", address
  sinceMs @3 :Int64;      # when it entered this state
}

struct Capabilities {
  maxMessageChars @0 :UInt32;   # one platform message; the worker chunks longer text itself
  reactions @1 :Bool;
  typing @2 :Bool;
  attachments @3 :Bool;
}

interface InboundSink {
  # Served by the supervisor, one per worker; the worker's identity is this object.

  message @0 (message :InboundMessage) -> (accepted :Bool);
  # Returns once the supervisor has recorded the message id (or found it a duplicate:
  # accepted = false). Only then may the worker advance what it persists (a poll offset, an
  # IMAP UID), so a crash between the two redelivers and the supervisor drops the repeat.

  status @1 (status :ChannelStatus) -> ();

  login @2 (qr :Text, pairingCode :Text) -> ();
  # WhatsApp: a QR payload (or a pairing code) for the owner to scan, shown by `chitin channels
  # login` and the web chat.
}

interface ChannelWorker {
  start @0 (settings :ChannelSettings, sink :InboundSink) -> (capabilities :Capabilities);
  # Exactly once, first. The worker connects and begins delivering to `sink`. Throws (a
  # clear message naming the option) when the settings are invalid.

  send @1 (message :OutboundMessage) -> (messageIds :List(Text));
  # The platform ids of the messages posted (one per chunk or attachment). Waits out rate
  # limits (429, retry_after, Discord buckets) up to a bound; throws with the platform's
  # error otherwise.

  typing @2 (chatId :Text, on :Bool) -> ();
  # One typing notification (the supervisor refreshes it while a run is active). A no-op where
  # the platform has none.

  react @3 (chatId :Text, messageId :Text, emoji :Text) -> ();

  status @4 () -> (status :ChannelStatus);

  login @5 (phoneNumber :Text) -> ();
  # WhatsApp: begin a login; QR codes (or, with a phone number, a pairing code) arrive through
  # `InboundSink.login`. Elsewhere: throws "not supported".
}
