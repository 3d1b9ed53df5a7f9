#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""WebSocket servers on 127.0.0.1 for the tests of workers/channel/ws-client: a real one
(Debian's python3-websockets, independent of the client) and a raw one that breaks RFC 6455
on purpose, which no real library will do.

Runs in: tests only. Prints "REAL_PORT RAW_PORT" on stdout, serves until killed. With
`--tls CERT KEY` the real server speaks TLS (wss://) with that certificate.

Real server, by path:
  /echo        echoes every message (text stays text, binary stays binary); the text
               "close CODE REASON" makes it close with that code and reason
  /headers     sends the handshake request's headers as one JSON text message
  /fragments   sends a text message in three fragments, then "done"
  /ping        pings, and once the pong arrives sends "pong ok"
  /big?n=N     sends one binary message of N bytes
  /closes      sends, as JSON, the close code each raw path last got from a client
Raw server, by path (a correct handshake unless said otherwise):
  /bad-accept  101 with a wrong Sec-WebSocket-Accept
  /extension   101 with a Sec-WebSocket-Extensions the client did not offer
  /refuse      401 Unauthorized
  /early       101 and a text frame "hi" in the same write
  /masked      a masked text frame
  /rsv         a text frame with RSV1 set
  /bad-utf8    a text frame holding \\xff
  /interleave  "ab" as two fragments with a ping between them; then the pong's payload
               echoed as a text message
  /slow        a text frame "slow" split in two writes 300 ms apart
  /bad-close   a close frame with the reserved code 1005
  /vanish      closes the TCP connection without a close frame
  /close       a close frame 4004 "Authentication failed.", then waits for the client's
"""

import asyncio
import base64
import hashlib
import json
import ssl
import struct
import sys

import websockets

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLIENT_CLOSES = {}  # raw path -> the close code the client sent there


async def real_handler(ws, path):
    if path == "/echo":
        async for message in ws:
            if isinstance(message, str) and message.startswith("close "):
                _, code, reason = message.split(" ", 2)
                await ws.close(int(code), reason)
                return
            await ws.send(message)
    elif path == "/headers":
        await ws.send(json.dumps({k.lower(): v for k, v in ws.request_headers.raw_items()}))
        await ws.wait_closed()
    elif path == "/fragments":
        await ws.send(["frag-1 ", "frag-2 ", "frag-3 ✓"])
        await ws.send("done")
        await ws.wait_closed()
    elif path == "/ping":
        waiter = await ws.ping(b"chk")
        await asyncio.wait_for(waiter, 5)
        await ws.send("pong ok")
        await ws.wait_closed()
    elif path == "/closes":
        await ws.send(json.dumps(CLIENT_CLOSES))
        await ws.wait_closed()
    elif path.startswith("/big?n="):
        await ws.send(b"x" * int(path.split("=", 1)[1]))
        await ws.wait_closed()


def frame(opcode, payload, fin=True, rsv=0, mask=None):
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


async def read_client_frame(reader):
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", await reader.readexactly(8))[0]
    mask = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    data = await reader.readexactly(n)
    return b0 & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


async def raw_handler(reader, writer):
    head = (await reader.readuntil(b"\r\n\r\n")).decode()
    path = head.split(" ", 2)[1]
    key = ""
    for line in head.split("\r\n")[1:]:
        if line.lower().startswith("sec-websocket-key:"):
            key = line.split(":", 1)[1].strip()
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    if path == "/bad-accept":
        accept = base64.b64encode(hashlib.sha1(b"wrong").digest()).decode()
    if path == "/refuse":
        writer.write(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()
        return
    response = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + "\r\n")
    if path == "/extension":
        response += "Sec-WebSocket-Extensions: permessage-deflate\r\n"
    response = (response + "\r\n").encode()
    if path == "/early":
        writer.write(response + frame(0x1, b"hi"))
    else:
        writer.write(response)
    await writer.drain()
    try:
        if path == "/masked":
            writer.write(frame(0x1, b"masked", mask=b"\1\2\3\4"))
        elif path == "/rsv":
            writer.write(frame(0x1, b"rsv", rsv=0x40))
        elif path == "/bad-utf8":
            writer.write(frame(0x1, b"ok \xff"))
        elif path == "/interleave":
            writer.write(frame(0x1, b"a", fin=False) + frame(0x9, b"mid") + frame(0x0, b"b"))
            await writer.drain()
            while True:
                opcode, data = await read_client_frame(reader)
                if opcode == 0xA:
                    writer.write(frame(0x1, b"pong:" + data))
                    break
        elif path == "/slow":
            whole = frame(0x1, b"slow")
            writer.write(whole[:3])
            await writer.drain()
            await asyncio.sleep(0.3)
            writer.write(whole[3:])
        elif path == "/bad-close":
            writer.write(frame(0x8, struct.pack("!H", 1005)))
        elif path == "/vanish":
            writer.close()
            return
        elif path == "/close":
            writer.write(frame(0x8, struct.pack("!H", 4004) + b"Authentication failed."))
        await writer.drain()
        # Report what the client sent back (a close frame's code, a pong) until it leaves.
        while True:
            opcode, data = await read_client_frame(reader)
            if opcode == 0x8:
                CLIENT_CLOSES[path] = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                writer.close()
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main():
    context = None
    if len(sys.argv) == 4 and sys.argv[1] == "--tls":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
    real = await websockets.serve(real_handler, "127.0.0.1", 0, max_size=None, ssl=context)
    raw = await asyncio.start_server(raw_handler, "127.0.0.1", 0)
    print(real.sockets[0].getsockname()[1], raw.sockets[0].getsockname()[1], flush=True)
    await asyncio.Future()


asyncio.run(main())
