#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Checks tests/fakes/fake_signal_cli.py against signal-cli's documented HTTP behaviour with an
independent client: Python's http.client and a few lines of SSE reading written here from the
WHATWG rules, sharing nothing with chitin's C++ client (no signal-cli client library installs
offline: the npm ones drive a local signal-cli over stdio).

Runs in: tests only. Usage: fake_signal_cli_check.py (exit 0 = every check passed).
"""

import base64
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ACCOUNT, ACCOUNT_UUID = "+15550000000", "00000000-0000-4000-8000-000000000001"
ALICE, ALICE_UUID = "+15551110000", "11111111-1111-4111-8111-111111111111"
GROUP = base64.b64encode(bytes(range(32))).decode()


class FakeSignalCliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.TemporaryDirectory()
        port_file = os.path.join(cls.dir.name, "port")
        cls.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_signal_cli.py"),
                                     "--port", "0", "--port-file", port_file, "--account", ACCOUNT,
                                     "--account-uuid", ACCOUNT_UUID, "--keepalive", "0.2"])
        for _ in range(200):
            if os.path.exists(port_file):
                break
            time.sleep(0.02)
        with open(port_file) as f:
            cls.port = int(f.read())

    @classmethod
    def tearDownClass(cls):
        cls.proc.kill()
        cls.proc.wait()
        cls.dir.cleanup()

    def request(self, method, path, body=None, headers=None, host=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        if host:
            conn.putrequest(method, path, skip_host=True)
            conn.putheader("Host", host)
            for k, v in h.items():
                conn.putheader(k, v)
            data = json.dumps(body).encode() if body is not None else b""
            conn.putheader("Content-Length", str(len(data)))
            conn.endheaders(data)
        else:
            conn.request(method, path, json.dumps(body) if body is not None else None, h)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, (json.loads(data) if data else None)

    def rpc(self, method, params, rid=1):
        return self.request("POST", "/api/v1/rpc", {"jsonrpc": "2.0", "method": method,
                                                    "params": params, "id": rid})

    def control(self, name, body=None):
        return self.request("POST" if body is not None else "GET", "/_control/" + name, body)[1]

    def open_events(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("GET", "/api/v1/events?account=%2B15550000000")
        r = conn.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("Content-Type"), "text/event-stream")
        return conn, r

    def next_event(self, response):
        """One dispatched SSE event as (type, data), skipping comments (WHATWG parsing)."""
        kind, data = "", []
        while True:
            line = response.readline()
            if not line:
                return None
            line = line.rstrip(b"\r\n").decode()
            if line == "":
                if data:
                    return kind, "\n".join(data)
                kind = ""
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                kind = value
            elif field == "data":
                data.append(value)

    def test_check_and_errors(self):
        self.assertEqual(self.request("GET", "/api/v1/check")[0], 200)
        self.assertEqual(self.request("POST", "/api/v1/rpc", {"jsonrpc": "2.0"}, host="evil.example")[0], 421)
        self.assertEqual(self.request("POST", "/api/v1/rpc", {}, headers={"Content-Type": "text/plain"})[0], 415)
        self.assertEqual(self.request("GET", "/api/v1/rpc")[0], 404)  # GET on rpc is not the events path
        status, body = self.request("POST", "/api/v1/rpc", {"jsonrpc": "2.0"})
        self.assertEqual((status, body["error"]["code"]), (200, -32600))
        self.assertEqual(self.rpc("nope", {})[1]["error"]["code"], -32601)
        self.assertEqual(self.rpc("send", {"message": "x"})[1]["error"]["code"], -1)
        self.assertEqual(self.rpc("send", {"account": "+19999", "recipient": ALICE,
                                           "message": "x"})[1]["error"]["code"], -32602)

    def test_send_notification_batch(self):
        status, body = self.rpc("send", {"account": ACCOUNT, "recipient": [ALICE], "message": "hi"})
        self.assertEqual(status, 200)
        self.assertIsInstance(body["result"]["timestamp"], int)
        self.assertEqual(body["result"]["results"][0]["type"], "SUCCESS")
        status, _ = self.request("POST", "/api/v1/rpc", {"jsonrpc": "2.0", "method": "sendTyping",
                                                          "params": {"groupId": GROUP}})
        self.assertEqual(status, 201)  # a notification: no response object
        status, body = self.request("POST", "/api/v1/rpc", [
            {"jsonrpc": "2.0", "method": "sendTyping", "params": {"recipient": ALICE, "stop": True}, "id": "a"},
            {"jsonrpc": "2.0", "method": "sendReaction", "params": {"recipient": ALICE, "emoji": "👍",
                                                                     "targetAuthor": ALICE}, "id": "b"}])
        self.assertEqual([r["id"] for r in body], ["a", "b"])
        self.assertIn("result", body[0])
        self.assertIn("target-timestamp", body[1]["error"]["message"])

    def test_data_uri_attachment_and_path(self):
        uri = "data:image/png;filename=a%20b.png;base64," + base64.b64encode(b"\x89PNG").decode()
        body = self.rpc("send", {"groupId": GROUP, "attachments": [uri]})[1]
        self.assertIn("result", body)
        call = self.control("calls")[-1]
        self.assertEqual(call["attachments"], [{"mime": "image/png", "name": "a b.png",
                                                "data": base64.b64encode(b"\x89PNG").decode()}])
        body = self.rpc("send", {"recipient": ALICE, "message": "m", "attachment": "/nonexistent/x.png"})[1]
        self.assertEqual(body["error"]["code"], -1)

    def test_events_manual_receive_mode_and_drop(self):
        # Arrives while nobody listens: kept until a stream opens (receive-mode manual).
        self.control("message", {"from": ALICE, "fromUuid": ALICE_UUID, "name": "Alice", "text": "early"})
        conn, r = self.open_events()
        kind, data = self.next_event(r)
        self.assertEqual(kind, "receive")
        item = json.loads(data)
        self.assertEqual(item["account"], ACCOUNT)
        env = item["envelope"]
        self.assertEqual((env["sourceUuid"], env["sourceNumber"], env["dataMessage"]["message"]),
                         (ALICE_UUID, ALICE, "early"))
        att = base64.b64encode(b"hello").decode()
        self.control("message", {"from": ALICE, "fromUuid": ALICE_UUID, "text": "@bot look",
                                 "groupId": GROUP, "mentions": [{"uuid": ACCOUNT_UUID, "start": 0, "length": 1}],
                                 "attachments": [{"name": "h.txt", "mime": "text/plain", "data": att}]})
        dm = json.loads(self.next_event(r)[1])["envelope"]["dataMessage"]
        self.assertEqual(dm["groupInfo"]["groupId"], GROUP)
        self.assertEqual(dm["mentions"][0]["uuid"], ACCOUNT_UUID)
        a = dm["attachments"][0]
        got = self.rpc("getAttachment", {"id": a["id"], "groupId": GROUP})[1]["result"]["data"]
        self.assertEqual(base64.b64decode(got), b"hello")
        self.control("drop", {})
        try:  # the stream ends (http.client may or may not notice the missing last chunk)
            while self.next_event(r) is not None:
                pass
        except http.client.IncompleteRead:
            pass
        conn.close()
        self.control("message", {"from": ALICE, "fromUuid": ALICE_UUID, "text": "while away"})
        conn, r = self.open_events()
        self.assertEqual(json.loads(self.next_event(r)[1])["envelope"]["dataMessage"]["message"], "while away")
        conn.close()

    def test_scripted_rate_limit(self):
        data = {"response": {"timestamp": 1, "results": [{"type": "RATE_LIMIT_FAILURE", "retryAfterSeconds": 1}]}}
        self.control("fail", {"method": "send", "code": -5, "message": "Failed to send message due to rate limiting",
                              "data": data, "times": 1})
        self.assertEqual(self.rpc("send", {"recipient": ALICE, "message": "x"})[1]["error"]["data"], data)
        self.assertIn("result", self.rpc("send", {"recipient": ALICE, "message": "x"})[1])
        failed, ok = [c for c in self.control("calls") if c["method"] == "send"][-2:]
        self.assertEqual((failed.get("error"), "error" in ok), (-5, False))
        self.assertLessEqual(failed["t"], ok["t"])


if __name__ == "__main__":
    unittest.main()
