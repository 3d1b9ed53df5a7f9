#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A fake of Discord's gateway (v10, JSON, optional zlib-stream) and REST API (v10), for tests.

Runs in: tests only (never shipped). Written from Discord's developer documentation (Gateway,
Opcodes and Status Codes, Rate Limits, Message resource), independently of chitin's client: it
checks what a client sends the way Discord does (close codes, error bodies) and can misbehave on
request through a control API (tests/fakes/README.md):

  heartbeat ACK loss (a zombie connection), op 7 RECONNECT, op 9 INVALID SESSION, replay on
  RESUME, a fatal close code, a dropped connection, 429s per route bucket and global.

Usage: fake_discord.py --port 0 --port-file PATH [--token TOKEN] [--heartbeat-ms N]
"""

import argparse
import asyncio
import base64
import json
import os
import sys
import time
import urllib.parse
import uuid
import zlib

from aiohttp import WSMsgType, web

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_chat_common import Log, json_response, run_app, stored_file  # noqa: E402

DISCORD_EPOCH_MS = 1420070400000
GUILDS, GUILD_MEMBERS, GUILD_PRESENCES = 1 << 0, 1 << 1, 1 << 8
MESSAGE_CONTENT = 1 << 15
PRIVILEGED = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT
ALL_INTENTS = (1 << 26) - 1


class Session:
    def __init__(self, sid, intents):
        self.id = sid
        self.intents = intents
        self.seq = 0
        self.events = []  # every dispatch, for replay on RESUME
        self.conn = None
        self.resumable = True


class Conn:
    def __init__(self, ws, compress, path, query):
        self.ws = ws
        self.compressor = zlib.compressobj() if compress else None
        self.info = {"path": path, "query": query, "identify": None, "resume": None,
                     "closed_by_server": None, "heartbeats": []}
        self.session = None
        self.zombie = False  # stops sending anything, as a half-dead TCP connection does


class Fake:
    def __init__(self, token, heartbeat_ms):
        self.token = token
        self.heartbeat_ms = heartbeat_ms
        self.allowed_privileged = MESSAGE_CONTENT  # as if enabled in the developer portal
        self.bot = {"id": "100000000000000001", "username": "chitin", "discriminator": "0",
                    "global_name": None, "bot": True, "avatar": None}
        self.port = 0
        self.log = Log()
        self.sessions = {}
        self.current = None  # the newest session
        self.conns = []
        self.counter = 0
        self.messages = {}  # message id -> message object (ours and the users')
        self.users = {self.bot["id"]}  # a user id is no channel id: posting to one is a 404
        self.dm_channels = {}  # user id -> the DM channel opened with them
        self.files = {}  # attachment id -> (filename, bytes, content type)
        self.buckets = {}  # bucket key -> {"limit", "window", "remaining", "reset_at"}
        self.bucket_config = {}  # route -> (limit, window seconds)
        self.forced = []  # pending forced 429s: {"route", "retry_after", "global", "count"}
        self.global_until = 0.0

    def snowflake(self):
        self.counter += 1
        ms = int(time.time() * 1000)
        return str(((ms - DISCORD_EPOCH_MS) << 22) | (self.counter & 0x3FFFFF))

    # --- gateway -------------------------------------------------------------------------------

    async def send(self, conn, payload):
        if conn.zombie or conn.ws.closed:
            return
        text = json.dumps(payload)
        try:
            if conn.compressor:
                data = conn.compressor.compress(text.encode()) + \
                    conn.compressor.flush(zlib.Z_SYNC_FLUSH)
                await conn.ws.send_bytes(data)
            else:
                await conn.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            # The client is gone but its socket is not marked closed yet (a killed client's
            # reset arrives before any close frame). A dispatch stays in the session's event
            # list, so a resume replays it, as Discord's does.
            conn.info["send_failed"] = conn.info.get("send_failed", 0) + 1

    async def dispatch(self, session, t, d):
        session.seq += 1
        payload = {"op": 0, "t": t, "s": session.seq, "d": d}
        session.events.append(payload)
        if session.conn is not None:
            await self.send(session.conn, payload)
        return session.seq

    async def close(self, conn, code, reason):
        conn.info["closed_by_server"] = code
        await conn.ws.close(code=code, message=reason.encode())

    async def gateway(self, request):
        ws = web.WebSocketResponse(autoping=True, max_msg_size=4096 * 1024)
        await ws.prepare(request)
        q = dict(request.query)
        conn = Conn(ws, q.get("compress") == "zlib-stream", request.path, q)
        self.conns.append(conn)
        self.log.add("gateway_connect", path=request.path, query=q)
        if q.get("v") != "10":
            await self.close(conn, 4012, "Invalid API version.")
            return ws
        if q.get("encoding", "json") != "json":
            await self.close(conn, 4002, "Error while decoding payload.")
            return ws
        await self.send(conn, {"op": 10, "s": None, "t": None,
                               "d": {"heartbeat_interval": self.heartbeat_ms}})
        grace = self.heartbeat_ms * 2 / 1000 + 1
        try:
            while not ws.closed:
                try:
                    msg = await asyncio.wait_for(ws.receive(), timeout=grace)
                except asyncio.TimeoutError:
                    if not conn.zombie:
                        await self.close(conn, 4009, "Session timed out.")
                    continue
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                                WSMsgType.ERROR):
                    break
                if msg.type != WSMsgType.TEXT:
                    await self.close(conn, 4002, "Error while decoding payload.")
                    break
                if conn.zombie:
                    continue  # nothing reaches the server any more either
                await self.on_payload(conn, msg.data)
        finally:
            conn.info["client_close_code"] = ws.close_code
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
        return ws

    async def on_payload(self, conn, text):
        try:
            p = json.loads(text)
            op = p["op"]
        except (ValueError, KeyError, TypeError):
            await self.close(conn, 4002, "Error while decoding payload.")
            return
        d = p.get("d")
        if op == 1:
            conn.info["heartbeats"].append({"d": d, "t": self.log.add("heartbeat", d=d)["t"]})
            await self.send(conn, {"op": 11})
        elif op == 2:
            await self.identify(conn, d)
        elif op == 6:
            await self.resume(conn, d)
        elif op in (3, 4, 8):
            if conn.session is None:
                await self.close(conn, 4003, "Not authenticated.")
        else:
            await self.close(conn, 4001, "Unknown opcode.")

    async def identify(self, conn, d):
        conn.info["identify"] = d
        if conn.session is not None:
            await self.close(conn, 4005, "Already authenticated.")
            return
        if not isinstance(d, dict) or d.get("token") != self.token:
            await self.close(conn, 4004, "Authentication failed.")
            return
        intents = d.get("intents")
        props = d.get("properties")
        if (not isinstance(intents, int) or isinstance(intents, bool) or intents < 0
                or intents & ~ALL_INTENTS or not isinstance(props, dict)):
            await self.close(conn, 4013, "Invalid intent(s).")
            return
        if intents & PRIVILEGED & ~self.allowed_privileged:
            await self.close(conn, 4014, "Disallowed intent(s).")
            return
        session = Session(uuid.uuid4().hex, intents)
        self.sessions[session.id] = session
        self.current = session
        session.conn = conn
        conn.session = session
        await self.dispatch(session, "READY", {
            "v": 10, "user": self.bot, "guilds": [], "private_channels": [],
            "session_id": session.id,
            "resume_gateway_url": f"ws://127.0.0.1:{self.port}/resume",
            "application": {"id": self.bot["id"], "flags": 0},
            "shard": [0, 1]})

    async def resume(self, conn, d):
        conn.info["resume"] = d
        if not isinstance(d, dict) or d.get("token") != self.token:
            await self.close(conn, 4004, "Authentication failed.")
            return
        session = self.sessions.get(d.get("session_id"))
        seq = d.get("seq")
        if session is None or not session.resumable or not isinstance(seq, int) or seq > session.seq:
            await self.send(conn, {"op": 9, "d": False})
            return
        if session.conn is not None and session.conn is not conn:
            old = session.conn
            session.conn = None
            if not old.ws.closed:
                asyncio.ensure_future(old.ws.close(code=4000))
        session.conn = conn
        conn.session = session
        self.current = session
        for event in session.events:
            if event["s"] > seq:
                await self.send(conn, event)
        await self.dispatch(session, "RESUMED", {})

    # --- REST ----------------------------------------------------------------------------------

    def route_of(self, method, parts):
        """The route template and its major parameter (Discord buckets per route + major id)."""
        if parts[:1] == ["channels"] and len(parts) >= 2:
            rest = parts[2:]
            if rest == ["messages"]:
                return f"{method} /channels/{{channel_id}}/messages", parts[1]
            if rest == ["typing"]:
                return f"{method} /channels/{{channel_id}}/typing", parts[1]
            if len(rest) == 5 and rest[0] == "messages" and rest[2] == "reactions" and rest[4] == "@me":
                return (f"{method} /channels/{{channel_id}}/messages/{{message_id}}/reactions/"
                        "{emoji}/@me", parts[1])
        return f"{method} /" + "/".join(parts), ""

    def full_message(self, fields):
        """A message object with every field the Message resource always carries."""
        message = {"id": self.snowflake(), "type": 0, "content": "", "tts": False,
                   "mention_everyone": False, "mentions": [], "mention_roles": [],
                   "attachments": [], "embeds": [], "pinned": False, "flags": 0,
                   "components": [], "edited_timestamp": None,
                   "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())}
        message.update(fields)
        return message

    def error(self, status, code, message, **extra):
        body = {"message": message, "code": code}
        body.update(extra)
        return json_response(body, status=status)

    async def rest(self, request):
        parts = request.match_info["tail"].split("/")
        route, major = self.route_of(request.method, parts)
        # raw_path keeps the client's percent-encoding, which the emoji segment must have.
        record = self.log.add("rest", method=request.method, path=request.path,
                              raw_path=request.raw_path, route=route,
                              authorization=request.headers.get("Authorization"),
                              user_agent=request.headers.get("User-Agent"))
        if request.headers.get("Authorization") != f"Bot {self.token}":
            record["status"] = 401
            return self.error(401, 0, "401: Unauthorized")
        limited = self.rate_limited(route, major)
        if limited is not None:
            record["status"] = 429
            return limited
        response = await self.handle(request, parts, record)
        record["status"] = response.status
        response.headers["Via"] = "1.1 google"  # Discord's API answers through its load balancer
        for name, value in self.bucket_headers(route, major).items():
            response.headers[name] = value
        return response

    def rate_limited(self, route, major):
        now = time.monotonic()
        if now < self.global_until:
            return self.too_many(self.global_until - now, True)
        for forced in self.forced:
            if forced["route"] == route and forced["count"] > 0:
                forced["count"] -= 1
                if forced["global"]:
                    self.global_until = now + forced["retry_after"]
                return self.too_many(forced["retry_after"], forced["global"])
        bucket = self.bucket(route, major)
        if bucket is None:
            return None
        if now >= bucket["reset_at"]:
            bucket["remaining"] = bucket["limit"]
            bucket["reset_at"] = now + bucket["window"]
        if bucket["remaining"] == 0:
            self.log.add("bucket_exhausted", route=route, major=major)
            return self.too_many(bucket["reset_at"] - now, False, route, major)
        bucket["remaining"] -= 1
        return None

    def bucket(self, route, major):
        if route not in self.bucket_config:
            return None
        limit, window = self.bucket_config[route]
        key = (route, major)
        if key not in self.buckets:
            self.buckets[key] = {"limit": limit, "window": window, "remaining": limit,
                                 "reset_at": time.monotonic() + window,
                                 "hash": uuid.uuid5(uuid.NAMESPACE_URL, route).hex[:16]}
        return self.buckets[key]

    def bucket_headers(self, route, major):
        bucket = self.bucket(route, major)
        if bucket is None:
            return {}
        after = max(0.0, bucket["reset_at"] - time.monotonic())
        return {"X-RateLimit-Limit": str(bucket["limit"]),
                "X-RateLimit-Remaining": str(bucket["remaining"]),
                "X-RateLimit-Reset": f"{time.time() + after:.3f}",
                "X-RateLimit-Reset-After": f"{after:.3f}",
                "X-RateLimit-Bucket": bucket["hash"]}

    def too_many(self, retry_after, is_global, route=None, major=None):
        self.log.add("429", retry_after=retry_after, is_global=is_global)
        body = {"message": "You are being rate limited.", "retry_after": round(retry_after, 3),
                "global": is_global}
        headers = {"Retry-After": str(max(1, int(retry_after + 0.999))), "Via": "1.1 google",
                   "X-RateLimit-Scope": "global" if is_global else "user"}
        if is_global:
            headers["X-RateLimit-Global"] = "true"
        elif route is not None:
            headers.update(self.bucket_headers(route, major))
        return json_response(body, status=429, headers=headers)

    async def handle(self, request, parts, record):
        m = request.method
        if m == "GET" and parts == ["gateway", "bot"]:
            return json_response({"url": f"ws://127.0.0.1:{self.port}", "shards": 1,
                                  "session_start_limit": {"total": 1000, "remaining": 999,
                                                          "reset_after": 14400000,
                                                          "max_concurrency": 1}})
        if m == "GET" and parts == ["gateway"]:
            return json_response({"url": f"ws://127.0.0.1:{self.port}"})
        if m == "GET" and parts == ["users", "@me"]:
            return json_response(self.bot)
        if m == "GET" and parts == ["oauth2", "applications", "@me"]:
            return json_response({
                "id": self.bot["id"], "name": "chitin", "description": "", "icon": None,
                "rpc_origins": [], "bot_public": False, "bot_require_code_grant": False,
                "owner": {"id": "200000000000000002", "username": "owner", "discriminator": "0",
                          "avatar": None}, "verify_key": "00" * 32, "flags": 0, "team": None})
        if m == "POST" and parts == ["users", "@me", "channels"]:
            body = await request.json()
            user = str(body.get("recipient_id", ""))
            if not user.isdigit():
                return self.error(400, 50035, "Invalid Form Body")
            channel = self.dm_channels.setdefault(user, self.snowflake())
            self.log.add("dm_opened", recipient_id=user, channel_id=channel)
            return json_response({"id": channel, "type": 1, "last_message_id": None,
                                  "recipients": [{"id": user, "username": "user",
                                                  "discriminator": "0", "avatar": None}]})
        if len(parts) >= 2 and parts[0] == "channels" and parts[1] in self.users:
            return self.error(404, 10003, "Unknown Channel")
        if len(parts) >= 2 and parts[0] == "channels" and parts[1].isdigit():
            channel = parts[1]
            if m == "POST" and parts[2:] == ["messages"]:
                return await self.create_message(request, channel, record)
            if m == "POST" and parts[2:] == ["typing"]:
                self.log.add("typing", channel_id=channel)
                return web.Response(status=204)
            if (m == "PUT" and len(parts) == 7 and parts[2] == "messages"
                    and parts[4] == "reactions" and parts[6] == "@me"):
                return self.add_reaction(request, channel, parts[3])
        return self.error(404, 0, "404: Not Found")

    async def create_message(self, request, channel, record):
        files = []
        if request.content_type == "multipart/form-data":
            payload = None
            reader = await request.multipart()
            async for part in reader:
                data = await part.read()
                if part.name == "payload_json":
                    payload = json.loads(data)
                elif part.name and part.name.startswith("files["):
                    files.append({"field": part.name, "filename": part.filename,
                                  "content_type": part.headers.get("Content-Type"),
                                  "data": data})
                else:
                    return self.error(400, 50035, "Invalid Form Body")
            if payload is None:
                payload = {}
        elif request.content_type == "application/json":
            payload = await request.json()
        else:
            return self.error(400, 50035, "Invalid Form Body")
        record["body"] = payload
        content = payload.get("content") or ""
        if not isinstance(content, str):
            return self.error(400, 50035, "Invalid Form Body")
        if len(content) > 2000:  # Python counts code points, as Discord does
            return self.error(400, 50035, "Invalid Form Body", errors={"content": {"_errors": [
                {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}})
        if not content and not files:
            return self.error(400, 50006, "Cannot send an empty message")
        ref = payload.get("message_reference")
        if ref is not None:
            target = self.messages.get(str(ref.get("message_id")))
            if (target is None or target["channel_id"] != channel) and \
                    ref.get("fail_if_not_exists", True):
                return self.error(400, 50035, "Invalid Form Body", errors={"message_reference": {
                    "_errors": [{"code": "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                                 "message": "Unknown message"}]}})
        attachments = []
        for i, f in enumerate(files):
            aid = self.snowflake()
            self.files[aid] = (f["filename"], f["data"], f["content_type"])
            attachments.append({"id": aid, "filename": f["filename"], "size": len(f["data"]),
                                "url": f"http://127.0.0.1:{self.port}/attachments/{channel}/{aid}/"
                                       f"{urllib.parse.quote(f['filename'] or 'file')}",
                                "content_type": f["content_type"]})
        fields = {"channel_id": channel, "content": content, "author": self.bot,
                  "attachments": attachments, "type": 19 if ref else 0}
        if ref is not None:  # absent, not null, on a message that replies to nothing
            fields["message_reference"] = {"message_id": str(ref["message_id"]),
                                           "channel_id": channel}
        message = self.full_message(fields)
        self.messages[message["id"]] = message
        self.log.add("message_posted", channel_id=channel, content=content,
                     message_reference=ref, allowed_mentions=payload.get("allowed_mentions"),
                     files=[{"filename": f["filename"], "size": len(f["data"]),
                             "content_type": f["content_type"], "field": f["field"],
                             "sha": base64.b64encode(f["data"][:32]).decode()} for f in files],
                     id=message["id"])
        return json_response(message)

    def add_reaction(self, request, channel, message_id):
        raw = request.raw_path.split("/reactions/", 1)[1].rsplit("/@me", 1)[0]
        emoji = urllib.parse.unquote(raw)
        # A unicode emoji must arrive percent-encoded (a raw non-ASCII byte is not a valid URL),
        # a custom one as name:id.
        encoded = all(ord(c) < 128 for c in raw)
        custom = ":" in emoji and emoji.rsplit(":", 1)[1].isdigit()
        if not emoji or not encoded or (all(ord(c) < 128 for c in emoji) and not custom):
            return self.error(400, 10014, "Unknown Emoji")
        if message_id not in self.messages:
            return self.error(404, 10008, "Unknown Message")
        self.log.add("reaction", channel_id=channel, message_id=message_id, emoji=emoji, raw=raw)
        return web.Response(status=204)

    async def attachment(self, request):
        return stored_file(self.files, request.match_info["id"], self.log, "attachment_download")

    # --- control API (tests only) --------------------------------------------------------------

    async def control(self, request):
        action = request.match_info["action"]
        body = await request.json() if request.can_read_body else {}
        session = self.current
        conn = session.conn if session else None
        if action == "state":
            return json_response({"connections": [c.info for c in self.conns],
                                  "log": self.log.records,
                                  "session": session and {"id": session.id, "seq": session.seq,
                                                          "connected": conn is not None}})
        if action == "config":
            self.heartbeat_ms = body.get("heartbeat_ms", self.heartbeat_ms)
            self.allowed_privileged = body.get("allowed_privileged", self.allowed_privileged)
            for route, (limit, window) in body.get("buckets", {}).items():
                self.bucket_config[route] = (limit, window)
            return json_response({"ok": True})
        if action == "rate_limit":
            self.forced.append({"route": body["route"], "retry_after": body["retry_after"],
                                "global": body.get("global", False), "count": body.get("count", 1)})
            return json_response({"ok": True})
        if action == "attachment":
            aid = self.snowflake()
            data = base64.b64decode(body["data_b64"])
            self.files[aid] = (body["filename"], data, body.get("content_type"))
            return json_response({"id": aid, "filename": body["filename"], "size": len(data),
                                  "url": f"http://127.0.0.1:{self.port}/attachments/0/{aid}/"
                                         f"{urllib.parse.quote(body['filename'])}",
                                  "proxy_url": f"http://127.0.0.1:{self.port}/attachments/0/{aid}/x",
                                  "content_type": body.get("content_type")})
        if session is None:
            return json_response({"error": "no session yet"}, status=409)
        if action == "message":
            message = self.full_message(body)
            if isinstance(message.get("author"), dict) and message["author"].get("id"):
                self.users.add(str(message["author"]["id"]))
            self.messages[message["id"]] = message
            seq = await self.dispatch(session, "MESSAGE_CREATE", message)
            return json_response({"id": message["id"], "seq": seq})
        if action == "dispatch":
            seq = await self.dispatch(session, body["t"], body["d"])
            return json_response({"seq": seq})
        if conn is None:
            return json_response({"error": "no connection"}, status=409)
        if action == "zombie":
            conn.zombie = True
        elif action == "reconnect":
            await self.send(conn, {"op": 7, "d": None})
        elif action == "invalid_session":
            resumable = bool(body.get("resumable", False))
            session.resumable = resumable
            await self.send(conn, {"op": 9, "d": resumable})
        elif action == "request_heartbeat":
            await self.send(conn, {"op": 1, "d": None})
        elif action == "close":
            if not body.get("resumable", True):
                session.resumable = False
            await self.close(conn, body["code"], body.get("reason", ""))
        elif action == "drop":
            conn.ws._writer.transport.abort()  # no close frame: the TCP connection just ends
        else:
            return json_response({"error": f"unknown action {action}"}, status=404)
        return json_response({"ok": True})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file")
    parser.add_argument("--token", default="fake-discord-token")
    parser.add_argument("--heartbeat-ms", type=int, default=41250)
    args = parser.parse_args()
    fake = Fake(args.token, args.heartbeat_ms)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/api/v10/{tail:.*}", fake.rest)
    app.router.add_get("/attachments/{channel}/{id}/{name}", fake.attachment)
    app.router.add_route("*", "/_control/{action}", fake.control)
    app.router.add_get("/", fake.gateway)
    app.router.add_get("/resume", fake.gateway)

    def bound(port):
        fake.port = port

    run_app(app, args.host, args.port, args.port_file, bound)


if __name__ == "__main__":
    main()
