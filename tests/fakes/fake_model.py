#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""A scripted fake of the OpenAI Chat Completions and Anthropic Messages HTTP APIs, for tests.

Runs in: tests only (never shipped). Written from the public API references, independently of
chitin's client code: it validates what a client sends the way the real APIs do (400 with their
error bodies) and streams replies with the real event names, framing and terminators. What it
answers is chosen per request by a script; see tests/fakes/README.md for the format.

Usage: fake_model.py --port 0 --port-file PATH [--script SCRIPT.json] [--log REQUESTS.jsonl]
                     [--expect-key KEY] [--host 127.0.0.1]
"""

import argparse
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The wire formats live beside this file; make the import work from any working directory,
# without leaving bytecode in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_model_wire import (  # noqa: E402
    AnthropicReply, BadRequest, OpenAiReply, validate_anthropic, validate_openai)
import fake_model_embeddings as embeddings  # noqa: E402

SCENARIO_MARKER = re.compile(r"\[\[scenario:([A-Za-z0-9_.-]+)\]\]")
WAIT_FOR_ABORT_SECONDS = 30.0


class Fake:
    """State shared by all request threads: the script, per-step error counters, the log."""

    def __init__(self, script_path, log_path, expect_key):
        self.script_path = script_path
        self.script_stamp = None
        self.scenarios = {}
        self.embeddings = {}
        self.expect_key = expect_key
        self.lock = threading.Lock()
        self.error_hits = {}
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None

    def log(self, record):
        if self.log_file is None:
            return
        record.setdefault("ts", time.time())
        with self.lock:
            self.log_file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self.log_file.flush()

    def load_script(self):
        """(Re)reads the script if its file changed, so a test can fill in values it learns
        after the fake started. Error counters survive a reload."""
        if self.script_path is None:
            return
        st = os.stat(self.script_path)
        stamp = (st.st_mtime_ns, st.st_size)
        with self.lock:
            if stamp == self.script_stamp:
                return
            with open(self.script_path, encoding="utf-8") as f:
                script = json.load(f)
            scenarios = script.get("scenarios", {}) if isinstance(script, dict) else None
            if not isinstance(scenarios, dict):
                raise ValueError("%s: \"scenarios\" must be an object of NAME: [STEP, ...]"
                                 % self.script_path)
            self.scenarios = scenarios
            self.embeddings = script.get("embeddings", {}) if isinstance(script, dict) else {}
            self.script_stamp = stamp

    def error_due(self, scenario, step_index, error):
        """True if this hit of (scenario, step) should get the step's error."""
        times = error.get("times")
        key = (scenario, step_index)
        with self.lock:
            hits = self.error_hits.get(key, 0) + 1
            self.error_hits[key] = hits
        return times is None or hits <= int(times)


# --------------------------------------------------------------------------------------------
# Reading conversations (both APIs)


