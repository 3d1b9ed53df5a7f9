// SPDX-License-Identifier: Apache-2.0
// The WhatsApp bridge: Baileys (WhatsApp Web multi-device) behind typed JSON lines on
// stdin/stdout, for chitin's C++ WhatsApp adapter, which runs it in its own sandbox.
// Runs in: worker (sandboxed), a child process of chitin-worker-channel-whatsapp.
//
// Protocol (one JSON object per line; `id` pairs a command with its `result`):
//   in:  hello{maxMediaBytes}  login.start{phone?}  send{id,jid,text,replyTo?,media?{path,mime,name}}
//        typing{id,jid,on}  react{id,jid,key{id},emoji}  logout{id}
//   out: hello{version,baileys}  connection{state: loginRequired|connecting|open|close|loggedOut,
//        reason?, me?}  qr{data}  pairingCode{code}  message{...mapping.mjs}  result{id,ok,ids?,error?}
// The bridge exits after a connection closes for any reason but a logout; the adapter starts a
// new one with backoff, which reconnects with the saved credentials. Auth state lives only
// under --state (useMultiFileAuthState); media files only under --media, which the adapter
// owns: inbound ones are written there for it to read, outbound ones read from there.

import fs from 'node:fs/promises';
import path from 'node:path';
import readline from 'node:readline';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';

import { mapMessage, ownIds } from './mapping.mjs';

export const PROTOCOL_VERSION = 1;
const CACHE_SIZE = 500;  // recent messages kept for quoting and reacting

// Baileys wants a pino-shaped logger; warnings and errors go to stderr, which the adapter
// passes on to the supervisor's log. stdout carries the protocol only.
function makeLogger(levelName) {
  const order = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 };
  const logger = { level: levelName, child: () => logger };
  for (const [name, value] of Object.entries(order)) {
    logger[name] = (object, message) => {
      if (value < order[logger.level]) return;
      const text = typeof object === 'string' ? object : message ?? object?.err?.message ?? '';
      process.stderr.write(`whatsapp-bridge ${name}: ${text}\n`);
    };
  }
  return logger;
}

