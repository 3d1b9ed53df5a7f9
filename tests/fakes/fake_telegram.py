#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A fake Telegram Bot API server for tests (https://core.telegram.org/bots/api).

Runs in: tests only (never shipped). Written from the Bot API reference, independently of
chitin's client: it checks what a client sends the way the real server does and answers with its
shapes and wording. Stdlib only. See tests/fakes/README.md for the control API.

Usage: fake_telegram.py --port 0 --port-file PATH --token TOKEN [--username NAME] [--log F]
"""

import argparse
import base64
import email.parser
import email.policy
import hashlib
import json
import os
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_telegram_api import CONFLICT_POLL, Api, ApiError, bad  # noqa: E402


class Bot:
    """Everything the server knows; one lock and one condition for all request threads."""

    def __init__(self, token, username, log_path):
        self.token = token
        self.user = {"id": int(token.split(":")[0]), "is_bot": True, "first_name": "Chitin",
                     "username": username}
        self.cond = threading.Condition()
        self.updates = []                # unconfirmed, in order
        self.next_update_id = 700000001
        self.allowed = None              # the last allowed_updates a poller gave
        self.poll_generation = 0
        self.get_updates_calls = 0
        self.last_offset = None
        self.webhook = ""
        self.revoked = False
        self.chats = {}                  # id -> Chat
        self.migrated = {}               # old chat id -> new
        self.messages = {}               # (chat id, message id) -> Message
        self.next_message_id = {}
        self.files = {}                  # file_id -> {path, data, size}
        self.failures = []               # injected: {"method", ...}, in order
        self.sent = []
        self.log_file = open(log_path, "a") if log_path else None

    def log(self, record):
        if self.log_file:
            self.log_file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.log_file.flush()

    def message_id_for(self, chat_id):
        n = self.next_message_id.get(chat_id, 1)
        self.next_message_id[chat_id] = n + 1
        return n

    def add_update(self, update):
        with self.cond:
            update = dict(update)
            update["update_id"] = self.next_update_id
            self.next_update_id += 1
            self.updates.append(update)
            self.cond.notify_all()
            return update["update_id"]


def read_params(handler, body):
    """The four ways the Bot API takes parameters: query string, urlencoded, JSON, multipart."""
    url = urllib.parse.urlsplit(handler.path)
    params = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
    files = {}
    ctype = handler.headers.get("Content-Type", "")
    if ctype.startswith("application/json") and body:
        data = json.loads(body)
        if not isinstance(data, dict):
            raise bad("parameters must be a JSON object")
        params.update(data)
    elif ctype.startswith("application/x-www-form-urlencoded"):
        params.update({k: v[-1] for k, v in urllib.parse.parse_qs(body.decode()).items()})
    elif ctype.startswith("multipart/form-data"):
        head = ("Content-Type: %s\r\nMIME-Version: 1.0\r\n\r\n" % ctype).encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_filename()
            payload = part.get_payload(decode=True) or b""
            if filename is not None:
                files[name] = (filename, part.get_content_type(), payload)
            else:
                params[name] = payload.decode("utf-8")
    return params, files


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as separate small writes; without TCP_NODELAY each reply on a
    # kept-alive connection waits out the client's delayed ACK (~40 ms), as no real API does.
    disable_nagle_algorithm = True
    bot = None
    api = None

    def log_message(self, fmt, *args):
        pass

    def handle(self):
        try:
            super().handle()
        except ConnectionError:
            pass  # the client went away (a test stopping its worker): nothing to answer

    def reply(self, status, payload, content_type="application/json"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            # Uploads streamed without a length (grammY's multipart does this).
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def dispatch(self):
        body = self.body()
        path = urllib.parse.urlsplit(self.path).path
        try:
            if path.startswith("/control/"):
                return self.control(path[len("/control/"):], body)
            if path.startswith("/file/bot"):
                return self.download(path[len("/file/bot"):])
            if path.startswith("/bot"):
                return self.method(path[len("/bot"):], body)
            self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        except ConnectionError:
            pass

    def download(self, rest):
        token, _, file_path = rest.partition("/")
        if token != self.bot.token or self.bot.revoked:
            return self.reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        for entry in self.bot.files.values():
            if entry["path"] == file_path:
                return self.reply(200, entry["data"], "application/octet-stream")
        self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})

    def method(self, rest, body):
        token, _, name = rest.partition("/")
        bot = self.bot
        try:
            if token != bot.token or bot.revoked:
                raise ApiError(401, "Unauthorized")
            with bot.cond:
                failure = next((f for f in bot.failures if f["method"] in (name, "*")), None)
                if failure is not None:
                    failure["times"] = failure.get("times", 1) - 1
                    if failure["times"] <= 0:
                        bot.failures.remove(failure)
            if failure is not None:
                bot.log({"method": name, "injected": failure})
                if failure.get("delay"):
                    time.sleep(failure["delay"])
                if failure.get("drop"):
                    # A connection dropped mid-request: no status line at all.
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                params = {}
                if failure.get("retry_after") is not None:
                    params["retry_after"] = failure["retry_after"]
                if failure.get("migrate_to_chat_id") is not None:
                    params["migrate_to_chat_id"] = failure["migrate_to_chat_id"]
                status = failure.get("status", 500)
                default = {401: "Unauthorized", 409: CONFLICT_POLL,
                           429: "Too Many Requests: retry after %s" % failure.get("retry_after"),
                           500: "Internal Server Error"}.get(status, "Bad Request")
                raise ApiError(status, failure.get("description", default), params or None)
            handler = getattr(self.api, name, None) if name[:1].islower() else None
            if handler is None:
                raise ApiError(404, "Not Found")
            params, files = read_params(self, body)
            with bot.cond if name != "getUpdates" else _nullcontext():
                result = handler(params, files)
            bot.log({"method": name, "params": {k: v for k, v in params.items()},
                     "files": sorted(files)})
            self.reply(200, {"ok": True, "result": result})
        except ApiError as e:
            bot.log({"method": name, "error": e.code, "description": e.description})
            payload = {"ok": False, "error_code": e.code, "description": e.description}
            if e.parameters:
                payload["parameters"] = e.parameters
            self.reply(e.code, payload)

    def control(self, name, body):
        bot = self.bot
        data = json.loads(body) if body else {}
        if name == "message":
            # A user's message: {chat, from, text, entities, ...}; ids and date are filled in.
            message = dict(data)
            chat = message["chat"]
            with bot.cond:
                bot.chats[chat["id"]] = chat
                message.setdefault("message_id", bot.message_id_for(chat["id"]))
                message.setdefault("date", int(time.time()))
                bot.messages[(chat["id"], message["message_id"])] = message
            update_id = bot.add_update({"message": message})
            return self.reply(200, {"update_id": update_id, "message_id": message["message_id"]})
        if name == "update":
            return self.reply(200, {"update_id": bot.add_update(data)})
        if name == "file":
            content = base64.b64decode(data.get("content_b64", ""))
            with bot.cond:
                file_id = "U%d" % (len(bot.files) + 1)
                unique = hashlib.sha256(content).hexdigest()[:16]
                path = data.get("file_path", "documents/file_%d" % len(bot.files))
                size = data.get("size", len(content))
                bot.files[file_id] = {"path": path, "data": content, "size": size, "unique": unique}
            return self.reply(200, {"file_id": file_id, "file_unique_id": unique, "file_size": size,
                                    "file_path": path})
        if name == "fail":
            with bot.cond:
                bot.failures.append(data)
            return self.reply(200, {"ok": True})
        if name == "revoke":
            with bot.cond:
                bot.revoked = True
                bot.cond.notify_all()
            return self.reply(200, {"ok": True})
        if name == "migrate":
            with bot.cond:
                bot.migrated[data["from"]] = data["to"]
                old = bot.chats.get(data["from"], {})
                bot.chats[data["to"]] = {"id": data["to"], "type": "supergroup",
                                         "title": old.get("title", "group")}
            return self.reply(200, {"ok": True})
        if name == "webhook":
            Api(bot).setWebhook({"url": data.get("url", "")}, {})
            return self.reply(200, {"ok": True})
        if name == "sent":
            with bot.cond:
                return self.reply(200, {"sent": list(bot.sent)})
        if name == "state":
            with bot.cond:
                return self.reply(200, {
                    "pending": [u["update_id"] for u in bot.updates],
                    "last_offset": bot.last_offset, "get_updates_calls": bot.get_updates_calls,
                    "allowed_updates": bot.allowed, "failures_left": len(bot.failures)})
        self.reply(404, {"error": "unknown control " + name})


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--username", default="chitin_test_bot")
    parser.add_argument("--log")
    args = parser.parse_args()
    Handler.bot = Bot(args.token, args.username, args.log)
    Handler.api = Api(Handler.bot)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, args.port_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
