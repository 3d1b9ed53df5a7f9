// SPDX-License-Identifier: Apache-2.0
// Every connection the WhatsApp bridge makes goes through chitin's egress broker: SOCKS5
// (RFC 1928, no authentication, CONNECT, the host as a domain name) over the broker's unix
// socket, then TLS end to end inside the sandbox.
// Runs in: worker (sandboxed), inside the WhatsApp bridge (Node).
//
// Baileys opens WebSockets with `ws` (given our `agent`), uploads media with https.request
// (given our `fetchAgent`) and downloads it with the global fetch(). installEgress() routes all
// three, and anything else that uses the global agents or fetch, through connectThroughBroker:
// nothing here ever resolves a name or opens an AF_INET socket (the sandbox would kill the
// process if it tried).

import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { Agent as UndiciAgent, fetch as undiciFetch, setGlobalDispatcher } from 'undici';

const REPLIES = {
  1: 'general failure',
  2: 'not allowed by the egress rules',
  3: 'network unreachable',
  4: 'host unreachable',
  5: 'connection refused',
  6: 'TTL expired',
  7: 'command not supported',
  8: 'address type not supported',
};

// A plain stream to host:port through the broker at `socketPath`.
export function socksConnect(socketPath, host, port, timeoutMs = 15000) {
  return new Promise((resolve, reject) => {
    const name = Buffer.from(String(host));
    if (name.length === 0 || name.length > 255) {
      reject(new Error(`egress: host name "${host}" cannot be sent to the broker`));
      return;
    }
    const socket = net.createConnection({ path: socketPath });
    let buffer = Buffer.alloc(0);
    let stage = 'greeting';
    const fail = (message) => {
      socket.destroy();
      reject(new Error(`egress to ${host}:${port}: ${message}`));
    };
    const timer = setTimeout(() => fail('the broker did not answer in time'), timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      fail(err.message);
    });
    socket.once('connect', () => socket.write(Buffer.from([5, 1, 0])));
    const onData = (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (stage === 'greeting') {
        if (buffer.length < 2) return;
        if (buffer[0] !== 5 || buffer[1] !== 0) return fail('the broker refused the greeting');
        buffer = buffer.subarray(2);
        stage = 'connect';
        const port16 = Buffer.from([(port >> 8) & 0xff, port & 0xff]);
        socket.write(Buffer.concat([Buffer.from([5, 1, 0, 3, name.length]), name, port16]));
      }
      if (stage === 'connect') {
        if (buffer.length < 5) return;
        if (buffer[0] !== 5) return fail('the broker spoke something else than SOCKS5');
        if (buffer[1] !== 0) return fail(REPLIES[buffer[1]] ?? `broker reply ${buffer[1]}`);
        const addressLength = { 1: 4, 3: 1 + buffer[4], 4: 16 }[buffer[3]];
        if (addressLength === undefined) return fail('the broker sent an unknown address type');
        const total = 4 + addressLength + 2;
        if (buffer.length < total) return;
        clearTimeout(timer);
        socket.off('data', onData);
        socket.removeAllListeners('error');
        if (buffer.length > total) socket.unshift(buffer.subarray(total));
        stage = 'open';
        resolve(socket);
      }
    };
    socket.on('data', onData);
  });
}

// TLS over a brokered stream. `ca`: extra trust for tests; otherwise Node's CA store.
export async function tlsThroughBroker(socketPath, host, port, { ca, alpn } = {}) {
  const raw = await socksConnect(socketPath, host, port);
  return new Promise((resolve, reject) => {
    const secure = tls.connect({
      socket: raw,
      servername: net.isIP(host) ? undefined : host,
      ca,
      ALPNProtocols: alpn,
    });
    secure.once('secureConnect', () => {
      secure.removeAllListeners('error');
      resolve(secure);
    });
    secure.once('error', (err) => {
      raw.destroy();
      reject(new Error(`egress to ${host}:${port}: TLS: ${err.message}`));
    });
  });
}

function agentClass(Base, secure) {
  return class extends Base {
    constructor(socketPath, ca) {
      super({ keepAlive: true });
      this.socketPath = socketPath;
      this.ca = ca;
    }

    // Node's Agent accepts an asynchronous createConnection through the callback.
    createConnection(options, callback) {
      const host = options.host ?? options.hostname;
      const port = Number(options.port) || (secure ? 443 : 80);
      const opened = secure
        ? tlsThroughBroker(this.socketPath, host, port, { ca: this.ca, alpn: ['http/1.1'] })
        : socksConnect(this.socketPath, host, port);
      opened.then((socket) => callback(null, socket), (err) => callback(err));
      return undefined;
    }
  };
}
export const EgressHttpsAgent = agentClass(https.Agent, true);
export const EgressHttpAgent = agentClass(http.Agent, false);

// Points the global agents and fetch() at the broker; returns the agents for Baileys.
export function installEgress(socketPath, { ca } = {}) {
  const httpsAgent = new EgressHttpsAgent(socketPath, ca);
  const httpAgent = new EgressHttpAgent(socketPath, ca);
  http.globalAgent = httpAgent;
  https.globalAgent = httpsAgent;
  const dispatcher = new UndiciAgent({
    connect(options, callback) {
      const secure = options.protocol === 'https:';
      const port = Number(options.port) || (secure ? 443 : 80);
      const opened = secure
        ? tlsThroughBroker(socketPath, options.hostname, port, { ca, alpn: ['http/1.1'] })
        : socksConnect(socketPath, options.hostname, port);
      opened.then((socket) => callback(null, socket), (err) => callback(err, null));
    },
  });
  setGlobalDispatcher(dispatcher);
  // Node's built-in fetch is a second copy of undici; replace it so there is only one path.
  globalThis.fetch = (input, init = {}) => undiciFetch(input, { ...init, dispatcher });
  return { httpsAgent, httpAgent, dispatcher };
}
