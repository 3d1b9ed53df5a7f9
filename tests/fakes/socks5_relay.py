#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A minimal SOCKS5 server on a unix socket (RFC 1928: no authentication, CONNECT, ATYP
domain/IPv4/IPv6), standing in for chitin's egress broker in tests that run a real sandboxed
worker without the supervisor. It reaches loopback only, and logs each CONNECT.

Runs in: tests only. Usage: socks5_relay.py --socket PATH [--log FILE]
Writes PATH once listening (the socket itself is the ready signal); each CONNECT is logged as
a JSON line {"host", "port", "outcome"}.
"""

import argparse
import asyncio
import json
import os
import socket
import struct

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Relay:
    def __init__(self, log_path):
        self.log_path = log_path

    def log(self, record):
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record) + "\n")

    async def handle(self, reader, writer):
        try:
            version, count = struct.unpack("BB", await reader.readexactly(2))
            methods = await reader.readexactly(count)
            if version != 5 or 0 not in methods:
                writer.write(b"\x05\xff")
                return
            writer.write(b"\x05\x00")
            version, command, _, atyp = struct.unpack("BBBB", await reader.readexactly(4))
            if atyp == 1:
                host = socket.inet_ntop(socket.AF_INET, await reader.readexactly(4))
            elif atyp == 4:
                host = socket.inet_ntop(socket.AF_INET6, await reader.readexactly(16))
            elif atyp == 3:
                length = (await reader.readexactly(1))[0]
                host = (await reader.readexactly(length)).decode("ascii", "replace")
            else:
                writer.write(b"\x05\x08\x00\x01" + bytes(6))  # address type not supported
                return
            port = struct.unpack("!H", await reader.readexactly(2))[0]
            if command != 1:
                writer.write(b"\x05\x07\x00\x01" + bytes(6))  # command not supported
                self.log({"host": host, "port": port, "outcome": "refused: command"})
                return
            if host not in LOOPBACK:
                writer.write(b"\x05\x02\x00\x01" + bytes(6))  # not allowed by ruleset
                self.log({"host": host, "port": port, "outcome": "refused: not loopback"})
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(
                    "127.0.0.1" if host == "localhost" else host, port)
            except OSError:
                writer.write(b"\x05\x05\x00\x01" + bytes(6))  # connection refused
                self.log({"host": host, "port": port, "outcome": "unreachable"})
                return
            writer.write(b"\x05\x00\x00\x01" + bytes(6))
            self.log({"host": host, "port": port, "outcome": "connected"})
            await asyncio.gather(self.pipe(reader, up_writer), self.pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def pipe(reader, writer):
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            try:
                writer.write_eof()
            except (OSError, RuntimeError):
                pass


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--log")
    args = parser.parse_args()
    relay = Relay(args.log)
    temporary = args.socket + ".tmp"
    server = await asyncio.start_unix_server(relay.handle, path=temporary)
    os.chmod(temporary, 0o600)
    os.rename(temporary, args.socket)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
