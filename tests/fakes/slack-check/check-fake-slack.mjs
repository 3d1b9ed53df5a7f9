// SPDX-License-Identifier: Apache-2.0
// Checks tests/fakes/fake_slack.py with Slack's own Node SDK (@slack/socket-mode and
// @slack/web-api, pinned in package-lock.json): if the fake misread the documentation in a way
// the SDK depends on, this fails.
// Runs in: tests only. Usage: node check-fake-slack.mjs PYTHON FAKE_SLACK_PY
//
// The Socket Mode client connects with a single-use URL, gets events and acks them; an event
// left unacknowledged comes back with retry_attempt 1 and the same event_id; `disconnect`
// makes it reconnect with a fresh URL. The Web API client posts in a thread, reacts, uploads a
// file in the three steps, waits out a 429, and gets ok:false errors as exceptions. Prints
// "N passed, 0 failed".

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { SocketModeClient, LogLevel } from '@slack/socket-mode';
import { WebClient } from '@slack/web-api';

const [python, fakeScript] = process.argv.slice(2);
const APP_TOKEN = 'xapp-1-check';
const BOT_TOKEN = 'xoxb-check';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(predicate, what, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'fake-slack-check-'));
const portFile = join(dir, 'port');
const fake = spawn(python, [fakeScript, '--port', '0', '--port-file', portFile,
  '--app-token', APP_TOKEN, '--bot-token', BOT_TOKEN], { stdio: 'inherit' });
let passed = 0;
let socket;
try {
  await waitFor(() => existsSync(portFile), 'the fake to listen');
  const port = Number(readFileSync(portFile, 'utf8'));
  const base = `http://127.0.0.1:${port}`;
  const control = async (action, body = {}) => {
    const r = await fetch(`${base}/_control/${action}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    return r.json();
  };
  const state = () => control('state');
  await control('config', { ack_timeout: 0.5 });
  const slackApiUrl = `${base}/api/`;

  // Web API identity.
  const web = new WebClient(BOT_TOKEN, { slackApiUrl, logLevel: LogLevel.ERROR });
  const auth = await web.auth.test();
  assert.equal(auth.user_id, 'U0BOT');
  passed++;

  // Socket Mode: connect, receive, ack.
  // clientPingTimeout also sets the SDK's reconnect delay (5 s by default).
  socket = new SocketModeClient({ appToken: APP_TOKEN, logLevel: LogLevel.ERROR,
    clientPingTimeout: 1000, clientOptions: { slackApiUrl } });
  const events = [];
  let ackNext = true;
  socket.on('message', async ({ event, body, ack, retry_num }) => {
    events.push({ event, event_id: body.event_id, retry_num });
    if (ackNext) await ack();
  });
  await socket.start();
  const first = await control('event', { event: { type: 'message', channel: 'D0DM', user: 'U1',
    text: 'hello', channel_type: 'im' } });
  await waitFor(() => events.length === 1, 'the first event');
  assert.equal(events[0].event.text, 'hello');
  await waitFor(async () => (await state()).log.some((r) => r.kind === 'ack'
    && r.envelope_id === first.envelope_id), 'the ack');
  passed++;

  // Not acknowledged: redelivered with retry_attempt 1 and the same event_id.
  ackNext = false;
  const second = await control('event', { event: { type: 'message', channel: 'D0DM', user: 'U1',
    text: 'again?', channel_type: 'im' } });
  await waitFor(() => events.length === 3, 'the redelivery', 5000);
  assert.equal(events[2].event_id, second.event_id);
  assert.equal(events[2].retry_num, 1);
  ackNext = true;
  passed++;

  // disconnect (refresh_requested): the SDK reconnects with a fresh single-use URL.
  await control('disconnect', { reason: 'refresh_requested' });
  await waitFor(async () => {
    const s = await state();
    return s.connections.length === 2 && s.connected;
  }, 'the reconnect');
  const s = await state();
  assert.notEqual(s.connections[0].ticket, s.connections[1].ticket);
  assert.ok(s.log.some((r) => r.kind === 'socket_refused') === false);
  passed++;

  // chat.postMessage in a thread, reactions.add, an ok:false error.
  const posted = await web.chat.postMessage({ channel: 'C0GROUP', text: '*hi*', thread_ts: first.ts });
  assert.equal(posted.ok, true);
  await web.reactions.add({ channel: 'C0GROUP', timestamp: posted.ts, name: 'eyes' });
  await assert.rejects(web.reactions.add({ channel: 'C0GROUP', timestamp: posted.ts, name: '👀' }),
    (e) => e.data && e.data.error === 'invalid_name');
  const log = (await state()).log;
  assert.equal(log.find((r) => r.kind === 'posted').thread_ts, first.ts);
  passed++;

  // The three-step upload.
  const upload = await web.files.uploadV2({ channel_id: 'C0GROUP', file: Buffer.from('report bytes'),
    filename: 'report.txt', initial_comment: 'here it is' });
  assert.equal(upload.ok, true);
  const after = (await state()).log;
  assert.equal(after.find((r) => r.kind === 'upload_bytes').size, 12);
  assert.equal(after.find((r) => r.kind === 'upload_completed').channel_id, 'C0GROUP');
  passed++;

  // A 429 with Retry-After: 1 is waited out by the SDK and the call retried.
  await control('rate_limit', { method: 'chat.postMessage', retry_after: 1 });
  const start = Date.now();
  await web.chat.postMessage({ channel: 'C0GROUP', text: 'after the limit' });
  assert.ok(Date.now() - start >= 950, `waited only ${Date.now() - start} ms`);
  passed++;

  // A wrong token is refused as Slack does.
  const bad = new WebClient('xoxb-wrong', { slackApiUrl, logLevel: LogLevel.ERROR });
  await assert.rejects(bad.auth.test(), (e) => e.data && e.data.error === 'invalid_auth');
  passed++;
  console.log(`${passed} passed, 0 failed`);
} finally {
  if (socket) await socket.disconnect().catch(() => {});
  fake.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
