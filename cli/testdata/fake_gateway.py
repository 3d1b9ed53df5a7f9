#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# A fake chitin gateway for the CLI's unit tests: a raw RFC 6455 server (stdlib only, written
# from the RFC, not from the client) speaking the frames of proto/gateway.proto with canned
# answers. Listens on 127.0.0.1, port 0, and writes the port to --port-file once listening.
# Runs in: test harness
#
# Strict on the client: unmasked frames, a wrong Sec-WebSocket-Key/Version, a wrong nonce or a
# request before `connect` are logged as violations (--log) and close the connection.
# Agent scenarios are chosen by the message text: hello (default), fail, drop, close, slow
# (waits for agent.abort), big (a 70 000-byte reply), early-final (final res before accepted),
# hostile (terminal escapes, bidi and zero-width characters in every text a run shows).
# channels.status answers two accounts (one failed, with controls in its detail); channels.login
# two QR codes, then "connected".
# approvals.list (and approval.get, one by id or code) answers two pending approvals: one as the real gateway sends it (display text),
# one whose texts still carry raw controls (a gateway the CLI must not trust to have escaped).

import argparse
import base64
import hashlib
import json
import os
import socket
import struct
import threading
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Violation(Exception):
    pass


class Conn:
    def __init__(self, sock, args, log):
        self.sock, self.args, self.log = sock, args, log
        self.buf = b""
        self.seq = 0
        self.pongs = []

    # ---- bytes and frames ----
    def recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("client closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame_bytes(self, opcode, payload, fin=True):
        head = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([n])
        elif n < 65536:
            head += bytes([126]) + struct.pack(">H", n)
        else:
            head += bytes([127]) + struct.pack(">Q", n)
        return head + payload  # server frames are never masked (RFC 6455 5.1)

    def send_frame(self, opcode, payload, fin=True):
        self.sock.sendall(self.frame_bytes(opcode, payload, fin))

    def send_json(self, obj):
        self.send_frame(1, json.dumps(obj).encode())

    def event(self, name, payload):
        self.seq += 1
        self.send_json({"type": "event", "event": name, "payload": payload, "seq": self.seq})

    def read_frame(self):
        b0, b1 = self.recv_exact(2)
        if not b1 & 0x80:
            raise Violation("unmasked frame from client")
        if b0 & 0x70:
            raise Violation("reserved bits set")
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self.recv_exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self.recv_exact(8))[0]
        mask = self.recv_exact(4)
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(self.recv_exact(n)))
        return b0 & 0x80, b0 & 0x0F, data

    def read_one(self):
        """Handles one client frame: a text message (returned), ping, pong or close (None)."""
        fin, op, data = self.read_frame()
        if op == 9:
            self.send_frame(10, data)
            return "control"
        if op == 10:
            self.pongs.append(data)
            return "control"
        if op == 8:
            self.log_line({"close": data[:2].hex()})
            self.send_frame(8, data[:2])
            return None
        if op == 1 and fin:
            msg = json.loads(data.decode())
            self.log_line(msg)
            return msg
        raise Violation("unexpected opcode %d fin %d" % (op, fin))

    def read_message(self):
        """Next text message from the client; None once it closed."""
        while True:
            msg = self.read_one()
            if msg != "control":
                return msg

    def log_line(self, obj):
        with self.log["lock"]:
            with open(self.args.log, "a") as f:
                f.write(json.dumps(obj) + "\n")

    def res(self, rid, ok, payload=None, error=None):
        frame = {"type": "res", "id": rid, "ok": ok}
        if payload is not None:
            frame["payload"] = payload
        if error is not None:
            frame["error"] = {"code": error[0], "message": error[1]}
        self.send_json(frame)

    # ---- the protocol ----
    def handshake(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("closed during handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        method, path, version = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        if self.args.mode == "http-404":
            self.sock.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return False
        if (method, path, version) != ("GET", "/ws", "HTTP/1.1"):
            raise Violation("bad request line %r" % lines[0])
        if headers.get("upgrade", "").lower() != "websocket":
            raise Violation("no Upgrade: websocket")
        if "upgrade" not in headers.get("connection", "").lower():
            raise Violation("no Connection: Upgrade")
        if headers.get("sec-websocket-version") != "13":
            raise Violation("Sec-WebSocket-Version is not 13")
        key = headers.get("sec-websocket-key", "")
        if len(base64.b64decode(key)) != 16:
            raise Violation("Sec-WebSocket-Key is not 16 bytes")
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        if self.args.mode == "bad-accept":
            accept = base64.b64encode(b"x" * 20).decode()
        self.nonce = os.urandom(16).hex()
        challenge = {"type": "event", "event": "connect.challenge",
                     "payload": {"nonce": self.nonce, "ts": str(int(time.time() * 1000))}, "seq": 1}
        self.seq = 1
        # The 101 and the challenge go out in one write: the client must keep the bytes that
        # follow the HTTP head.
        self.sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept).encode()
                          + self.frame_bytes(1, json.dumps(challenge).encode()))
        return True

    def authenticate(self):
        msg = self.read_message()
        if msg is None:
            return False
        if msg.get("type") != "req" or msg.get("method") != "connect":
            raise Violation("first request is not connect")
        p = msg.get("params", {})
        if p.get("nonce") != self.nonce:
            raise Violation("nonce not echoed")
        if not (p.get("minProtocol", 0) <= 1 <= p.get("maxProtocol", 0)):
            raise Violation("protocol range excludes 1")
        client = p.get("client", {})
        if client.get("id") != "cli" or not client.get("user"):
            raise Violation("client.id/user missing")
        if p.get("auth", {}).get("token") != self.args.token:
            self.res(msg["id"], False, error=("UNAUTHORIZED", "invalid gateway token"))
        else:
            self.res(msg["id"], True, {"protocol": 1, "serverVersion": "0.1.0-fake", "connId": "c1"})
            return True
        self.send_frame(8, struct.pack(">H", 1008) + b"unauthorized")
        return False

    def serve(self):
        try:
            if not self.handshake() or not self.authenticate():
                return
            while True:
                msg = self.read_message()
                if msg is None:
                    return
                self.handle(msg)
        except Violation as v:
            self.log_line({"violation": str(v)})
            try:
                self.send_frame(8, struct.pack(">H", 1002))
            except OSError:
                pass
        except (EOFError, OSError):
            pass
        finally:
            self.sock.close()

    def handle(self, msg):
        rid, method = msg["id"], msg["method"]
        if method == "health":
            self.res(rid, True, {"ok": self.args.mode != "unhealthy", "uptimeMs": "3723000",
                                 "version": "0.1.0-fake"})
        elif method == "status":
            # Protobuf JSON: false/0/"" omitted (activeRuns, connections absent), uint64 as string.
            self.res(rid, True, {"version": "0.1.0-fake", "uptimeMs": "75000", "home": "/tmp/home",
                                 "modelProvider": "openai", "model": "gpt-test",
                                 "modelConfigured": True, "activeSessions": 2, "sandbox": "ok",
                                 "spareSandboxes": 3, "spareSandboxesMax": 8})
        elif method == "sessions.list":
            self.res(rid, True, {"sessions": [
                {"key": "agent:main:cli:direct:alice", "active": True, "messages": "12",
                 "updatedAt": "2025-01-02T03:04:05Z"},
                {"key": "agent:main:irc:direct:bob", "tainted": True,
                 "untrustedSource": "a message from Sender::\"irc:bob\", who is not an owner"}]})
        elif method == "agent":
            self.agent(rid, msg.get("params", {}))
        elif method == "approvals.list":
            self.res(rid, True, {"approvals": APPROVALS})
        elif method == "channels.status":
            self.res(rid, True, {"accounts": [
                {"kind": "telegram", "account": "default", "state": "connected",
                 "identity": "@chitin_bot", "since": "2025-01-02T03:04:05Z", "running": True,
                 "egress": ["api.telegram.org:443 (telegram)"]},
                {"kind": "irc", "account": "libera", "state": "failed",
                 "detail": "bad \x1b[31mnick\u202e", "restarts": 3,
                 "lastExit": "exited with status 1"}]})
        elif method == "channels.login":
            # A QR code, a newer one, then logged in: seq follows `after`.
            after = int(msg.get("params", {}).get("after", "0"))
            if msg.get("params", {}).get("kind") != "whatsapp":
                self.res(rid, False, error=("NOT_FOUND", "no channel account x/default is configured"))
            elif after < 2:
                self.res(rid, True, {"qr": "QR-%d" % (after + 1), "seq": str(after + 1),
                                     "state": "login_required"})
            else:
                self.res(rid, True, {"seq": "2", "state": "connected"})
        elif method == "approval.get":
            wanted = msg.get("params", {}).get("id", "")
            found = [a for a in APPROVALS if a["id"] == wanted or a["code"] == wanted.upper()]
            if found:
                self.res(rid, True, found[0])
            else:
                self.res(rid, False, error=("NOT_FOUND",
                                            f'no pending approval with id or code "{wanted}" '
                                            "(it may have been answered or expired)"))
        else:
            self.res(rid, False, error=("NOT_FOUND", "unknown method " + method))

    def agent_event(self, run, **fields):
        self.event("agent", dict(runId=run, **fields))

    def agent(self, rid, params):
        text = params.get("message", "")
        session = params.get("sessionKey") or "agent:main:cli:direct:alice"
        run = "run-" + text
        final = {"runId": run, "status": "ok", "sessionKey": session}
        if text == "early-final":
            self.res(rid, True, dict(final, reply="done early"))
            self.res(rid, True, {"runId": run, "status": "accepted", "sessionKey": session})
            return
        self.res(rid, True, {"runId": run, "status": "accepted", "sessionKey": session})
        self.agent_event(run, stream="lifecycle", phase="start")
        ls = {"id": "t1", "name": "exec", "argumentsJson": '{"command":"ls"}', "status": "running"}
        if text == "hello":
            self.agent_event(run, stream="assistant", delta="Let me look.")
            self.agent_event(run, stream="tool", phase="start", tool=ls)
            self.event("presence", {"who": "someone"})  # unknown events are ignored
            self.agent_event("run-other", stream="assistant", delta="NOT OURS")
            done = dict(ls, status="ok", summary="a.txt\nb.txt")
            self.agent_event(run, stream="tool", phase="end", tool=done)
            # "Found 2 files." as a fragmented message with a ping between the fragments.
            body = json.dumps({"type": "event", "event": "agent", "seq": self.seq + 1,
                               "payload": {"runId": run, "stream": "assistant",
                                           "delta": "Found 2 files."}}).encode()
            self.seq += 1
            self.send_frame(1, body[:10], fin=False)
            self.send_frame(9, b"are-you-there")
            self.send_frame(0, body[10:40], fin=False)
            self.send_frame(0, body[40:], fin=True)
            deadline = time.time() + 2
            self.sock.settimeout(2)
            while b"are-you-there" not in self.pongs and time.time() < deadline:
                if self.read_one() is None:
                    return
            self.sock.settimeout(None)
            if b"are-you-there" not in self.pongs:
                self.res(rid, True, dict(final, status="error", error="client sent no pong"))
                return
            self.agent_event(run, stream="lifecycle", phase="end")
            self.res(rid, True, dict(final, reply="Let me look.Found 2 files.", tools=[done]))
        elif text == "fail":
            rm = {"id": "t9", "name": "exec", "argumentsJson": '{"command":"rm -rf /"}'}
            self.agent_event(run, stream="tool", phase="start", tool=rm)
            denied = dict(rm, status="denied", summary="policy: forbid exec rm\nmore")
            self.agent_event(run, stream="tool", phase="end", tool=denied)
            self.res(rid, True, dict(final, status="error", error="model provider unreachable",
                                     tools=[denied]))
        elif text == "drop":
            self.agent_event(run, stream="tool", phase="start", tool=ls)
            self.sock.shutdown(socket.SHUT_RDWR)
        elif text == "close":
            self.send_frame(8, struct.pack(">H", 1011) + b"supervisor shutting down")
        elif text == "slow":
            self.agent_event(run, stream="tool", phase="start", tool=ls)
            while True:
                m = self.read_message()
                if m is None:
                    return
                if m.get("method") == "agent.abort" and m.get("params", {}).get("runId") == run:
                    self.res(m["id"], True, {})
                    self.res(rid, True, dict(final, status="aborted", error="aborted by the user"))
                    return
        elif text == "hostile":
            # OSC 52 writes the clipboard, CSI 2J clears the screen, CSI 1A moves up a line.
            self.agent_event(run, stream="assistant", delta="copy \x1b]52;c;ZXZpbA==\x07 then")
            self.agent_event(run, stream="assistant", delta="\x1b[2J\u202egnp.exe \u200b")
            tool = {"id": "t5", "name": "exec\x1b[31m",
                    "argumentsJson": json.dumps({"command": "ls \u202eevil\x1b[1A"}),
                    "status": "running"}
            self.agent_event(run, stream="tool", phase="start", tool=tool)
            self.event("approval.requested", {"id": "ap1\x1b[1A", "runId": run, "code": "ABC123",
                                              "description": "exec: rm\x1b[2K -rf ~ \\x1b"})
            ended = dict(tool, status="error", summary="bad\x1b[2Jthing\nmore")
            self.agent_event(run, stream="tool", phase="end", tool=ended)
            self.res(rid, True, dict(final, status="error", error="boom\x1b]0;title\x07",
                                     tools=[ended]))
        elif text == "big":
            self.agent_event(run, stream="assistant", delta="y" * 300)
            self.res(rid, True, dict(final, reply="x" * 70000))
        else:
            self.res(rid, True, dict(final, reply="echo: " + text))


