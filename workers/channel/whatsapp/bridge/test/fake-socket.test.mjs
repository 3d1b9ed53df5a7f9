// SPDX-License-Identifier: Apache-2.0
// The real bridge (bridge.mjs, mapping.mjs, Baileys' own auth-state and message helpers) with
// makeWASocket replaced by a scripted fake socket: QR and pairing-code login, saved
// credentials, jid/participant/LID mapping, mentions, quotes, media, and what the bridge asks
// the socket to send.
// Runs in: tests (node --test); no network.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import test from 'node:test';

import * as realBaileys from 'baileys';
import { runBridge } from '../bridge.mjs';

const ME = { id: '15550000000:7@s.whatsapp.net', lid: '99990000:7@lid', name: 'chitin' };
const ALICE_PN = '15551110000@s.whatsapp.net';
const ALICE_LID = '88881111@lid';
const GROUP = '120363000000000001@g.us';

// One bridge with a fake socket; `events` collects what it writes, in order.
function start({ linkedAlready = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-bridge-test-'));
  const stateDir = path.join(dir, 'state');
  const mediaDir = path.join(dir, 'media');
  fs.mkdirSync(mediaDir);
  const input = new PassThrough();
  const output = new PassThrough();
  const events = [];
  const waiters = [];
  const sockets = [];
  const exits = [];
  let buffered = '';
  output.on('data', (chunk) => {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      events.push(JSON.parse(buffered.slice(0, newline)));
      buffered = buffered.slice(newline + 1);
      for (const w of [...waiters]) w();
    }
  });
  const makeWASocket = (config) => {
    const sock = {
      config,
      ev: new EventEmitter(),
      user: undefined,
      sent: [],
      presence: [],
      pairingRequests: [],
      loggedOut: false,
      async sendMessage(jid, content, options) {
        this.sent.push({ jid, content, options });
        return { key: { remoteJid: jid, id: `OUT${this.sent.length}`, fromMe: true }, message: {} };
      },
      async sendPresenceUpdate(kind, jid) {
        this.presence.push([kind, jid]);
      },
      async requestPairingCode(phone) {
        this.pairingRequests.push(phone);
        return 'ABCD2345';
      },
      async logout() {
        this.loggedOut = true;
      },
      updateMediaMessage: async (m) => m,
    };
    sockets.push(sock);
    return sock;
  };
  const downloads = [];
  const baileys = {
    ...realBaileys,
    version: 'fake',
    makeWASocket,
    async downloadMediaMessage(message) {
      downloads.push(message.key.id);
      return Buffer.from('PNGBYTES');
    },
  };
  if (linkedAlready) {
    fs.mkdirSync(path.join(stateDir, 'auth'), { recursive: true });
    const creds = realBaileys.initAuthCreds();
    creds.me = { id: ME.id, name: 'chitin' };
    fs.writeFileSync(path.join(stateDir, 'auth', 'creds.json'),
      JSON.stringify(creds, realBaileys.BufferJSON.replacer));
  }
  const done = runBridge({ baileys, input, output, stateDir, mediaDir, exit: (code) => exits.push(code) });
  const send = (command) => input.write(`${JSON.stringify(command)}\n`);
  const waitFor = (predicate, what) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}: ${JSON.stringify(events)}`)), 3000);
      const check = () => {
        const found = events.find(predicate);
        if (found) {
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(check), 1);
          resolve(found);
        }
      };
      waiters.push(check);
      check();
    });
  const stop = async () => {
    input.end();
    await done;
    fs.rmSync(dir, { recursive: true, force: true });
  };
  return { dir, stateDir, mediaDir, events, sockets, exits, downloads, send, waitFor, stop };
}

async function openConnection(b) {
  const sock = b.sockets.at(-1);
  sock.user = ME;
  sock.ev.emit('connection.update', { connection: 'open' });
  await b.waitFor((e) => e.type === 'connection' && e.state === 'open', 'open');
  return sock;
}

function upsert(sock, messages, type = 'notify') {
  sock.ev.emit('messages.upsert', { messages, type });
}

test('QR login: loginRequired, then the QR, saved credentials, open', async () => {
  const b = start();
  b.send({ type: 'hello', maxMediaBytes: 1000 });
  const hello = await b.waitFor((e) => e.type === 'hello', 'hello');
  assert.equal(hello.version, 1);
  await b.waitFor((e) => e.type === 'connection' && e.state === 'loginRequired', 'loginRequired');
  assert.equal(b.sockets.length, 0, 'no socket before the owner asks for a login');
  b.send({ type: 'login.start' });
  await b.waitFor((e) => e.type === 'connection' && e.state === 'connecting', 'connecting');
  const sock = b.sockets[0];
  assert.equal(sock.config.printQRInTerminal, false);
  sock.ev.emit('connection.update', { qr: '2@QRDATA,KEY' });
  assert.equal((await b.waitFor((e) => e.type === 'qr', 'qr')).data, '2@QRDATA,KEY');
  sock.config.auth.creds.me = { id: ME.id, name: 'chitin' };
  sock.ev.emit('creds.update', sock.config.auth.creds);
  await openConnection(b);
  await new Promise((r) => setTimeout(r, 50));  // saveCreds writes asynchronously
  const creds = JSON.parse(fs.readFileSync(path.join(b.stateDir, 'auth', 'creds.json'), 'utf8'));
  assert.equal(creds.me.id, ME.id, 'credentials are kept under --state/auth');
  await b.stop();
});

test('pairing code: login.start with a phone number asks for a code instead of showing the QR', async () => {
  const b = start();
  b.send({ type: 'hello', maxMediaBytes: 0 });
  await b.waitFor((e) => e.state === 'loginRequired', 'loginRequired');
  b.send({ type: 'login.start', phone: '+1 555 000-0000' });
  await b.waitFor((e) => e.state === 'connecting', 'connecting');
  b.sockets[0].ev.emit('connection.update', { qr: 'IGNORED' });
  assert.equal((await b.waitFor((e) => e.type === 'pairingCode', 'code')).code, 'ABCD2345');
  assert.deepEqual(b.sockets[0].pairingRequests, ['15550000000']);
  assert.equal(b.events.filter((e) => e.type === 'qr').length, 0);
  await b.stop();
});

test('messages: DM by LID with the number as Alt, group mentions by LID and by reply, skips', async () => {
  const b = start({ linkedAlready: true });
  b.send({ type: 'hello', maxMediaBytes: 1000 });
  await b.waitFor((e) => e.state === 'connecting', 'reconnect with saved creds');
  const sock = await openConnection(b);
  upsert(sock, [
    { key: { remoteJid: 'status@broadcast', id: 'S1', participant: ALICE_PN }, message: { conversation: 'status' } },
    { key: { remoteJid: ALICE_PN, id: 'R1' }, message: { reactionMessage: { text: '👍', key: { id: 'X' } } } },
    { key: { remoteJid: ALICE_LID, remoteJidAlt: ALICE_PN, id: 'D1', fromMe: false }, pushName: 'Alice',
      messageTimestamp: 1700000000, message: { conversation: 'hi there' } },
    { key: { remoteJid: GROUP, participant: ALICE_LID, id: 'G1' }, messageTimestamp: 1700000001,
      message: { extendedTextMessage: { text: '@99990000 lunch?', contextInfo: { mentionedJid: ['99990000@lid'] } } } },
    { key: { remoteJid: GROUP, participant: ALICE_LID, participantAlt: ALICE_PN, id: 'G2' },
      message: { extendedTextMessage: { text: 'yes',
        contextInfo: { stanzaId: 'OUT9', participant: '15550000000@s.whatsapp.net', quotedMessage: { conversation: 'x' } } } } },
    { key: { remoteJid: GROUP, participant: ALICE_PN, id: 'G3' },
      message: { extendedTextMessage: { text: 'not you', contextInfo: { mentionedJid: [ALICE_PN] } } } },
    { key: { remoteJid: GROUP, participant: ALICE_PN, id: 'G4' },
      message: { ephemeralMessage: { message: { imageMessage: { caption: 'look', mimetype: 'image/png', fileLength: 8 } } } } },
  ]);
  upsert(sock, [{ key: { remoteJid: ALICE_PN, id: 'H1' }, message: { conversation: 'history' } }], 'append');
  const g4 = await b.waitFor((e) => e.type === 'message' && e.id === 'G4', 'G4');
  const messages = b.events.filter((e) => e.type === 'message');
  assert.deepEqual(messages.map((m) => m.id), ['D1', 'G1', 'G2', 'G3', 'G4']);
  const [d1, g1, g2, g3] = messages;
  assert.equal(d1.jid, ALICE_LID, 'replies go back to the jid Baileys gave');
  assert.equal(d1.sender, '15551110000', 'the phone number when WhatsApp tells it');
  assert.equal(d1.pushName, 'Alice');
  assert.equal(d1.group, false);
  assert.equal(d1.ts, 1700000000);
  assert.equal(g1.sender, '88881111@lid', 'a hidden number leaves the LID');
  assert.equal(g1.participant, ALICE_LID);
  assert.equal(g1.group, true);
  assert.equal(g1.mentioned, true, 'our LID in mentionedJid');
  assert.deepEqual(g1.mentions, ['99990000@lid']);
  assert.equal(g2.mentioned, true, 'a reply to our message');
  assert.deepEqual(g2.quoted, { id: 'OUT9', participant: '15550000000@s.whatsapp.net' });
  assert.equal(g2.sender, '15551110000');
  assert.equal(g3.mentioned, false);
  assert.equal(g4.text, 'look');
  assert.equal(g4.media.mime, 'image/png');
  assert.equal(g4.media.name, 'image.png');
  assert.equal(g4.media.size, 8);
  assert.equal(path.dirname(g4.media.path), b.mediaDir);
  assert.equal(fs.readFileSync(g4.media.path, 'utf8'), 'PNGBYTES');
  assert.deepEqual(b.downloads, ['G4']);
  await b.stop();
});

test('commands: send with a quote and with media, typing, react with the cached key; errors as results', async () => {
  const b = start({ linkedAlready: true });
  b.send({ type: 'hello', maxMediaBytes: 1000 });
  await b.waitFor((e) => e.state === 'connecting', 'connecting');
  b.send({ type: 'send', id: 1, jid: ALICE_PN, text: 'too early' });
  const early = await b.waitFor((e) => e.type === 'result' && e.id === 1, 'result 1');
  assert.deepEqual([early.ok, early.error], [false, 'WhatsApp is not connected']);
  const sock = await openConnection(b);
  upsert(sock, [{ key: { remoteJid: GROUP, participant: ALICE_LID, id: 'G1' }, message: { conversation: 'hi all' } }]);
  await b.waitFor((e) => e.type === 'message', 'message');

  b.send({ type: 'send', id: 2, jid: GROUP, text: 'reply', replyTo: 'G1' });
  const sent = await b.waitFor((e) => e.type === 'result' && e.id === 2, 'result 2');
  assert.deepEqual(sent.ids, ['OUT1']);
  assert.deepEqual(sock.sent[0].content, { text: 'reply' });
  assert.equal(sock.sent[0].options.quoted.key.id, 'G1', 'the cached message is quoted');

  const file = path.join(b.mediaDir, 'out-1');
  fs.writeFileSync(file, 'IMG');
  b.send({ type: 'send', id: 3, jid: GROUP, text: 'chart', media: { path: file, mime: 'image/png', name: 'c.png' } });
  await b.waitFor((e) => e.type === 'result' && e.id === 3, 'result 3');
  assert.equal(sock.sent[1].content.image.toString(), 'IMG');
  assert.equal(sock.sent[1].content.caption, 'chart');
  assert.equal(fs.existsSync(file), false, 'the outbound file is removed once read');

  b.send({ type: 'send', id: 4, jid: GROUP, text: '', media: { path: '/etc/passwd', mime: 'text/plain', name: 'p' } });
  assert.match((await b.waitFor((e) => e.type === 'result' && e.id === 4, 'result 4')).error, /outside the media directory/);

  b.send({ type: 'typing', id: 5, jid: GROUP, on: true });
  b.send({ type: 'typing', id: 6, jid: GROUP, on: false });
  await b.waitFor((e) => e.type === 'result' && e.id === 6, 'result 6');
  assert.deepEqual(sock.presence, [['composing', GROUP], ['paused', GROUP]]);

  b.send({ type: 'react', id: 7, jid: GROUP, key: { id: 'G1' }, emoji: '👀' });
  await b.waitFor((e) => e.type === 'result' && e.id === 7, 'result 7');
  assert.deepEqual(sock.sent[2].content.react, { text: '👀', key: { remoteJid: GROUP, participant: ALICE_LID, id: 'G1' } });
  b.send({ type: 'nope', id: 8 });
  assert.equal((await b.waitFor((e) => e.id === 8, 'result 8')).error, 'unknown command nope');
  await b.stop();
});

test('connection loss exits for a restart; a logout from the phone wipes the credentials and waits', async () => {
  const b = start({ linkedAlready: true });
  b.send({ type: 'hello', maxMediaBytes: 0 });
  await b.waitFor((e) => e.state === 'connecting', 'connecting');
  let sock = await openConnection(b);
  sock.ev.emit('connection.update', { connection: 'close',
    lastDisconnect: { error: Object.assign(new Error('Stream Errored'), { output: { statusCode: 515 } }) } });
  const close = await b.waitFor((e) => e.state === 'close', 'close');
  assert.match(close.reason, /Stream Errored \(515\)/);
  assert.deepEqual(b.exits, [3]);

  sock.ev.emit('connection.update', { connection: 'close',
    lastDisconnect: { error: Object.assign(new Error('logged out'), { output: { statusCode: 401 } }) } });
  await b.waitFor((e) => e.state === 'loggedOut', 'loggedOut');
  assert.deepEqual(fs.readdirSync(path.join(b.stateDir, 'auth')), [], 'the credentials are gone');
  await b.stop();
});
