// SPDX-License-Identifier: Apache-2.0
// A fake of chitin's WhatsApp bridge in Node, for the end-to-end test through the real gateway
// and the sandboxed WhatsApp worker (tests/e2e/test_channel_whatsapp.py): the same typed JSON
// lines as workers/channel/whatsapp/bridge/bridge.mjs, written from the protocol comment at the
// top of that file, with a scripted phone behind it instead of WhatsApp.
// Runs in: tests only, inside the channel-whatsapp sandbox (the test installs this file as
// bridge.mjs in a worker directory of its own, mounted at /opt/chitin/whatsapp-bridge).
//
// Started by the adapter as `node ... bridge.mjs --state S --media M --egress E`. It can reach
// nothing but the sandbox, so the test drives it through the state directory S (the account's
// /state/whatsapp, on the host under state/channels/whatsapp/<account>/whatsapp/):
//   commands.jsonl  every command received, one JSON line each, after {"type":"_started"} per
//                   start (so a test counts restarts); outbound media carry their bytes as
//                   "data_b64" (the file is removed, as the bridge does)
//   inject/*.json   events to emit, in name order, polled every 20 ms after hello and removed; control
//                   events: {"type":"_exit","code":N} exits, {"type":"_scan"} links the phone
//                   (the QR was scanned or the pairing code typed); a "message" whose media has
//                   "data_b64" gets it written into M first, like a downloaded file
//   linked          present = linked: hello answers connecting + open, as with saved creds
// login.start answers ok, then a QR ("2@fake-qr,...") or, given a phone, the pairing code
// "FAKE2345"; the link is made by a `_scan`, not by the login itself.

import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, '')] = process.argv[i + 1];
const state = args.state;
const media = args.media;
if (!state || !media) {
  process.stderr.write('fake bridge: --state and --media are required\n');
  process.exit(2);
}
const ME = '15550000000:7@s.whatsapp.net';
const PAIRING_CODE = 'FAKE2345';
const inject = path.join(state, 'inject');
const linkedFile = path.join(state, 'linked');
fs.mkdirSync(inject, { recursive: true, mode: 0o700 });

const emit = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
const record = (command) => fs.appendFileSync(path.join(state, 'commands.jsonl'), `${JSON.stringify(command)}\n`);
let open = false;
let sent = 0;

function link() {
  fs.writeFileSync(linkedFile, '');
  open = true;
  emit({ type: 'connection', state: 'open', me: ME });
}

function poll() {
  let names = [];
  try {
    names = fs.readdirSync(inject).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return;
  }
  for (const name of names) {
    const file = path.join(inject, name);
    const event = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.rmSync(file, { force: true });
    if (event.type === '_exit') process.exit(event.code ?? 1);
    if (event.type === '_scan') {
      link();
      continue;
    }
    if (event.media?.data_b64 !== undefined) {
      const into = path.join(media, `in-${name.slice(0, -5)}`);
      fs.writeFileSync(into, Buffer.from(event.media.data_b64, 'base64'), { mode: 0o600 });
      delete event.media.data_b64;
      event.media.path = into;
    }
    emit(event);
  }
}

const commands = {
  hello() {
    emit({ type: 'hello', version: 1, baileys: 'fake' });
    // Nothing comes before hello: events wait in inject/ until now (as WhatsApp keeps messages
    // for a linked device that is offline).
    setInterval(poll, 20);
    if (fs.existsSync(linkedFile)) {
      emit({ type: 'connection', state: 'connecting' });
      open = true;
      emit({ type: 'connection', state: 'open', me: ME });
    } else {
      emit({ type: 'connection', state: 'loginRequired' });
    }
  },
  'login.start'(command) {
    if (open) throw new Error('already linked: log out first');
    emit({ type: 'connection', state: 'connecting' });
    if (command.phone) emit({ type: 'pairingCode', code: PAIRING_CODE });
    else emit({ type: 'qr', data: '2@fake-qr,Zm9v,YmFy,YmF6' });
  },
  send(command) {
    if (!open) throw new Error('WhatsApp is not connected');
    sent += 1;
    return { ids: [`3EB0FAKE${sent}`] };
  },
  typing() {
    if (!open) throw new Error('WhatsApp is not connected');
  },
  react() {
    if (!open) throw new Error('WhatsApp is not connected');
  },
  logout() {
    fs.rmSync(linkedFile, { force: true });
    open = false;
    emit({ type: 'connection', state: 'loggedOut', reason: 'logged out by the owner' });
  },
};

record({ type: '_started', argv: process.argv.slice(2) });
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  const command = JSON.parse(line);
  if (command.media?.path && fs.existsSync(command.media.path)) {
    command.media.data_b64 = fs.readFileSync(command.media.path).toString('base64');
    fs.rmSync(command.media.path, { force: true });
  }
  record(command);
  const handler = commands[command.type];
  try {
    if (!handler) throw new Error(`unknown command ${command.type}`);
    const value = handler(command);
    if (command.id !== undefined) emit({ type: 'result', id: command.id, ok: true, ...(value ?? {}) });
  } catch (err) {
    if (command.id !== undefined) emit({ type: 'result', id: command.id, ok: false, error: err.message });
  }
});
lines.on('close', () => process.exit(0));  // stdin closed: the adapter is gone
