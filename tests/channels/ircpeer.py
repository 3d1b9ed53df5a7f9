# SPDX-License-Identifier: Apache-2.0
"""A minimal IRC client for tests, written from RFC 2812 (registration, JOIN, PRIVMSG, PING),
independently of chitin's client. It keeps every raw line it receives, with its arrival time,
so tests can check byte lengths and pacing.

Runs in: tests.
"""
import queue
import socket
import threading
import time


class IrcPeer:
    def __init__(self, port, nick, host="127.0.0.1", password=None):
        self.nick = nick
        self.sock = socket.create_connection((host, port), timeout=5)
        self.lines = queue.Queue()  # (arrival time, raw bytes without CRLF)
        self.all = []
        self._buffer = b""
        threading.Thread(target=self._read, daemon=True).start()
        if password:
            self.raw(f"PASS {password}")
        self.raw(f"NICK {nick}")
        self.raw(f"USER {nick} 0 * :test peer {nick}")
        self.expect(lambda cmd, params, line: cmd == "001", timeout=5)

    def _read(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            self._buffer += data
            while b"\r\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\r\n", 1)
                arrival = time.monotonic()
                self.all.append((arrival, line))
                if line.startswith(b"PING"):
                    self.raw("PONG" + line[4:].decode(errors="replace"))
                self.lines.put((arrival, line))
        self.lines.put((time.monotonic(), None))

    def raw(self, text):
        data = text.encode() if isinstance(text, str) else text
        self.sock.sendall(data + b"\r\n")

    @staticmethod
    def parse(line):
        """(prefix, command, params) of a raw line (bytes), tags skipped."""
        text = line.decode("utf-8", errors="replace")
        if text.startswith("@"):
            text = text.split(" ", 1)[1]
        prefix = ""
        if text.startswith(":"):
            prefix, text = text[1:].split(" ", 1)
        if " :" in text:
            head, trailing = text.split(" :", 1)
            params = head.split() + [trailing]
        else:
            params = text.split()
        return prefix, params[0].upper(), params[1:]

    def expect(self, predicate, timeout=10.0):
        """The first line for which predicate(command, params, raw) holds: (arrival, raw)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                tail = [l for _, l in self.all[-10:]]
                raise AssertionError(f"{self.nick}: timed out; last lines: {tail}")
            try:
                arrival, line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"{self.nick}: connection closed")
            _, command, params = self.parse(line)
            if predicate(command, params, line):
                return arrival, line

    def join(self, channel):
        self.raw(f"JOIN {channel}")
        self.expect(lambda c, p, l: c == "366" and len(p) > 1 and p[1].lower() == channel.lower())

    def privmsg(self, target, text):
        self.raw(f"PRIVMSG {target} :{text}")

    def privmsgs_from(self, nick, timeout=10.0, count=1):
        """`count` PRIVMSG lines from `nick`: [(arrival, raw line, target, text)]."""
        out = []
        while len(out) < count:
            arrival, line = self.expect(
                lambda c, p, l: c == "PRIVMSG" and self.parse(l)[0].split("!")[0].lower() == nick.lower(),
                timeout)
            _, _, params = self.parse(line)
            out.append((arrival, line, params[0], params[1] if len(params) > 1 else ""))
        return out

    def close(self):
        try:
            self.raw("QUIT :bye")
        except OSError:
            pass
        self.sock.close()
