// SPDX-License-Identifier: Apache-2.0
// A Baileys message (WAMessage) as the bridge's `message` event: who wrote it, where, whether
// it addresses us, what it quotes, what media it carries.
// Runs in: worker (sandboxed), inside the WhatsApp bridge (Node).
//
// Identities (README "Channels"): the chat is the remote jid as Baileys gives it (a group's
// "<id>@g.us", a person's "<number>@s.whatsapp.net" or "<lid>@lid"): replies go back to exactly
// that. The sender is the person's phone number ("15551234567") when WhatsApp tells it, from
// the jid or its `*Alt` twin; otherwise "<lid>@lid", the stable but opaque id WhatsApp uses for
// people whose number it hides. The same person can appear under both only if WhatsApp gives
// the number on one message and withholds it on another, which it does not do within a chat.

import {
  getContentType,
  isJidBroadcast,
  isJidGroup,
  isJidNewsletter,
  isLidUser,
  isPnUser,
  jidDecode,
  normalizeMessageContent,
} from 'baileys';

const MEDIA_TYPES = {
  imageMessage: 'image',
  videoMessage: 'video',
  audioMessage: 'audio',
  documentMessage: 'document',
};
const TEXT_TYPES = new Set(['conversation', 'extendedTextMessage', ...Object.keys(MEDIA_TYPES)]);

function toNumber(value) {
  if (value === null || value === undefined) return 0;
  if (typeof value === 'object' && typeof value.toNumber === 'function') return value.toNumber();
  const n = Number(value);
  return Number.isFinite(n) ? n : 0;
}

function userOf(jid) {
  return jidDecode(jid)?.user ?? '';
}

// Our own ids from sock.user ({id: "15551234567:12@s.whatsapp.net", lid: "1234:12@lid"}).
export function ownIds(user) {
  return { pn: user?.id ? userOf(user.id) : '', lid: user?.lid ? userOf(user.lid) : '' };
}

function isMe(jid, me) {
  if (typeof jid !== 'string') return false;
  const user = userOf(jid);
  if (!user) return false;
  return (isPnUser(jid) && user === me.pn) || (isLidUser(jid) && user === me.lid);
}

export function senderId(primary, alternative) {
  const pn = isPnUser(primary) ? primary : isPnUser(alternative) ? alternative : '';
  if (pn) return userOf(pn);
  const lid = isLidUser(primary) ? primary : isLidUser(alternative) ? alternative : '';
  return lid ? `${userOf(lid)}@lid` : '';
}

// The event for one WAMessage, or null when it is nothing to answer (our own, status updates,
// newsletters, reactions, protocol and system messages, stickers, polls, empty).
export function mapMessage(message, me) {
  const key = message?.key;
  const chat = key?.remoteJid;
  if (!key || typeof chat !== 'string' || typeof key.id !== 'string') return null;
  if (isJidBroadcast(chat) || isJidNewsletter(chat)) return null;
  const content = normalizeMessageContent(message.message);
  if (!content) return null;
  const type = getContentType(content);
  if (!TEXT_TYPES.has(type)) return null;
  const body = content[type];
  const group = Boolean(isJidGroup(chat));
  const sender = group ? senderId(key.participant, key.participantAlt) : senderId(chat, key.remoteJidAlt);
  if (!sender) return null;

  const text =
    type === 'conversation' ? content.conversation ?? '' :
    type === 'extendedTextMessage' ? body?.text ?? '' :
    body?.caption ?? '';
  const context = typeof body === 'object' ? body?.contextInfo : undefined;
  const mentions = Array.isArray(context?.mentionedJid)
    ? context.mentionedJid.filter((j) => typeof j === 'string').slice(0, 64)
    : [];
  const quoted = context?.stanzaId
    ? { id: String(context.stanzaId), participant: context.participant ?? '' }
    : null;
  const mentioned = mentions.some((j) => isMe(j, me)) || (quoted !== null && isMe(quoted.participant, me));

  let media = null;
  if (MEDIA_TYPES[type]) {
    const kind = MEDIA_TYPES[type];
    const mime = typeof body.mimetype === 'string' ? body.mimetype.split(';')[0].trim() : '';
    const extension = mime.includes('/') ? mime.split('/')[1].replace(/[^a-z0-9]/gi, '') : 'bin';
    media = {
      kind,
      mime: mime || 'application/octet-stream',
      name: typeof body.fileName === 'string' && body.fileName ? body.fileName : `${kind}.${extension || 'bin'}`,
      size: toNumber(body.fileLength),
      path: '',
    };
  }
  if (!text && !media) return null;
  return {
    type: 'message',
    jid: chat,
    participant: group ? key.participant ?? '' : '',
    sender,
    pushName: typeof message.pushName === 'string' ? message.pushName : '',
    id: key.id,
    ts: toNumber(message.messageTimestamp),
    text,
    group,
    mentions,
    mentioned,
    quoted,
    fromMe: Boolean(key.fromMe),
    media,
  };
}
