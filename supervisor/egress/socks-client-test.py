#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A SOCKS5 client written from RFC 1928 with Python's socket module only (independent of the
# broker's C++), for broker-test.c++: prints one line per exchange with the bytes received.
# Usage: socks-client-test.py SOCKET ECHO_PORT
import socket
import struct
import sys

path, echo_port = sys.argv[1], int(sys.argv[2])


def exchange(greeting, request=None, payload=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    s.sendall(greeting)
    method = s.recv(2)
    if request is None or method != b"\x05\x00":
        s.close()
        return method.hex()
    s.sendall(request)
    reply = b""
    while len(reply) < 10:
        chunk = s.recv(10 - len(reply))
        if not chunk:
            break
        reply += chunk
    result = reply[:2].hex()
    if payload is not None and reply[1:2] == b"\x00":
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        echoed = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            echoed += chunk
        result += " echo=" + echoed.decode()
    s.close()
    return result


NOAUTH = b"\x05\x01\x00"
port = struct.pack(">H", echo_port)
v4 = b"\x01" + socket.inet_aton("127.0.0.1") + port
print("auth-only:", exchange(b"\x05\x01\x02"))
print("bind:", exchange(NOAUTH, b"\x05\x02\x00" + v4))
print("udp-associate:", exchange(NOAUTH, b"\x05\x03\x00" + v4))
print("atyp-5:", exchange(NOAUTH, b"\x05\x01\x00\x05" + socket.inet_aton("127.0.0.1") + port))
v6 = b"\x04" + socket.inet_pton(socket.AF_INET6, "::1") + port
print("ipv6-not-allowed:", exchange(NOAUTH, b"\x05\x01\x00" + v6))
name = b"example.com"
print("domain-not-allowed:", exchange(NOAUTH, b"\x05\x01\x00\x03" + bytes([len(name)]) + name
                                      + struct.pack(">H", 443)))
print("connect-ipv4:", exchange(NOAUTH, b"\x05\x01\x00" + v4, b"hello through the broker"))
