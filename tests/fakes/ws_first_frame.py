#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A WebSocket server (RFC 6455 handshake, plain ws://) on 127.0.0.1 that reports the first
bytes of each client's first frame: stands in for WhatsApp Web in the sandbox test, where
the bridge's real Baileys must get its "WA" prologue out through the egress broker. Written
from the RFC, not from any client. Prints the port, then "FRAME <first 4 bytes, hex>" per
connection; answers nothing after the handshake.

Usage: ws_first_frame.py
"""
import base64
import hashlib
import socket
import sys
import threading

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError
        data += chunk
    return data


def serve(conn):
    try:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        key = b""
        for line in request.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        head = recv_exact(conn, 2)
        length = head[1] & 0x7F
        if length == 126:
            length = int.from_bytes(recv_exact(conn, 2), "big")
        elif length == 127:
            length = int.from_bytes(recv_exact(conn, 8), "big")
        mask = recv_exact(conn, 4) if head[1] & 0x80 else b"\0\0\0\0"
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(recv_exact(conn, length)))
        print("FRAME " + payload[:4].hex(), flush=True)
        conn.recv(1)  # hold the connection until the client gives up
    except (ConnectionError, OSError):
        pass
    finally:
        conn.close()


def main():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
