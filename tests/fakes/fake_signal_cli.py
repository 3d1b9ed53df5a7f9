#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A fake `signal-cli daemon --http HOST:PORT --receive-mode=manual`, for tests.

Runs in: tests only (never shipped). Written from signal-cli's signal-cli-jsonrpc(5) and
signal-cli(1) man pages and its HTTP server's observable behaviour, independently of chitin's
client: the three endpoints with their status codes (421 for a Host header the daemon is not
bound to, 404/405/415), JSON-RPC 2.0 single and batch requests (201 and no body when nothing
answers), signal-cli's error codes (-1 user error, -5 rate limit with the send results in
`data.response`, -32600/-32601/-32602), `receive` envelopes as `event:receive` SSE over chunked
encoding with `:` keep-alives, attachments as RFC 2397 data URIs (or paths on the daemon's own
disk), `getAttachment` returning `{"data": base64}`.

Receive mode is "manual": like the real daemon started with --receive-mode=manual, messages are
only taken from the (simulated) Signal server while an event stream is open; until then they
wait, so a client that reconnects gets what arrived in between.

Control API for tests (not signal-cli's), under /_control/:
  POST message  {from, fromUuid, name, text, groupId, groupName, mentions: [{number?, uuid?,
                 start, length}], quote: {id, authorNumber, authorUuid, text},
                 attachments: [{name, mime, data (base64)}], timestamp?}  -> {"timestamp"}
  POST envelope {...}       a raw envelope (sync, typing, receipt, reaction messages)
  POST drop                 closes every open event stream
  POST fail     {method, code, message, data?, times}  the next `times` calls of `method` fail
  GET  calls                every RPC call so far: [{method, params, t, error?}] (t: seconds
                            since the fake started, when the call arrived; error: the code
                            it was answered with)
  GET  streams              {"open": N, "opened": total}

Usage: fake_signal_cli.py --port 0 --port-file PATH --account +15550000000
                          --account-uuid UUID [--keepalive SECONDS]
"""

import argparse
import base64
import binascii
import json
import os
import queue
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATA_URI = re.compile(r"\Adata:(?P<type>.+?/.+?)?(?P<params>;.+?=.+?)?(?P<b64>;base64)?,(?P<data>.+)\Z",
                      re.IGNORECASE | re.DOTALL)
USER_ERROR, RATELIMIT_ERROR = -1, -5
INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32600, -32601, -32602


class RpcError(Exception):
    def __init__(self, code, message, data=None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class Daemon:
    def __init__(self, account, account_uuid, keepalive):
        self.account, self.account_uuid, self.keepalive = account, account_uuid, keepalive
        self.lock = threading.Lock()
        self.pending = []          # envelopes waiting on the "server" while no stream is open
        self.streams = []          # one queue.Queue per open event stream
        self.opened = 0
        self.calls = []
        self.failures = {}         # method -> [error dict, remaining]
        self.attachments = {}      # id -> bytes
        self.clock = int(time.time() * 1000)
        self.started = time.monotonic()

    def timestamp(self):
        with self.lock:
            self.clock = max(self.clock + 1, int(time.time() * 1000))
            return self.clock

    def push(self, envelope):
        item = {"envelope": envelope, "account": self.account}
        with self.lock:
            if self.streams:
                for q in self.streams:
                    q.put(item)
            else:
                self.pending.append(item)

    def open_stream(self):
        q = queue.Queue()
        with self.lock:
            for item in self.pending:
                q.put(item)
            self.pending = []
            self.streams.append(q)
            self.opened += 1
        return q

    def close_stream(self, q):
        with self.lock:
            if q in self.streams:
                self.streams.remove(q)

    def drop(self):
        with self.lock:
            for q in self.streams:
                q.put(None)

    # --- building what signal-cli would emit ---------------------------------------------

    def message_envelope(self, spec):
        ts = int(spec.get("timestamp") or self.timestamp())
        data = {"timestamp": ts, "message": spec.get("text"), "expiresInSeconds": 0,
                "viewOnce": False}
        if spec.get("mentions"):
            data["mentions"] = [{"name": m.get("number") or m.get("uuid"), "number": m.get("number"),
                                 "uuid": m.get("uuid"), "start": m.get("start", 0),
                                 "length": m.get("length", 1)} for m in spec["mentions"]]
        if spec.get("attachments"):
            data["attachments"] = []
            for a in spec["attachments"]:
                raw = base64.b64decode(a.get("data", ""))
                aid = "%016x.%s" % (len(self.attachments) + 1, (a.get("name") or "bin").rsplit(".", 1)[-1])
                with self.lock:
                    self.attachments[aid] = raw
                data["attachments"].append({"contentType": a.get("mime", "application/octet-stream"),
                                            "filename": a.get("name"), "id": aid,
                                            "size": a.get("size", len(raw)), "width": None,
                                            "height": None, "caption": None,
                                            "uploadTimestamp": ts})
        if spec.get("quote"):
            q = spec["quote"]
            data["quote"] = {"id": q["id"], "author": q.get("authorNumber") or q.get("authorUuid"),
                             "authorNumber": q.get("authorNumber"), "authorUuid": q.get("authorUuid"),
                             "text": q.get("text"), "attachments": []}
        if spec.get("groupId"):
            data["groupInfo"] = {"groupId": spec["groupId"], "groupName": spec.get("groupName", "Group"),
                                 "revision": 1, "type": "DELIVER"}
        number, uuid = spec.get("from"), spec.get("fromUuid")
        return {"source": number or uuid, "sourceNumber": number, "sourceUuid": uuid,
                "sourceName": spec.get("name"), "sourceDevice": 1, "timestamp": ts,
                "serverReceivedTimestamp": ts + 5, "serverDeliveredTimestamp": ts + 6,
                "dataMessage": data}

    # --- JSON-RPC -----------------------------------------------------------------------------

    def call(self, method, params):
        with self.lock:
            self.calls.append({"method": method, "params": params,
                               "t": round(time.monotonic() - self.started, 4)})
            failure = self.failures.get(method)
            if failure and failure[1] > 0:
                failure[1] -= 1
                err = failure[0]
                self.calls[-1]["error"] = err["code"]
                raise RpcError(err["code"], err["message"], err.get("data"))
        if params is not None and not isinstance(params, dict):
            raise RpcError(INVALID_PARAMS, "params must be an object")
        params = dict(params or {})
        account = params.pop("account", None)
        if account is not None and account not in (self.account, self.account_uuid):
            raise RpcError(INVALID_PARAMS, "Specified account does not exist")
        handler = {"send": self.rpc_send, "sendTyping": self.rpc_typing,
                   "sendReaction": self.rpc_reaction, "getAttachment": self.rpc_get_attachment,
                   "listGroups": lambda p: [], "version": lambda p: {"version": "0.13.19-fake"}}.get(method)
        if handler is None:
            raise RpcError(METHOD_NOT_FOUND, "Method not implemented")
        return handler(params)

    def recipients(self, params):
        """signal-cli takes `recipient` (or the plural) as one value or a list, and `groupId`."""
        out = []
        for key in ("recipient", "recipients"):
            v = params.get(key)
            out += v if isinstance(v, list) else ([v] if v is not None else [])
        groups = params.get("groupId", params.get("groupIds"))
        groups = groups if isinstance(groups, list) else ([groups] if groups is not None else [])
        for r in out:
            if not isinstance(r, str) or not (r.startswith("+") and r[1:].isdigit()
                                              or re.fullmatch(r"[0-9a-f-]{36}", r)):
                raise RpcError(USER_ERROR, "Invalid recipient: %s" % r)
        for g in groups:
            try:
                if not isinstance(g, str) or len(base64.b64decode(g, validate=True)) != 32:
                    raise ValueError
            except (ValueError, binascii.Error):
                raise RpcError(USER_ERROR, "Invalid group id: %s" % g)
        if not out and not groups:
            raise RpcError(USER_ERROR, "No recipients given")
        return out, groups

    def results(self, recipients, groups):
        res = [{"recipientAddress": {"uuid": r if "-" in r else None,
                                     "number": r if r.startswith("+") else None},
                "type": "SUCCESS"} for r in recipients]
        for g in groups:
            res.append({"recipientAddress": {"uuid": None, "number": "+15550009999"},
                        "groupId": g, "type": "SUCCESS"})
        return res

    def rpc_send(self, params):
        recipients, groups = self.recipients(params)
        attachments = params.get("attachments", params.get("attachment"))
        attachments = attachments if isinstance(attachments, list) else ([attachments] if attachments else [])
        decoded = []
        for a in attachments:
            if not isinstance(a, str):
                raise RpcError(USER_ERROR, "Invalid attachments")
            if a.startswith("data:"):
                m = DATA_URI.match(a)
                if not m or not m.group("b64"):
                    raise RpcError(USER_ERROR, "The given string is not a valid data URI.")
                names = {}
                if m.group("params"):
                    for part in m.group("params")[1:].split(";"):
                        k, _, v = part.partition("=")
                        names[k] = urllib.parse.unquote_plus(v)
                try:
                    data = base64.b64decode(m.group("data"), validate=True)
                except binascii.Error:
                    raise RpcError(USER_ERROR, "Illegal base64 character in attachment")
                decoded.append({"mime": m.group("type") or "text/plain",
                                "name": names.get("filename"), "data": base64.b64encode(data).decode()})
            elif not os.path.isfile(a):  # a path on the *daemon's* disk
                raise RpcError(USER_ERROR, "Invalid attachments: %s (No such file or directory)" % a)
        message = params.get("message")
        if not message and not decoded and not params.get("sticker"):
            raise RpcError(USER_ERROR, "No message given")
        if params.get("quoteTimestamp") is not None and not params.get("quoteAuthor"):
            raise RpcError(USER_ERROR, "Quote author parameter is missing")
        with self.lock:
            self.calls[-1]["attachments"] = decoded
        return {"timestamp": self.timestamp(), "results": self.results(recipients, groups)}

    def rpc_typing(self, params):
        recipients, groups = self.recipients(params)
        return {"timestamp": self.timestamp(), "results": self.results(recipients, groups)}

    def rpc_reaction(self, params):
        recipients, groups = self.recipients(params)
        for key in ("emoji", "targetAuthor", "targetTimestamp"):
            if params.get(key) in (None, ""):
                raise RpcError(INVALID_REQUEST, "argument --%s is required" % re.sub(
                    "([A-Z])", lambda m: "-" + m.group(1).lower(), key))
        if not isinstance(params["targetTimestamp"], int):
            raise RpcError(INVALID_REQUEST, "Cannot deserialize value of type `long`")
        return {"timestamp": self.timestamp(), "results": self.results(recipients, groups)}

    def rpc_get_attachment(self, params):
        aid = params.get("id")
        if not aid:
            raise RpcError(USER_ERROR, "Missing attachment id parameter")
        if ("recipient" in params) == ("groupId" in params):
            raise RpcError(INVALID_REQUEST, "one of the arguments --recipient -g/--group-id is required")
        with self.lock:
            data = self.attachments.get(aid)
        if data is None:
            raise RpcError(USER_ERROR, "Could not find attachment with ID: %s" % aid)
        return {"data": base64.b64encode(data).decode()}


def make_handler(daemon, allowed_hosts, port):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def reply(self, status, obj=None):
            body = b"" if obj is None else json.dumps(obj).encode()
            self.send_response(status)
            if obj is not None:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def host_allowed(self):
            host = (self.headers.get("Host") or "").lower()
            m = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:]+)(?::(\d+))?", host)
            if not m:
                return False
            name, p = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
            return name in allowed_hosts and (p is None or int(p) == port)

        def body(self):
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self):
            path, _, query = self.path.partition("?")
            if path.startswith("/_control/"):
                return self.control(path[10:], None)
            if path == "/api/v1/check":
                return self.reply(200)
            if not self.host_allowed():
                return self.reply(421)
            if path != "/api/v1/events":
                return self.reply(404)
            account = urllib.parse.parse_qs(query).get("account", [None])[0]
            if account not in (None, "", daemon.account, daemon.account_uuid):
                return self.reply(400)
            self.events()

        def do_POST(self):
            path = self.path.partition("?")[0]
            if path.startswith("/_control/"):
                return self.control(path[10:], json.loads(self.body() or b"{}"))
            if not self.host_allowed():
                self.body()
                return self.reply(421)
            if path != "/api/v1/rpc":
                self.body()
                return self.reply(404 if path != "/api/v1/events" else 405)
            if not (self.headers.get("Content-Type") or "").startswith("application/json"):
                self.body()
                return self.reply(415)
            try:
                request = json.loads(self.body())
            except ValueError as e:
                return self.reply(200, {"jsonrpc": "2.0", "id": None,
                                        "error": {"code": -32700, "message": str(e), "data": None}})
            if isinstance(request, list):
                answers = [a for a in (self.answer(r) for r in request) if a is not None]
                return self.reply(200, answers) if answers else self.reply(201)
            answer = self.answer(request)
            return self.reply(200, answer) if answer is not None else self.reply(201)

        def answer(self, request):
            rid = request.get("id") if isinstance(request, dict) else None
            if not isinstance(request, dict) or request.get("jsonrpc") != "2.0":
                return {"jsonrpc": "2.0", "id": rid,
                        "error": {"code": INVALID_REQUEST, "message": "jsonrpc version must be 2.0", "data": None}}
            if not isinstance(request.get("method"), str):
                return {"jsonrpc": "2.0", "id": rid,
                        "error": {"code": INVALID_REQUEST, "message": "method field must be set", "data": None}}
            try:
                result = daemon.call(request["method"], request.get("params"))
                response = {"jsonrpc": "2.0", "result": result, "id": rid}
            except RpcError as e:
                response = {"jsonrpc": "2.0", "id": rid,
                            "error": {"code": e.code, "message": e.message, "data": e.data}}
            return response if "id" in request else None  # a notification gets no answer

        def chunk(self, text):
            data = text.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def events(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            q = daemon.open_stream()
            try:
                while True:
                    try:
                        item = q.get(timeout=daemon.keepalive)
                    except queue.Empty:
                        self.chunk(":\n")
                        continue
                    if item is None:
                        break
                    self.chunk("event:receive\ndata:%s\n\n" % json.dumps(item, separators=(",", ":")))
            except OSError:
                pass
            finally:
                daemon.close_stream(q)
                self.close_connection = True  # a dropped stream ends without the last chunk

        def control(self, name, body):
            if name == "message":
                env = daemon.message_envelope(body)
                daemon.push(env)
                return self.reply(200, {"timestamp": env["timestamp"]})
            if name == "envelope":
                daemon.push(body)
                return self.reply(200, {})
            if name == "drop":
                daemon.drop()
                return self.reply(200, {})
            if name == "fail":
                with daemon.lock:
                    daemon.failures[body["method"]] = [body, body.get("times", 1)]
                return self.reply(200, {})
            if name == "calls":
                with daemon.lock:
                    return self.reply(200, list(daemon.calls))
            if name == "streams":
                with daemon.lock:
                    return self.reply(200, {"open": len(daemon.streams), "opened": daemon.opened})
            return self.reply(404, {"error": "unknown control " + name})

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--account", required=True)
    ap.add_argument("--account-uuid", required=True)
    ap.add_argument("--keepalive", type=float, default=15.0)
    args = ap.parse_args()
    daemon = Daemon(args.account, args.account_uuid, args.keepalive)
    server = ThreadingHTTPServer((args.host, args.port), None)
    port = server.server_address[1]
    # The real daemon pins the Host header to the address it is bound to plus the loopback names.
    server.RequestHandlerClass = make_handler(daemon, {args.host, "localhost", "127.0.0.1", "::1"}, port)
    server.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.rename(tmp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
