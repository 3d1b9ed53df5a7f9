# SPDX-License-Identifier: Apache-2.0
"""What fake_discord.py and fake_slack.py share: startup on 127.0.0.1 with the bound port written
to a file, request parsing and a thread-safe log.

Runs in: tests only (never shipped).
"""

import asyncio
import json
import os
import signal
import time
import urllib.parse

from aiohttp import web


def write_port_file(path, port):
    """Atomically, so a test polling the file never reads half a number."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(port))
    os.replace(tmp, path)


def run_app(app, host, port, port_file, on_bound=None):
    """Serves `app` until SIGTERM/SIGINT. `on_bound(port)` runs once the socket listens."""

    async def main():
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        # Open WebSockets must not hold up a stop for aiohttp's default minute.
        site = web.TCPSite(runner, host, port, shutdown_timeout=0.5)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]
        if on_bound:
            on_bound(bound)
        if port_file:
            write_port_file(port_file, bound)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


async def request_params(request):
    """A Web API call's arguments from the query string, a form body or a JSON body, the three
    ways the platforms accept them. Returns (params, content_kind)."""
    params = dict(request.query)
    ctype = request.content_type
    if request.method in ("POST", "PUT", "PATCH"):
        if ctype == "application/json":
            body = await request.text()
            if body:
                value = json.loads(body)
                if not isinstance(value, dict):
                    raise ValueError("JSON body is not an object")
                params.update(value)
            return params, "json"
        if ctype == "application/x-www-form-urlencoded":
            body = await request.text()
            params.update(dict(urllib.parse.parse_qsl(body, keep_blank_values=True)))
            return params, "form"
    return params, "query"


def json_response(value, status=200, headers=None):
    """JSON with the bare "application/json" content type both platforms send (aiohttp's own
    helper appends "; charset=utf-8", which some clients compare exactly and reject)."""
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return web.Response(body=json.dumps(value).encode(), status=status, headers=h)


def stored_file(files, fid, log, kind):
    """A file the fake holds (files: id -> (name, bytes, content type)) as a response, logged."""
    if fid not in files:
        return web.Response(status=404)
    _name, data, content_type = files[fid]
    log.add(kind, id=fid)
    return web.Response(body=data, content_type=content_type or "application/octet-stream")


class Log:
    """Everything the client did, for the control API's /state."""

    def __init__(self):
        self.start = time.monotonic()
        self.records = []

    def add(self, kind, **fields):
        fields["kind"] = kind
        fields["t"] = round(time.monotonic() - self.start, 4)
        self.records.append(fields)
        return fields

    def of(self, kind):
        return [r for r in self.records if r["kind"] == kind]
