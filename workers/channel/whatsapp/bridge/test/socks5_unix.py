#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A SOCKS5 server (RFC 1928: no authentication, CONNECT, IPv4/domain/IPv6) on a unix socket,
standing in for chitin's egress broker in the WhatsApp bridge's tests. Written from the RFC,
not from the bridge's client. Prints "ready" once listening and one "CONNECT host:port" line
per tunnel; relays until either side closes.

Usage: socks5_unix.py SOCKET_PATH [NAME=ADDRESS ...]  (names this stand-in resolves itself,
for test domains such as wa.test; the rest go to the system resolver)
"""
import ipaddress
import os
import socket
import sys
import threading


def recv_exact(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("client closed")
        data += chunk
    return data


def relay(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn):
    try:
        version, count = recv_exact(conn, 2)
        methods = recv_exact(conn, count)
        if version != 5 or 0 not in methods:
            conn.sendall(b"\x05\xff")
            return
        conn.sendall(b"\x05\x00")
        version, command, _, atyp = recv_exact(conn, 4)
        if atyp == 1:
            host = str(ipaddress.IPv4Address(recv_exact(conn, 4)))
        elif atyp == 3:
            host = recv_exact(conn, recv_exact(conn, 1)[0]).decode()
        elif atyp == 4:
            host = str(ipaddress.IPv6Address(recv_exact(conn, 16)))
        else:
            conn.sendall(b"\x05\x08\x00\x01" + bytes(6))
            return
        port = int.from_bytes(recv_exact(conn, 2), "big")
        print("CONNECT %s:%d" % (host, port), flush=True)
        if command != 1:
            conn.sendall(b"\x05\x07\x00\x01" + bytes(6))
            return
        try:
            upstream = socket.create_connection((NAMES.get(host, host), port), timeout=5)
        except OSError:
            conn.sendall(b"\x05\x05\x00\x01" + bytes(6))
            return
        upstream.settimeout(None)
        conn.sendall(b"\x05\x00\x00\x01" + bytes(4) + b"\x00\x00")
        threading.Thread(target=relay, args=(upstream, conn), daemon=True).start()
        relay(conn, upstream)
    except (ConnectionError, OSError):
        pass
    finally:
        conn.close()


NAMES = {}


def main():
    path = sys.argv[1]
    for mapping in sys.argv[2:]:
        name, _, address = mapping.partition("=")
        NAMES[name] = address
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
