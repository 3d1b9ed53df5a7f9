#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A fake of Slack's Web API and Socket Mode, for tests.

Runs in: tests only (never shipped). Written from Slack's API documentation (Socket Mode,
apps.connections.open, the Events API, chat.postMessage, reactions.add, users.info,
files.getUploadURLExternal / files.completeUploadExternal, rate limits), independently of
chitin's client. Like Slack it answers errors as HTTP 200 {"ok": false, "error"}, 429 with
Retry-After, hands out single-use Socket Mode URLs, redelivers an envelope that was not
acknowledged in time (a new envelope_id, the same event_id, retry_attempt + 1), sends
`disconnect` on request, pings the client, and keeps what the client did for a control API
(tests/fakes/README.md).

Usage: fake_slack.py --port 0 --port-file PATH [--app-token T] [--bot-token T]
"""

import argparse
import asyncio
import base64
import json
import os
import re
import sys
import time
import urllib.parse
import uuid

from aiohttp import WSMsgType, web

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_chat_common import Log, json_response, request_params, run_app, stored_file  # noqa: E402

TEAM = "T0FAKE"
APP = "A0APP"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
EMOJI = {"eyes", "+1", "thumbsup", "-1", "white_check_mark", "heart", "tada", "joy", "pray",
         "fire", "ok_hand", "thinking_face", "hourglass_flowing_sand", "x", "warning", "rocket",
         "wave", "100", "sparkles", "smile", "slightly_smiling_face", "raised_hands", "clap"}
MAX_RETRIES = 3


class Fake:
    def __init__(self, app_token, bot_token):
        self.app_token = app_token
        self.bot_token = bot_token
        self.port = 0
        self.log = Log()
        self.tickets = {}  # ticket -> used
        self.conns = []  # {"ws", "ticket", "info"}
        self.current = None
        self.ack_timeout = 3.0
        self.ping_interval = 5.0
        self.envelopes = {}  # envelope_id -> record
        self.pending = []  # envelopes waiting for a connection
        self.messages = {}  # (channel, ts) -> message
        self.last_ts = 0.0
        self.reactions = set()
        self.users = {BOT_USER: {"id": BOT_USER, "name": "chitin", "real_name": "chitin",
                                 "is_bot": True, "profile": {"display_name": "chitin",
                                                             "real_name": "chitin"}}}
        self.uploads = {}  # file id -> {"filename", "length", "data", "completed"}
        self.files = {}  # file id -> (name, bytes, mimetype) for url_private downloads
        self.forced = {}  # method -> [retry_after, count]

    def next_ts(self):
        ts = max(time.time(), self.last_ts + 0.000001)
        self.last_ts = ts
        return f"{ts:.6f}"

    # --- Web API -------------------------------------------------------------------------------

    def fail(self, error, status=200, **extra):
        body = {"ok": False, "error": error}
        body.update(extra)
        return json_response(body, status=status)

    async def api(self, request):
        method = request.match_info["method"]
        try:
            params, kind = await request_params(request)
        except ValueError:
            return self.fail("invalid_json")
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else params.get("token")
        record = self.log.add("api", method=method, http=request.method, content=kind,
                              params={k: v for k, v in params.items() if k != "token"},
                              token_kind=(token or "")[:5])
        forced = self.forced.get(method)
        if forced and forced[1] > 0:
            forced[1] -= 1
            record["status"] = 429
            return json_response({"ok": False, "error": "ratelimited"}, status=429,
                                 headers={"Retry-After": str(forced[0])})
        if not token:
            return self.fail("not_authed")
        if token not in (self.app_token, self.bot_token):
            return self.fail("invalid_auth")
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return self.fail("unknown_method", status=404)
        app_only = method == "apps.connections.open"
        if app_only != (token == self.app_token):
            return self.fail("not_allowed_token_type")
        response = await handler(params)
        record["status"] = response.status
        return response

    async def m_auth_test(self, p):
        return json_response({"ok": True, "url": "https://fake.slack.com/", "team": "Fake",
                              "user": "chitin", "team_id": TEAM, "user_id": BOT_USER,
                              "bot_id": BOT_ID, "is_enterprise_install": False})

    async def m_apps_connections_open(self, p):
        ticket = uuid.uuid4().hex
        self.tickets[ticket] = False
        return json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}"
                                                 f"&app_id={APP}"})

    async def m_users_info(self, p):
        user = self.users.get(p.get("user"))
        if user is None:
            return self.fail("user_not_found")
        return json_response({"ok": True, "user": user})

    async def m_chat_postMessage(self, p):
        channel = p.get("channel")
        text = p.get("text")
        if not channel:
            return self.fail("channel_not_found")
        if not text and not p.get("blocks") and not p.get("attachments"):
            return self.fail("no_text")
        if text and len(text) > 40000:
            return self.fail("msg_too_long")
        ts = self.next_ts()
        message = {"type": "message", "text": text or "", "user": BOT_USER, "bot_id": BOT_ID,
                   "ts": ts, "team": TEAM}
        if p.get("thread_ts"):
            message["thread_ts"] = p["thread_ts"]
        self.messages[(channel, ts)] = message
        self.log.add("posted", channel=channel, ts=ts, text=text, thread_ts=p.get("thread_ts"),
                     mrkdwn=p.get("mrkdwn"))
        return json_response({"ok": True, "channel": channel, "ts": ts, "message": message})

    async def m_reactions_add(self, p):
        channel, ts, name = p.get("channel"), p.get("timestamp"), p.get("name")
        if not channel or not ts or not name:
            return self.fail("invalid_arguments")
        if name not in EMOJI or not re.fullmatch(r"[a-z0-9_+\-']+", name):
            return self.fail("invalid_name")
        if (channel, ts) not in self.messages:
            return self.fail("message_not_found")
        if (channel, ts, name) in self.reactions:
            return self.fail("already_reacted")
        self.reactions.add((channel, ts, name))
        self.log.add("reaction", channel=channel, timestamp=ts, name=name)
        return json_response({"ok": True})

    async def m_files_getUploadURLExternal(self, p):
        filename = p.get("filename")
        try:
            length = int(p.get("length", ""))
        except ValueError:
            length = 0
        if not filename or length <= 0:
            return self.fail("invalid_arguments")
        fid = "F" + uuid.uuid4().hex[:10].upper()
        self.uploads[fid] = {"filename": filename, "length": length, "data": None,
                             "completed": False}
        return json_response({"ok": True, "file_id": fid,
                              "upload_url": f"http://127.0.0.1:{self.port}/upload/v1/{fid}"})

    async def m_files_completeUploadExternal(self, p):
        try:
            files = json.loads(p["files"]) if isinstance(p.get("files"), str) else p.get("files")
        except ValueError:
            files = None
        if not isinstance(files, list) or not files:
            return self.fail("invalid_arguments")
        done = []
        for f in files:
            upload = self.uploads.get(f.get("id")) if isinstance(f, dict) else None
            if upload is None or upload["data"] is None:
                return self.fail("file_not_found")
            upload["completed"] = True
            done.append({"id": f["id"], "title": f.get("title") or upload["filename"],
                         "name": upload["filename"], "size": len(upload["data"])})
        channel = p.get("channel_id")
        self.log.add("upload_completed", channel_id=channel, thread_ts=p.get("thread_ts"),
                     initial_comment=p.get("initial_comment"), files=done)
        return json_response({"ok": True, "files": done})

    async def upload(self, request):
        fid = request.match_info["id"]
        upload = self.uploads.get(fid)
        if upload is None:
            return web.Response(status=404, text="not found")
        if request.content_type == "multipart/form-data":
            data = None
            async for part in await request.multipart():
                if part.filename is not None or part.name in ("file", "filename"):
                    data = await part.read()
        else:
            data = await request.read()
        if data is None or len(data) != upload["length"]:
            self.log.add("upload_rejected", id=fid, got=None if data is None else len(data))
            return web.Response(status=400, text="length mismatch")
        upload["data"] = data
        self.log.add("upload_bytes", id=fid, size=len(data),
                     content_type=request.content_type,
                     sample=base64.b64encode(data[:32]).decode())
        return web.Response(text=f"OK - {len(data)}")

    async def private_file(self, request):
        fid = request.match_info["id"].split("-", 1)[-1]  # "<team>-<file id>"
        if request.headers.get("Authorization") != f"Bearer {self.bot_token}":
            # Slack answers an unauthenticated file URL with a redirect to its sign-in page.
            self.log.add("file_download_unauthorized", id=fid)
            raise web.HTTPFound(f"http://127.0.0.1:{self.port}/?redir=files")
        return stored_file(self.files, fid, self.log, "file_download")

    # --- Socket Mode ---------------------------------------------------------------------------

    async def socket(self, request):
        ticket = request.query.get("ticket")
        if ticket not in self.tickets or self.tickets[ticket]:
            self.log.add("socket_refused", ticket=ticket)
            return web.Response(status=401, text="invalid or reused ticket")
        self.tickets[ticket] = True
        ws = web.WebSocketResponse(autoping=True, heartbeat=self.ping_interval or None)
        await ws.prepare(request)
        conn = {"ws": ws, "ticket": ticket,
                "info": {"ticket": ticket, "opened": self.log.add("socket_open")["t"],
                         "closed": None, "received": []}}
        self.conns.append(conn)
        self.current = conn
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "debug_info": {"host": "fake-applink", "build_number": 1,
                                           "approximate_connection_time": 18060},
                            "connection_info": {"app_id": APP}})
        pending, self.pending = self.pending, []
        for envelope_id in pending:
            await self.deliver(envelope_id)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                conn["info"]["received"].append(msg.data)
                try:
                    ack = json.loads(msg.data)
                except ValueError:
                    continue
                record = self.envelopes.get(ack.get("envelope_id") if isinstance(ack, dict) else None)
                if record is not None and not record["acked"]:
                    record["acked"] = True
                    record["ack_after"] = round(time.monotonic() - record["sent_at"], 4)
                    self.log.add("ack", envelope_id=record["id"], after=record["ack_after"],
                                 event_id=record["event_id"])
        finally:
            conn["info"]["closed"] = self.log.add("socket_closed")["t"]
            if self.current is conn:
                self.current = None
        return ws

    async def deliver(self, envelope_id):
        record = self.envelopes[envelope_id]
        conn = self.current
        if conn is None or conn["ws"].closed or conn.get("silent"):
            self.pending.append(envelope_id)
            return
        record["sent_at"] = time.monotonic()
        try:
            await conn["ws"].send_json(record["envelope"])
        except (ConnectionError, RuntimeError):
            # The peer went away but the socket is not marked closed yet (a killed client's
            # TCP reset arrives before the close handshake): held for the next connection, as
            # Slack holds events while no connection is open.
            self.pending.append(envelope_id)
            return
        self.log.add("envelope_sent", envelope_id=envelope_id, event_id=record["event_id"],
                     retry_attempt=record["envelope"]["retry_attempt"])
        asyncio.ensure_future(self.watch_ack(envelope_id))

    async def watch_ack(self, envelope_id):
        await asyncio.sleep(self.ack_timeout)
        record = self.envelopes[envelope_id]
        if record["acked"] or record["envelope"]["retry_attempt"] >= MAX_RETRIES:
            return
        retry = json.loads(json.dumps(record["envelope"]))
        retry["envelope_id"] = str(uuid.uuid4())
        retry["retry_attempt"] += 1
        retry["retry_reason"] = "timeout"
        self.new_envelope(retry, record["event_id"])
        await self.deliver(retry["envelope_id"])

    def new_envelope(self, envelope, event_id):
        self.envelopes[envelope["envelope_id"]] = {"id": envelope["envelope_id"],
                                                   "envelope": envelope, "event_id": event_id,
                                                   "acked": False, "sent_at": None}

    # --- control API (tests only) --------------------------------------------------------------

    async def control(self, request):
        action = request.match_info["action"]
        body = await request.json() if request.can_read_body else {}
        if action == "state":
            return json_response({"log": self.log.records,
                                  "connections": [c["info"] for c in self.conns],
                                  "connected": self.current is not None})
        if action == "config":
            self.ack_timeout = body.get("ack_timeout", self.ack_timeout)
            self.ping_interval = body.get("ping_interval", self.ping_interval)
            for user in body.get("users", []):
                self.users[user["id"]] = user
            return json_response({"ok": True})
        if action == "rate_limit":
            self.forced[body["method"]] = [body["retry_after"], body.get("count", 1)]
            return json_response({"ok": True})
        if action == "file":
            fid = "F" + uuid.uuid4().hex[:10].upper()
            data = base64.b64decode(body["data_b64"])
            self.files[fid] = (body["name"], data, body.get("mimetype"))
            url = f"http://127.0.0.1:{self.port}/files-pri/{TEAM}-{fid}/" + \
                urllib.parse.quote(body["name"])
            return json_response({"id": fid, "name": body["name"], "title": body["name"],
                                  "mimetype": body.get("mimetype"), "size": len(data),
                                  "url_private": url, "url_private_download": url + "?download"})
        if action == "event":
            event = dict(body["event"])
            if event.get("type") in ("message", "app_mention") and "ts" not in event:
                event["ts"] = self.next_ts()
            if event.get("type") in ("message", "app_mention"):
                self.messages[(event.get("channel"), event["ts"])] = event
            event_id = body.get("event_id") or "Ev" + uuid.uuid4().hex[:10].upper()
            envelope = {"envelope_id": str(uuid.uuid4()),
                        "payload": {"token": "verification-token", "team_id": TEAM,
                                    "api_app_id": APP, "event": event,
                                    "type": "event_callback", "event_id": event_id,
                                    "event_time": int(time.time()),
                                    "authorizations": [{"team_id": TEAM, "user_id": BOT_USER,
                                                        "is_bot": True}],
                                    "is_ext_shared_channel": False},
                        "type": "events_api", "accepts_response_payload": False,
                        "retry_attempt": 0, "retry_reason": ""}
            self.new_envelope(envelope, event_id)
            await self.deliver(envelope["envelope_id"])
            # As Slack does when an acknowledgement is lost on the way: the same event again,
            # under a new envelope_id, whether or not the first one was acknowledged.
            for attempt in range(1, int(body.get("duplicate", 0)) + 1):
                retry = json.loads(json.dumps(envelope))
                retry["envelope_id"] = str(uuid.uuid4())
                retry["retry_attempt"] = attempt
                retry["retry_reason"] = "timeout"
                self.new_envelope(retry, event_id)
                await self.deliver(retry["envelope_id"])
            return json_response({"envelope_id": envelope["envelope_id"], "event_id": event_id,
                                  "ts": event.get("ts")})
        if action == "disconnect":
            conn = self.current
            if conn is None:
                return json_response({"error": "no connection"}, status=409)
            await conn["ws"].send_json({"type": "disconnect",
                                        "reason": body.get("reason", "refresh_requested"),
                                        "debug_info": {"host": "fake-applink"}})
            if body.get("close_after") is not None:
                async def close_later(ws, delay):
                    await asyncio.sleep(delay)
                    await ws.close()
                asyncio.ensure_future(close_later(conn["ws"], body["close_after"]))
            return json_response({"ok": True})
        if action == "silence":
            # A half-dead link: the server neither reads nor writes any more (start the
            # connection with ping_interval 0, or its own pings would still flow).
            conn = self.current
            if conn is None:
                return json_response({"error": "no connection"}, status=409)
            conn["ws"]._req.transport.pause_reading()
            conn["silent"] = True
            return json_response({"ok": True})
        if action == "drop":
            conn = self.current
            if conn is None:
                return json_response({"error": "no connection"}, status=409)
            conn["ws"]._writer.transport.abort()
            return json_response({"ok": True})
        return json_response({"error": f"unknown action {action}"}, status=404)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--app-token", default="xapp-1-fake")
    parser.add_argument("--bot-token", default="xoxb-fake")
    args = parser.parse_args()
    fake = Fake(args.app_token, args.bot_token)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/api/{method}", fake.api)
    app.router.add_post("/upload/v1/{id}", fake.upload)
    app.router.add_get("/files-pri/{id}/{name}", fake.private_file)
    app.router.add_get("/link/", fake.socket)
    app.router.add_route("*", "/_control/{action}", fake.control)

    def bound(port):
        fake.port = port

    run_app(app, args.host, args.port, args.port_file, bound)


if __name__ == "__main__":
    main()
