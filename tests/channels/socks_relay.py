#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A SOCKS5 relay on a unix socket (RFC 1928: no authentication, CONNECT, ATYP IPv4, domain,
IPv6), standing in for chitin's egress broker in the platform tests, so that they prove the
platform's connections (Stream and libcurl alike) go through the socket a sandboxed worker has.
Written from the RFC, independently of chitin's broker. Every CONNECT target is appended to the
log file as "host:port".

Usage: socks_relay.py SOCKET_PATH LOG_PATH   (prints "ready" once listening)
Runs in: tests.
"""
import asyncio
import ipaddress
import os
import struct
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(reader, writer, log_path):
    try:
        version, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if version != 5 or 0 not in methods:
            writer.write(b"\x05\xff")
            return writer.close()
        writer.write(b"\x05\x00")
        version, command, _, atyp = await reader.readexactly(4)
        if atyp == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif atyp == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        elif atyp == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        else:
            writer.write(b"\x05\x08\x00\x01" + b"\x00" * 6)
            return writer.close()
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        if command != 1:
            writer.write(b"\x05\x07\x00\x01" + b"\x00" * 6)
            return writer.close()
        with open(log_path, "a") as log:
            log.write(f"{host}:{port}\n")
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.write(b"\x05\x05\x00\x01" + b"\x00" * 6)
            return writer.close()
        writer.write(b"\x05\x00\x00\x01" + b"\x00" * 6)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def main(path, log_path):
    if os.path.exists(path):
        os.unlink(path)
    server = await asyncio.start_unix_server(lambda r, w: handle(r, w, log_path), path)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
