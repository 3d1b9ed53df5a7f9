#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A minimal SOCKS5 server (RFC 1928: no authentication, CONNECT, ATYP IPv4/domain/IPv6) on a
unix socket, standing in for chitin's egress broker where a test runs a worker outside the
supervisor. Written from the RFC, independently of supervisor/egress/. Stdlib only.

fake_socks5.py --socket PATH --ready-file PATH [--log PATH]
Writes the ready file once it listens; --log gets one JSON line per CONNECT {host, port, reply}.
It checks nothing: every destination is connected (the broker's rules are tested elsewhere).
"""
import argparse
import json
import os
import socket
import struct
import threading


def read_exactly(conn, n):
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed mid-handshake")
        data += chunk
    return data


def relay(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def serve(conn, log, lock):
    reply = 1
    try:
        _, count = read_exactly(conn, 2)
        methods = read_exactly(conn, count)
        if 0 not in methods:
            conn.sendall(b"\x05\xff")
            return
        conn.sendall(b"\x05\x00")
        _, command, _, atyp = read_exactly(conn, 4)
        if atyp == 1:
            host = socket.inet_ntop(socket.AF_INET, read_exactly(conn, 4))
        elif atyp == 4:
            host = socket.inet_ntop(socket.AF_INET6, read_exactly(conn, 16))
        elif atyp == 3:
            host = read_exactly(conn, read_exactly(conn, 1)[0]).decode("ascii", "replace")
        else:
            conn.sendall(b"\x05\x08\x00\x01" + bytes(6))
            return
        (port,) = struct.unpack(">H", read_exactly(conn, 2))
        if command != 1:
            reply = 7
        else:
            try:
                upstream = socket.create_connection((host, port), timeout=10)
                upstream.settimeout(None)
                reply = 0
            except ConnectionRefusedError:
                reply = 5
            except OSError:
                reply = 4
        if log:
            with lock, open(log, "a") as f:
                f.write(json.dumps({"host": host, "port": port, "reply": reply}) + "\n")
        conn.sendall(bytes([5, reply, 0, 1]) + bytes(6))
        if reply != 0:
            return
        back = threading.Thread(target=relay, args=(upstream, conn), daemon=True)
        back.start()
        relay(conn, upstream)
        back.join()
        upstream.close()
    except (OSError, ConnectionError):
        pass
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--log")
    args = parser.parse_args()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(args.socket)
    server.listen(64)
    with open(args.ready_file + ".tmp", "w") as f:
        f.write("ready\n")
    os.rename(args.ready_file + ".tmp", args.ready_file)
    lock = threading.Lock()
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn, args.log, lock), daemon=True).start()


if __name__ == "__main__":
    main()
