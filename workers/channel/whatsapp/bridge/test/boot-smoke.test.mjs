// SPDX-License-Identifier: Apache-2.0
// Real Baileys, real bridge process: its WebSocket reaches a loopback WSS server only through a
// SOCKS5 unix socket (test/socks5_unix.py standing in for chitin's egress broker), with TLS to
// the server inside the bridge, and the server sees WhatsApp's "WA" prologue. Also prints the
// idle bridge's private memory.
// Runs in: tests (node --test); loopback only.

import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import test from 'node:test';
import { fileURLToPath } from 'node:url';

import { WebSocketServer } from 'ws';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = process.env.CHITIN_PYTHON ?? '/usr/bin/python3';

function privateKiB(pid) {
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? 0);
  return field('Private_Clean') + field('Private_Dirty');
}

test('the bridge reaches WhatsApp Web only through the SOCKS5 socket and speaks the WA prologue', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wa-boot-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });

  const server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) });
  const wss = new WebSocketServer({ server, path: '/ws/chat' });
  const firstFrame = new Promise((resolve) => {
    wss.on('connection', (ws, request) => ws.once('message', (data) => resolve({ data, request })));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const port = server.address().port;

  const socketPath = path.join(dir, 'egress.sock');
  const broker = spawn(PYTHON, [path.join(HERE, 'socks5_unix.py'), socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => broker.kill('SIGKILL'));
  const brokerLines = readline.createInterface({ input: broker.stdout });
  const tunnels = [];
  await new Promise((resolve) => brokerLines.on('line', (line) => (line === 'ready' ? resolve() : tunnels.push(line))));

  fs.mkdirSync(path.join(dir, 'media'));
  // The flags the adapter gives Node (whatsapp-channel.c++), so the memory figure is the real one.
  const bridge = spawn(process.execPath, ['--max-old-space-size=256', '--max-semi-space-size=2',
    '--disable-wasm-trap-handler', path.join(HERE, '..', 'bridge.mjs'),
    '--state', path.join(dir, 'state'), '--media', path.join(dir, 'media'), '--egress', socketPath,
    '--ca', cert, '--ws-url', `wss://localhost:${port}/ws/chat`],
  { stdio: ['pipe', 'pipe', 'inherit'], env: {} });
  t.after(() => bridge.kill('SIGKILL'));
  const events = [];
  readline.createInterface({ input: bridge.stdout }).on('line', (line) => events.push(JSON.parse(line)));
  bridge.stdin.write(`${JSON.stringify({ type: 'hello', maxMediaBytes: 1024 })}\n`);
  bridge.stdin.write(`${JSON.stringify({ type: 'login.start' })}\n`);

  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(
      `no WhatsApp frame within 15 s; bridge events ${JSON.stringify(events)}, tunnels ${tunnels}`)), 15000);
  });
  const { data, request } = await Promise.race([firstFrame, timeout]).finally(() => clearTimeout(timer));
  assert.equal(Buffer.from(data).subarray(0, 2).toString(), 'WA', 'the Noise prologue starts with "WA"');
  assert.deepEqual(tunnels, [`CONNECT localhost:${port}`], 'one tunnel, by name: the broker resolves it');
  assert.equal(request.socket.remoteAddress, '127.0.0.1');
  assert.ok(events.some((e) => e.type === 'hello'));
  assert.ok(events.some((e) => e.type === 'connection' && e.state === 'connecting'));

  await new Promise((resolve) => setTimeout(resolve, 1000));  // let start-up garbage settle
  const kib = privateKiB(bridge.pid);
  t.diagnostic(`bridge private memory while connecting: ${(kib / 1024).toFixed(1)} MiB`);
  assert.ok(kib > 0);
});