# Pending approvals for `approvals list|show`. Uint64 fields travel as strings (protobuf JSON).
PADDED = "ls -la notes" + " " * 200 + "; rm -rf notes .git"
APPROVALS = [
    {"id": "0a1b2c3d4e5f6071", "code": "QWE234", "sessionKey": "agent:main:cli:direct:alice",
     "principal": "User::\"owner\"", "tool": "write", "runId": "run-x",
     "argumentsJson": json.dumps({"path": "notes/x.sh", "content": "#!/bin/sh\nrm -rf ~\n" + "#" * 4000}),
     "description": "write notes/x.sh (4019 bytes, 3 lines): #!/bin/sh\\nrm -rf ~\\n###… "
                    "[+3900 bytes not shown; chitin approvals show 0a1b2c3d4e5f6071]",
     "descriptionOmittedBytes": "3900",
     "fullCall": "tool: write\npath: notes/x.sh\ncontent: 4019 bytes, 3 lines, no newline at the end\n"
                 "  | #!/bin/sh\n  | rm -rf ~\n  | " + "#" * 4000 + "\n",
     "fingerprint": "f1", "requestedAt": "2025-01-02T03:04:05Z", "expiresAt": "2025-01-02T03:09:05Z",
     "policies": ["tainted-asks"]},
    {"id": "ffee\x1b[2J", "code": "ZXC567", "sessionKey": "agent:main:telegram:direct:\u202e99",
     "principal": "Sender::\"telegram:99\"", "tool": "exec",
     "argumentsJson": json.dumps({"command": PADDED}),
     "description": "exec: " + PADDED + "\x1b]52;c;ZXZpbA==\x07",
     "fullCall": "tool: exec\ncommand: " + PADDED + "\x1b[2J\n",
     "requestedAt": "2025-01-02T03:04:06Z", "expiresAt": "2025-01-02T03:09:06Z"},
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--token", default="secret-token")
    ap.add_argument("--mode", default="normal",
                    choices=["normal", "bad-accept", "http-404", "unhealthy"])
    args = ap.parse_args()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.getsockname()[1]))
    os.rename(tmp, args.port_file)
    log = {"lock": threading.Lock()}
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=Conn(sock, args, log).serve, daemon=True).start()


if __name__ == "__main__":
    main()
