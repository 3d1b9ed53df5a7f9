#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# An independent client for the gateway integration test: raw sockets and the Python standard
# library only (RFC 6455 framing written here, not shared with the server), so a bug in the
# server's framing cannot be mirrored by the client.
# Runs in: tests (started by gateway-test.c++ against a Gateway on 127.0.0.1)
#
# Usage: gateway-test-client.py PORT TOKEN MAX_FRAME_BYTES. Exit status 0 when every check holds.

import base64
import http.client
import json
import os
import re
import socket
import struct
import sys
import time

PORT = int(sys.argv[1])
TOKEN = sys.argv[2]
MAX_FRAME = int(sys.argv[3])
MAX_CONNECTIONS = int(sys.argv[4])
HOST = "127.0.0.1"


class Failure(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Failure(what)


class WebSocket:
    def __init__(self, path="/ws", origin=None):
        self.sock = socket.create_connection((HOST, PORT), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{PORT}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if origin:
            lines.append(f"Origin: {origin}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            head += chunk
        self.status = int(head.split(b" ", 2)[1]) if head else 0
        self.buffer = b""

    def _read(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Failure("connection closed while reading")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def send_frame(self, opcode, payload, fin=True):
        header = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send_text(self, text, fragments=1):
        data = text.encode()
        if fragments == 1:
            self.send_frame(0x1, data)
            return
        size = -(-len(data) // fragments)
        pieces = [data[i:i + size] for i in range(0, len(data), size)]
        for i, piece in enumerate(pieces):
            self.send_frame(0x1 if i == 0 else 0x0, piece, fin=(i == len(pieces) - 1))

    def recv_message(self):
        """Returns (opcode, payload) of the next data or close message; answers pings."""
        message, first_opcode = b"", None
        while True:
            b0, b1 = self._read(2)
            opcode, fin, n = b0 & 0x0F, b0 & 0x80, b1 & 0x7F
            check(not (b1 & 0x80), "server frames must not be masked")
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            if opcode == 0x9:
                self.send_frame(0xA, payload)
                continue
            if opcode == 0x8:
                return opcode, payload
            if first_opcode is None:
                first_opcode = opcode
            message += payload
            if fin:
                return first_opcode, message

    def recv_json(self):
        opcode, payload = self.recv_message()
        check(opcode == 0x1, f"expected a text frame, got opcode {opcode} {payload!r}")
        return json.loads(payload)

    def request(self, rid, method, params=None):
        frame = {"type": "req", "id": rid, "method": method}
        if params is not None:
            frame["params"] = params
        self.send_text(json.dumps(frame))

    def expect_close(self, code):
        opcode, payload = self.recv_message()
        check(opcode == 0x8, f"expected a close frame, got {opcode} {payload!r}")
        got = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        check(got == code, f"close code {got}, expected {code}")

    def close(self):
        try:
            self.send_frame(0x8, struct.pack("!H", 1000))
            while self.recv_message()[0] != 0x8:
                pass
        except (Failure, OSError):
            pass
        self.sock.close()


def challenge(ws):
    frame = ws.recv_json()
    check(frame["type"] == "event" and frame["event"] == "connect.challenge", f"challenge: {frame}")
    check(frame["seq"] == 1, f"challenge seq: {frame}")
    nonce = frame["payload"]["nonce"]
    check(re.fullmatch(r"[0-9a-f]{32}", nonce), f"nonce: {nonce}")
    return nonce


def connect(ws, token=TOKEN, nonce=None, method="connect"):
    issued = challenge(ws)
    nonce = nonce if nonce is not None else issued
    ws.request("1", method, {"auth": {"token": token}, "nonce": nonce,
                             "client": {"id": "cli", "version": "test", "user": "alice"},
                             "minProtocol": 1, "maxProtocol": 1})
    return ws.recv_json()


def connected():
    ws = WebSocket()
    check(ws.status == 101, f"upgrade status {ws.status}")
    res = connect(ws)
    check(res["type"] == "res" and res["id"] == "1" and res["ok"] is True, f"connect: {res}")
    return ws


def error_code(frame):
    check(frame["type"] == "res" and frame["ok"] is False, f"expected an error reply: {frame}")
    return frame["error"]["code"]


def health_answers(ws, rid):
    ws.request(rid, "health")
    res = ws.recv_json()
    check(res["id"] == rid and res["ok"] and res["payload"]["ok"] is True, f"health: {res}")


def run_agent(ws, rid, params):
    """Sends `agent`; returns (accepted, events, final)."""
    ws.request(rid, "agent", params)
    accepted = ws.recv_json()
    check(accepted["id"] == rid and accepted["ok"], f"accepted: {accepted}")
    check(accepted["payload"]["status"] == "accepted", f"accepted: {accepted}")
    events = []
    while True:
        frame = ws.recv_json()
        if frame["type"] == "event":
            check(frame["event"] == "agent", f"event: {frame}")
            events.append(frame)
            continue
        check(frame["type"] == "res" and frame["id"] == rid, f"final: {frame}")
        return accepted, events, frame


def test_http():
    conn = http.client.HTTPConnection(HOST, PORT, timeout=5)
    conn.request("GET", "/healthz")
    res = conn.getresponse()
    check(res.status == 200 and res.getheader("content-type") == "application/json", "healthz")
    check(json.loads(res.read()) == {"ok": True}, "healthz body")
    for path, status in [("/", 200), ("/app.js", 200), ("/nope", 404), ("/../etc/passwd", 404),
                         ("/README.md", 404), ("/web/index.html", 404)]:
        conn.request("GET", path)
        res = conn.getresponse()
        res.read()
        check(res.status == status, f"GET {path}: {res.status}, expected {status}")
        if status == 200:
            check("default-src 'self'" in res.getheader("content-security-policy", ""), "CSP")
            check(res.getheader("x-content-type-options") == "nosniff", "nosniff")
            check(res.getheader("x-frame-options") == "DENY", "x-frame-options")
            check(res.getheader("referrer-policy") == "no-referrer", "referrer-policy")


def test_upgrade_checks():
    check(WebSocket(origin="http://evil.example").status == 403, "evil origin must get 403")
    check(WebSocket(origin=f"http://127.0.0.1:{PORT + 1}").status == 403, "other port: 403")
    check(WebSocket(path="/other").status == 404, "upgrade on another path must get 404")
    ws = WebSocket(origin=f"http://localhost:{PORT}")
    check(ws.status == 101, f"own origin must upgrade, got {ws.status}")
    ws.close()


def test_connection_cap():
    held = [WebSocket() for _ in range(MAX_CONNECTIONS)]
    check(all(ws.status == 101 for ws in held), "connections up to the cap must upgrade")
    over = WebSocket()
    check(over.status == 503, f"one past the cap must get 503, got {over.status}")
    over.sock.close()
    held.pop().close()
    # The server sees the close as its loop turns: a new connection is let in once it has.
    deadline = time.monotonic() + 5
    while True:
        again = WebSocket()
        if again.status == 101 or time.monotonic() > deadline:
            break
        again.sock.close()
        time.sleep(0.05)
    check(again.status == 101, f"a place freed must be usable again, got {again.status}")
    held.append(again)
    for ws in held:
        ws.close()


def test_session():
    ws = connected()
    health_answers(ws, "h1")

    ws.send_text("{this is not json")
    res = ws.recv_json()
    check(error_code(res) == "INVALID_REQUEST" and res["id"] == "", f"bad JSON: {res}")
    ws.send_text('{"type":"req","id":"s1","method":"health","bogus":true}')
    res = ws.recv_json()
    check(error_code(res) == "INVALID_REQUEST" and res["id"] == "s1", f"schema: {res}")
    ws.send_text('["not","an","object"]')
    check(error_code(ws.recv_json()) == "INVALID_REQUEST", "array frame")
    ws.send_text('{"id":"t1","method":"health"}')
    check(error_code(ws.recv_json()) == "INVALID_REQUEST", "missing type")
    health_answers(ws, "h2")

    big = json.dumps({"type": "req", "id": "big", "method": "health", "params": {},
                      "pad": "x" * (MAX_FRAME + 10)})
    ws.send_text(big)
    check(error_code(ws.recv_json()) == "FRAME_TOO_LARGE", "oversized single frame")
    ws.send_text(big, fragments=7)
    check(error_code(ws.recv_json()) == "FRAME_TOO_LARGE", "oversized fragmented message")
    health_answers(ws, "h3")

    # Just under the limit, in fragments: reassembled and handled.
    key = "k" * (MAX_FRAME - 200)
    ws.send_text(json.dumps({"type": "req", "id": "frag", "method": "chat.history",
                             "params": {"sessionKey": key}}), fragments=5)
    res = ws.recv_json()
    check(res["id"] == "frag" and error_code(res) == "NOT_FOUND", f"fragmented request: {res}")

    ws.send_frame(0x2, b'{"type":"req","id":"b","method":"health"}')
    check(error_code(ws.recv_json()) == "INVALID_REQUEST", "binary frame")
    ws.request("u1", "no.such.method")
    check(error_code(ws.recv_json()) == "UNKNOWN_METHOD", "unknown method")
    ws.request("p1", "chat.history", {"limit": "ten"})
    res = ws.recv_json()
    check(error_code(res) == "INVALID_REQUEST" and "limit" in res["error"]["message"], f"{res}")
    ws.request("c2", "connect", {})
    check(error_code(ws.recv_json()) == "INVALID_REQUEST", "second connect")
    health_answers(ws, "h4")

    # A run with a tool call: accepted, events in order, the final reply with the same id.
    accepted, events, final = run_agent(ws, "a1", {"message": "please use a tool"})
    run_id = accepted["payload"]["runId"]
    seqs = [e["seq"] for e in events]
    check(seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[0] > 1, f"seqs {seqs}")
    kinds = [(e["payload"]["stream"], e["payload"].get("phase", "")) for e in events]
    check(kinds == [("assistant", ""), ("tool", "start"), ("tool", "end"), ("assistant", "")],
          f"event order {kinds}")
    check(all(e["payload"]["runId"] == run_id for e in events), "runId on events")
    check(events[1]["payload"]["tool"]["status"] == "running", "tool start status")
    check(events[2]["payload"]["tool"]["status"] == "ok", "tool end status")
    text = "".join(e["payload"].get("delta", "") for e in events)
    payload = final["payload"]
    check(final["ok"] and payload["status"] == "ok" and payload["reply"] == text, f"{final}")
    check(payload["tools"][0]["name"] == "exec", f"tools {payload}")

    # 200 events queued in one go, then the final reply: every one arrives, once, in order.
    accepted, events, final = run_agent(ws, "b1", {"message": "burst"})
    seqs = [e["seq"] for e in events]
    check(len(events) == 200, f"burst: {len(events)} events")
    check(seqs == list(range(seqs[0], seqs[0] + len(seqs))), f"burst seqs {seqs}")
    deltas = [e["payload"].get("delta", "") for e in events]
    check(deltas == [f"<{i}>" for i in range(200)], f"burst deltas {deltas[:5]}...")
    check(final["payload"]["reply"] == "".join(deltas), f"burst final {final['payload']}")

    # Same idempotency key: the original run, and both requests get a final reply.
    ws.request("i1", "agent", {"message": "once", "idempotencyKey": "key-1"})
    ws.request("i2", "agent", {"message": "once", "idempotencyKey": "key-1"})
    replies = {}
    while len([r for r in replies.values() if len(r) == 2]) < 2:
        frame = ws.recv_json()
        if frame["type"] == "res":
            replies.setdefault(frame["id"], []).append(frame)
    run_ids = {r[0]["payload"]["runId"] for r in replies.values()}
    check(len(run_ids) == 1, f"idempotent retry started another run: {run_ids}")
    check(all(r[1]["payload"]["status"] == "ok" for r in replies.values()), "idempotent finals")

    # Abort a slow run.
    ws.request("s1", "agent", {"message": "slow please"})
    accepted = ws.recv_json()
    slow_id = accepted["payload"]["runId"]
    ws.request("x1", "agent.abort", {"runId": slow_id})
    got = {}
    while "x1" not in got or "s1" not in got:
        frame = ws.recv_json()
        if frame["type"] == "res":
            got[frame["id"]] = frame
    check(got["x1"]["ok"] and got["x1"]["payload"] == {"aborted": True}, f"abort: {got['x1']}")
    check(got["s1"]["payload"]["status"] == "aborted", f"aborted final: {got['s1']}")
    ws.request("x2", "agent.abort", {"runId": slow_id})
    check(error_code(ws.recv_json()) == "NOT_FOUND", "abort of a finished run")

    ws.request("hist", "chat.history", {"sessionKey": "agent:main:cli:direct:alice", "limit": 2})
    res = ws.recv_json()
    check(res["ok"] and len(res["payload"]["messages"]) == 2, f"history: {res}")
    ws.request("sl", "sessions.list")
    res = ws.recv_json()
    check(any(s["key"] == "agent:main:cli:direct:alice" for s in res["payload"]["sessions"]),
          f"sessions: {res}")
    ws.request("st", "status")
    res = ws.recv_json()
    check(res["ok"] and res["payload"]["connections"] >= 1, f"status: {res}")
    ws.close()


def test_client_leaves_mid_run():
    ws = connected()
    ws.request("a", "agent", {"message": "slow tool run"})
    ws.recv_json()  # accepted
    ws.sock.close()  # gone without a close frame while the run streams on
    time.sleep(1.5)
    ws = connected()
    health_answers(ws, "after")
    ws.close()


def test_auth_failures_and_lockout():  # (no lockout any more: failures are slowed)
    ws = WebSocket()
    res = connect(ws, token="wrong-token")
    check(error_code(res) == "UNAUTHORIZED" and res["id"] == "1", f"wrong token: {res}")
    ws.expect_close(1008)

    ws = WebSocket()
    nonce = challenge(ws)
    ws.request("h", "health")
    check(error_code(ws.recv_json()) == "UNAUTHORIZED", "method before connect")
    ws.expect_close(1008)

    ws = WebSocket()
    res = connect(ws, nonce="0" * 32)
    check(error_code(res) == "UNAUTHORIZED" and "nonce" in res["error"]["message"], f"{res}")
    ws.expect_close(1008)

    ws = WebSocket()
    challenge(ws)
    ws.send_text(json.dumps({"type": "req", "id": "1", "method": "connect",
                             "params": {"pad": "x" * 20000}}))
    check(error_code(ws.recv_json()) == "FRAME_TOO_LARGE", "large frame before connect")
    ws.expect_close(1008)

    # Four failures so far from 127.0.0.1: the fifth is answered late. Only that connection
    # waits: meanwhile the right token, from the same address, gets in at once.
    bad = WebSocket()
    nonce = challenge(bad)
    sent = time.time()
    bad.request("1", "connect", {"auth": {"token": "wrong-again"}, "nonce": nonce,
                                 "client": {"id": "cli", "version": "test", "user": "alice"}})
    time.sleep(0.05)
    started = time.time()
    good = connected()
    health_answers(good, "during")
    check(time.time() - started < 0.5, "the right token waited for the failing connection")
    res = bad.recv_json()
    check(error_code(res) == "UNAUTHORIZED", f"5th failure: {res}")
    check(time.time() - sent >= 0.2, "the 5th failure was answered at once")
    bad.expect_close(1008)
    good.close()


def main():
    tests = [test_http, test_connection_cap, test_upgrade_checks, test_session,
             test_client_leaves_mid_run, test_auth_failures_and_lockout]
    for test in tests:
        try:
            test()
            print(f"ok   {test.__name__}", flush=True)
        except Exception as e:  # report which check failed, then fail the run
            print(f"FAIL {test.__name__}: {type(e).__name__}: {e}", flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