def text_of(content):
    """Plain text of an OpenAI/Anthropic content value (a string or a list of parts/blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content
                       if isinstance(p, dict) and p.get("type") == "text")
    return ""


def user_texts(messages):
    """Texts of user-authored messages in order (tool results excluded)."""
    out = []
    for m in messages:
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, list) and content and all(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            continue
        out.append(text_of(content))
    return out


def last_tool_result(messages):
    result = ""
    for m in messages:
        if m.get("role") == "tool":
            result = text_of(m.get("content"))
        elif isinstance(m.get("content"), list):
            for block in m["content"]:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    result = text_of(block.get("content"))
    return result


def choose_step(fake, messages):
    """(scenario name or None, step index, step dict)."""
    try:
        fake.load_script()
    except (OSError, ValueError) as e:  # e.g. caught mid-rewrite: keep the previous script
        fake.log({"event": "fake_error", "error": "script reload failed: %s" % e})
    # Each turn picks its own scenario: the marker in the turn's user message (the last
    # user-authored one), and the step is how many assistant messages followed it. So a
    # session's later turns are independent of its first.
    texts = user_texts(messages)
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"
                     and user_texts([m])), default=-1)
    step_index = sum(1 for m in messages[last_user + 1:] if m.get("role") == "assistant")
    match = SCENARIO_MARKER.search(texts[-1]) if texts else None
    if match is None:
        return None, step_index, {"text": "echo: " + (texts[-1] if texts else "")}
    name = match.group(1)
    steps = fake.scenarios.get(name)
    if steps is None:
        raise BadRequest("fake_model: no scenario named %r in the script" % name)
    if step_index >= len(steps):
        return name, step_index, {"text": "done"}
    return name, step_index, steps[step_index]


# --------------------------------------------------------------------------------------------
# The HTTP handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-model/1"
    # Headers and body go out as separate small writes; without TCP_NODELAY each reply waits
    # out the client's delayed ACK (~40 ms), which is not how a real API behaves.
    disable_nagle_algorithm = True

    fake = None  # set in main()

    def log_message(self, fmt, *args):  # keep test output quiet; the JSONL log has everything
        pass

    # ---- plumbing

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status, payload, extra_headers=None, content_type="application/json"):
        data = payload if isinstance(payload, bytes) else (
            payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (extra_headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self, request_id_header):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header(request_id_header, "req_" + uuid.uuid4().hex[:12])
        self.end_headers()

    def write_chunk(self, data, step):
        """One HTTP chunk per SSE event, or write_size-byte chunks to split events."""
        size = int(step.get("write_size") or 0) or len(data)
        for i in range(0, len(data), size):
            part = data[i:i + size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.flush()

    def end_chunks(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def cut_connection(self):
        """Close mid-stream, before the terminator and without the final chunk."""
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def hold_open(self, scenario, step_index):
        """Keep the stream open (with SSE comments) until the client leaves or 30 s pass."""
        start = time.time()
        while time.time() - start < WAIT_FOR_ABORT_SECONDS:
            time.sleep(0.2)
            try:
                self.write_chunk(b": still thinking\n\n", {})
            except OSError:
                self.fake.log({"event": "client_disconnected", "scenario": scenario,
                               "step": step_index,
                               "after_ms": int((time.time() - start) * 1000)})
                self.close_connection = True
                return
        self.cut_connection()

    def error_body(self, api, status, message, kind):
        if api == "anthropic":
            return {"type": "error", "error": {"type": kind, "message": message}}
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    # ---- routes

    def do_GET(self):
        if self.path == "/healthz":
            self.send_json(200, {"status": "ok"})
        else:
            self.send_json(404, {"error": {"message": "not found", "type": "not_found_error"}})

    def do_POST(self):
        try:
            self.handle_post()
        except OSError:
            self.close_connection = True  # the client went away
        except Exception as e:  # a bug in the fake or the script: say so loudly
            self.fake.log({"event": "fake_error", "path": self.path, "error": repr(e)})
            print("fake_model: error handling %s: %r" % (self.path, e), file=sys.stderr)
            self.close_connection = True

    def handle_post(self):
        raw = self.read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, ValueError):
            body = None
        record = {"method": "POST", "path": self.path, "headers": headers,
                  "body": body if body is not None else {"_raw": raw.decode("utf-8", "replace")}}

        if self.path == "/v1/embeddings":
            self.handle_embeddings(record, headers, body)
            return
        if self.path == "/v1/chat/completions":
            api = "openai"
        elif self.path == "/v1/messages":
            api = "anthropic"
        else:
            record["status"] = 404
            self.fake.log(record)
            self.send_json(404, {"error": {"message": "Unknown request URL: POST %s" % self.path,
                                           "type": "invalid_request_error"}})
            return
        record["api"] = api

        if self.fake.expect_key is not None:
            if api == "openai":
                auth = headers.get("authorization", "")
                given = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
            else:
                given = headers.get("x-api-key", "")
            if given != self.fake.expect_key:
                record["status"] = 401
                self.fake.log(record)
                if api == "openai":
                    # Harsher than the real API, which masks the middle of the key: echoing it
                    # whole proves the client never shows a provider's error text unredacted.
                    message = ("Incorrect API key provided: %s. You can find your API key at "
                               "https://platform.openai.com/account/api-keys." % given)
                    payload = {"error": {"message": message, "type": "invalid_request_error",
                                         "param": None, "code": "invalid_api_key"}}
                else:
                    payload = self.error_body(api, 401, "invalid x-api-key: %s" % given,
                                              "authentication_error")
                self.send_json(401, payload)
                return

        try:
            if api == "openai":
                validate_openai(body)
            else:
                validate_anthropic(body, headers)
            scenario, step_index, step = choose_step(self.fake, body["messages"])
        except BadRequest as e:
            record["status"] = 400
            record["error"] = str(e)
            self.fake.log(record)
            self.send_json(400, self.error_body(api, 400, str(e), "invalid_request_error"))
            return

        record.update(scenario=scenario, step=step_index)
        if step.get("delay_ms"):
            # Said at once, so a test can act while the reply is held back.
            self.fake.log({"event": "delaying", "scenario": scenario, "step": step_index,
                           "delay_ms": step["delay_ms"]})
            time.sleep(step["delay_ms"] / 1000.0)

        error = step.get("error")
        if error and self.fake.error_due(scenario, step_index, error):
            status = int(error.get("status", 500))
            record["status"] = status
            self.fake.log(record)
            extra = {}
            if "retry_after" in error:
                extra["retry-after"] = str(error["retry_after"])
            if "retry_after_ms" in error:
                extra["retry-after-ms"] = str(error["retry_after_ms"])
            payload = error.get("body")
            if payload is None:
                kind = {400: "invalid_request_error", 401: "authentication_error",
                        429: "rate_limit_error", 529: "overloaded_error"}.get(status, "api_error")
                payload = self.error_body(api, status, "scripted error %d" % status, kind)
            self.send_json(status, payload, extra,
                           error.get("content_type", "application/json"))
            return

        record["status"] = 200
        self.fake.log(record)
        text = str(step.get("text", "")).replace("{{last_tool_result}}",
                                                 last_tool_result(body["messages"]))
        calls = []
        for call in step.get("tool_calls") or []:
            arguments = call.get("arguments", {})
            calls.append({"name": call["name"],
                          "arguments": arguments if isinstance(arguments, str)
                          else json.dumps(arguments)})
        reply = {"text": text, "calls": calls, "scenario": scenario, "step_index": step_index,
                 "text_after": str(step.get("text_after", ""))}
        if api == "openai":
            OpenAiReply(self, body, step, reply).send()
        else:
            AnthropicReply(self, body, step, reply).send()


    def handle_embeddings(self, record, headers, body):
        record["api"] = "embeddings"
        self.fake.load_script()
        settings = self.fake.embeddings
        auth = headers.get("authorization", "")
        given = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        try:
            if self.fake.expect_key is not None and given != self.fake.expect_key:
                raise embeddings.EmbeddingsError(401, "Incorrect API key provided.",
                                                 "invalid_request_error")
            error = settings.get("error")
            if error and self.fake.error_due("embeddings", 0, error):
                raise embeddings.EmbeddingsError(int(error.get("status", 500)),
                                                 "scripted error %d" % int(error.get("status", 500)),
                                                 "server_error")
            if settings.get("reply") == "stream":
                record["status"] = 200
                self.fake.log(record)
                self.send_json(200, "data: {}\n\n", None, "text/event-stream")
                return
            text = embeddings.reply(body, settings)
        except embeddings.EmbeddingsError as e:
            record["status"] = e.status
            record["error"] = str(e)
            self.fake.log(record)
            self.send_json(e.status, {"error": {"message": str(e), "type": e.kind,
                                                "param": None, "code": None}})
            return
        record["status"] = 200
        self.fake.log(record)
        self.send_json(200, text)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client dropping an idle keep-alive connection is normal, not worth a traceback.
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--script")
    parser.add_argument("--log")
    parser.add_argument("--expect-key")
    args = parser.parse_args()

    Handler.fake = Fake(args.script, args.log, args.expect_key)
    try:
        Handler.fake.load_script()  # a broken script fails at start, not at the first request
    except (OSError, ValueError) as e:
        sys.exit("fake_model: cannot load the script: %s" % e)
    server = Server((args.host, args.port), Handler)
    # Written atomically, so a reader never sees a partial number.
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.rename(tmp, args.port_file)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