export async function runBridge({ baileys, input, output, stateDir, mediaDir, socketOptions = {}, exit }) {
  const logger = makeLogger('warn');
  const emit = (event) => output.write(`${JSON.stringify(event)}\n`);
  const authDir = path.join(stateDir, 'auth');
  const cache = new Map();
  let sock = null;
  let me = { pn: '', lid: '' };
  let open = false;
  let maxMediaBytes = 0;
  let inbound = Promise.resolve();  // messages are emitted in arrival order

  const remember = (message) => {
    cache.set(message.key.id, message);
    if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value);
  };

  // Logging out forgets the link: the files go, the directory stays (the sandbox grants
  // unlink, not rmdir).
  const clearAuth = async () => {
    const names = await fs.readdir(authDir).catch(() => []);
    await Promise.all(names.map((name) => fs.rm(path.join(authDir, name), { force: true })));
  };

  const linked = async () => {
    const { state } = await baileys.useMultiFileAuthState(authDir);
    return Boolean(state.creds?.me?.id);
  };

  async function receive(message) {
    const event = mapMessage(message, me);
    if (!event) return;
    remember(message);
    if (event.media && event.media.size <= maxMediaBytes) {
      try {
        const bytes = await baileys.downloadMediaMessage(message, 'buffer', {}, {
          logger,
          reuploadRequest: sock.updateMediaMessage,
        });
        if (bytes.length <= maxMediaBytes) {
          const file = path.join(mediaDir, `in-${randomBytes(8).toString('hex')}`);
          await fs.writeFile(file, bytes, { mode: 0o600 });
          event.media.path = file;
          event.media.size = bytes.length;
        }
      } catch (err) {
        logger.warn(`media of ${event.id} not downloaded: ${err.message}`);
      }
    }
    emit(event);
  }

  async function connect(phone) {
    await fs.mkdir(authDir, { recursive: true, mode: 0o700 });
    const { state, saveCreds } = await baileys.useMultiFileAuthState(authDir);
    let codeRequested = false;
    emit({ type: 'connection', state: 'connecting' });
    sock = baileys.makeWASocket({
      auth: state,
      logger,
      browser: baileys.Browsers.ubuntu('chitin'),
      printQRInTerminal: false,
      markOnlineOnConnect: false,
      syncFullHistory: false,
      getMessage: async (key) => cache.get(key.id)?.message,
      ...socketOptions,
    });
    sock.ev.on('creds.update', saveCreds);
    sock.ev.on('connection.update', async (update) => {
      if (update.qr) {
        if (phone && !codeRequested) {
          codeRequested = true;
          try {
            emit({ type: 'pairingCode', code: await sock.requestPairingCode(phone.replace(/\D/g, '')) });
          } catch (err) {
            logger.error(`pairing code request failed: ${err.message}`);
            emit({ type: 'qr', data: update.qr });
          }
        } else if (!phone) {
          emit({ type: 'qr', data: update.qr });
        }
      }
      if (update.connection === 'open') {
        open = true;
        me = ownIds(sock.user);
        emit({ type: 'connection', state: 'open', me: sock.user?.id ?? '' });
      } else if (update.connection === 'close') {
        open = false;
        const status = update.lastDisconnect?.error?.output?.statusCode;
        if (status === baileys.DisconnectReason.loggedOut) {
          await clearAuth();
          sock = null;
          emit({ type: 'connection', state: 'loggedOut', reason: 'logged out from the phone' });
          emit({ type: 'connection', state: 'loginRequired' });
          return;
        }
        const reason = update.lastDisconnect?.error?.message ?? 'connection closed';
        emit({ type: 'connection', state: 'close', reason: `${reason} (${status ?? 'no status'})` });
        exit(3);  // the adapter restarts the bridge with backoff
      }
    });
    sock.ev.on('messages.upsert', ({ messages, type }) => {
      if (type !== 'notify') return;  // history and our own echoes arrive as 'append'
      for (const message of messages) inbound = inbound.then(() => receive(message));
    });
  }

  const requireOpen = () => {
    if (!sock || !open) throw new Error('WhatsApp is not connected');
  };

  async function mediaContent(media, text) {
    const file = path.resolve(String(media.path));
    if (path.dirname(file) !== path.resolve(mediaDir)) throw new Error('media path outside the media directory');
    const bytes = await fs.readFile(file);
    await fs.rm(file, { force: true });
    const mimetype = String(media.mime || 'application/octet-stream');
    const caption = text || undefined;
    if (mimetype.startsWith('image/')) return { image: bytes, mimetype, caption };
    if (mimetype.startsWith('audio/')) return { audio: bytes, mimetype };
    // Video and everything else as a document: no ffmpeg thumbnails (they would exec a shell).
    return { document: bytes, mimetype, fileName: String(media.name || 'file'), caption };
  }

  const commands = {
    async hello(command) {
      maxMediaBytes = Number(command.maxMediaBytes) || 0;
      emit({ type: 'hello', version: PROTOCOL_VERSION, baileys: baileys.version ?? '' });
      if (await linked()) await connect();
      else emit({ type: 'connection', state: 'loginRequired' });
    },
    async 'login.start'(command) {
      if (sock && open) throw new Error('already linked: log out first');
      await connect(command.phone ? String(command.phone) : '');
    },
    async send(command) {
      requireOpen();
      const text = String(command.text ?? '');
      const content = command.media ? await mediaContent(command.media, text) : { text };
      const quoted = command.replyTo ? cache.get(String(command.replyTo)) : undefined;
      const sent = await sock.sendMessage(String(command.jid), content, quoted ? { quoted } : {});
      if (sent) remember(sent);
      const ids = [sent?.key?.id ?? ''];
      if (command.media && content.audio && text) {  // audio has no caption: the text follows
        const more = await sock.sendMessage(String(command.jid), { text });
        ids.push(more?.key?.id ?? '');
      }
      return { ids };
    },
    async typing(command) {
      requireOpen();
      await sock.sendPresenceUpdate(command.on ? 'composing' : 'paused', String(command.jid));
    },
    async react(command) {
      requireOpen();
      const id = String(command.key?.id ?? '');
      const key = cache.get(id)?.key ?? { remoteJid: String(command.jid), id, fromMe: false };
      await sock.sendMessage(String(command.jid), { react: { text: String(command.emoji), key } });
    },
    async logout() {
      if (sock) await sock.logout();
      await clearAuth();
      sock = null;
      open = false;
      emit({ type: 'connection', state: 'loggedOut', reason: 'logged out by the owner' });
    },
  };

  const lines = readline.createInterface({ input, crlfDelay: Infinity });
  for await (const line of lines) {
    let command;
    try {
      command = JSON.parse(line);
    } catch {
      logger.error('a command line that is not JSON');
      continue;
    }
    const handler = commands[command?.type];
    const id = command?.id;
    if (!handler) {
      if (id !== undefined) emit({ type: 'result', id, ok: false, error: `unknown command ${command?.type}` });
      continue;
    }
    // One command at a time, in order (the adapter sends them one at a time anyway); messages
    // keep arriving meanwhile through the socket's events.
    try {
      const value = await handler(command);
      if (id !== undefined) emit({ type: 'result', id, ok: true, ...(value ?? {}) });
    } catch (err) {
      if (id !== undefined) emit({ type: 'result', id, ok: false, error: String(err?.message ?? err) });
    }
  }
  exit(0);  // stdin closed: the adapter is gone
}

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const required of ['state', 'media']) {
    if (!args[required]) throw new Error(`--${required} is required`);
  }
  return args;
}

async function main() {
  console.log = console.error;  // nothing but protocol lines on stdout
  const args = parseArgs(process.argv.slice(2));
  const baileys = await import('baileys');
  const { version } = JSON.parse(await fs.readFile(new URL('./node_modules/baileys/package.json', import.meta.url)));
  const socketOptions = {};
  if (args.egress) {
    const { installEgress } = await import('./egress.mjs');
    const ca = args.ca ? await fs.readFile(args.ca) : undefined;
    const { httpsAgent, httpAgent } = installEgress(args.egress, { ca });
    socketOptions.agent = args['ws-url']?.startsWith('ws:') ? httpAgent : httpsAgent;
    socketOptions.fetchAgent = httpsAgent;
  } else {
    throw new Error('--egress SOCKET is required: the bridge has no other way out');
  }
  if (args['ws-url']) socketOptions.waWebSocketUrl = args['ws-url'];
  await runBridge({
    baileys: { ...baileys, makeWASocket: baileys.makeWASocket ?? baileys.default, version },
    input: process.stdin,
    output: process.stdout,
    stateDir: args.state,
    mediaDir: args.media,
    socketOptions,
    exit: (code) => process.exit(code),
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((err) => {
    process.stderr.write(`whatsapp-bridge: ${err.stack ?? err}\n`);
    process.exit(2);
  });
}
