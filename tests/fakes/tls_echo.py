#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A line echo server on 127.0.0.1 for the channel transport's tests, plain or TLS.

Usage: tls_echo.py CERT KEY MODE, MODE one of:
  plain     no TLS; echoes each line.
  tls       TLS from the first byte; echoes each line.
  starttls  plain; answers "STARTTLS" with "OK", then TLS; echoes each line.
  inject    like starttls, but sends a second line in the clear right after "OK" (a
            man-in-the-middle's injection the client must refuse).
Prints the port on stdout, serves until killed. Written from Python's ssl docs, not from the
client it tests.
"""
import socket
import ssl
import sys
import threading

cert, key, mode = sys.argv[1], sys.argv[2], sys.argv[3]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)

listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
print(listener.getsockname()[1], flush=True)


def echo(stream):
    buffer = b""
    while True:
        data = stream.recv(4096)
        if not data:
            return
        buffer += data
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            stream.sendall(b"echo " + line + b"\n")


def serve(connection):
    try:
        if mode == "plain":
            echo(connection)
            return
        if mode == "tls":
            echo(context.wrap_socket(connection, server_side=True))
            return
        line = b""
        while not line.endswith(b"\n"):
            data = connection.recv(1)
            if not data:
                return
            line += data
        if line.strip() != b"STARTTLS":
            connection.sendall(b"NO\r\n")
            return
        connection.sendall(b"OK\r\nINJECTED\r\n" if mode == "inject" else b"OK\r\n")
        echo(context.wrap_socket(connection, server_side=True))
    except (ssl.SSLError, OSError):
        pass
    finally:
        connection.close()


while True:
    conn, _ = listener.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
