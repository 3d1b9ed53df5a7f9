# SPDX-License-Identifier: Apache-2.0
"""Shared by the channel platform tests: free ports, daemons started and stopped by PID, and the
platform harness (platform-harness.c++) driven over JSON lines.

Runs in: tests. Servers listen on 127.0.0.1 only and are killed by their own PID.
"""
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

SKIP = 77  # meson's exit code for a skipped test


def require(*programs):
    """Exits with SKIP (never a false pass) when a server this test needs is not installed."""
    missing = [p for p in programs if not shutil.which(p) and not os.path.exists(p)]
    if missing:
        print(f"SKIP: not installed: {' '.join(missing)} (scripts/test installs them)")
        sys.exit(SKIP)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


class Daemon:
    """A server in the foreground, its output in a log file, stopped by PID. start() waits until
    `port` accepts connections (port None: a daemon that listens nowhere, e.g. IRC services)."""

    def __init__(self, argv, port, log_path, cwd=None, env=None):
        self.argv, self.port, self.log_path, self.cwd, self.env = argv, port, log_path, cwd, env
        self.proc = None

    def start(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd,
                                     env=self.env, start_new_session=True)
        log.close()
        if self.port is not None:
            wait_port(self.port, self.proc)
        return self

    def stop(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
        self.proc = None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Harness:
    """One platform in-process under the test Host (tests/channels/platform-harness.c++)."""

    def __init__(self, kind, options, credential="", state_dir=None, max_attachment_bytes=None,
                 egress_socket=""):
        exe = os.environ.get("CHITIN_CHANNEL_HARNESS")
        if not exe:
            raise RuntimeError("CHITIN_CHANNEL_HARNESS is not set (run through meson test)")
        self.events = queue.Queue()
        self.seen = []  # every event, in order
        self.proc = subprocess.Popen([exe, kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        config = {"credential": credential, "options": options, "stateDir": state_dir or "",
                  "egressSocket": egress_socket}
        if max_attachment_bytes is not None:
            config["maxAttachmentBytes"] = max_attachment_bytes
        self.proc.stdin.write(json.dumps(config) + "\n")
        self.proc.stdin.flush()
        self.stderr = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self.next_id = 0

    def _read(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            self.seen.append(event)
            self.events.put(event)
        self.events.put({"event": "eof"})

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line)

    def wait(self, predicate, timeout=10.0, what="event"):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; events so far: {self.seen[-12:]}"
                                     f"; stderr: {''.join(self.stderr)[-2000:]}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event["event"] == "eof" and not predicate(event):
                raise AssertionError(f"harness exited while waiting for {what}; events: {self.seen[-12:]}"
                                     f"; stderr: {''.join(self.stderr)[-2000:]}")
            if predicate(event):
                return event

    def wait_status(self, state, timeout=10.0):
        return self.wait(lambda e: e["event"] == "status" and e["state"] == state, timeout,
                         f"status {state}")

    def wait_deliver(self, timeout=10.0, where=None):
        return self.wait(lambda e: e["event"] == "deliver" and (where is None or where(e["message"])),
                         timeout, "a delivered message")["message"]

    def send(self, chat_id, text, attachments=(), reply_to="", thread_id="", timeout=60.0):
        """Sends and returns the ids, or raises AssertionError with the platform's error."""
        self.next_id += 1
        command = {"cmd": "send", "id": self.next_id,
                   "message": {"chatId": chat_id, "text": text, "replyTo": reply_to,
                               "threadId": thread_id, "attachments": list(attachments)}}
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        event = self.wait(lambda e: e["event"] in ("sent", "error") and e.get("id") == self.next_id,
                          timeout, "send result")
        if event["event"] == "error":
            raise AssertionError("send failed: " + event["what"])
        return event["ids"]

    def send_result(self, chat_id, text, timeout=60.0):
        try:
            return self.send(chat_id, text, timeout=timeout), None
        except AssertionError as e:
            return None, str(e)

    def delivered(self):
        return [e["message"] for e in self.seen if e["event"] == "deliver"]

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd":"stop"}\n')
                self.proc.stdin.flush()
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("the platform did not stop within 10 s of interrupt()")
            finally:
                for pipe in (self.proc.stdout, self.proc.stderr):
                    try:
                        pipe.close()
                    except OSError:
                        pass
        # A sanitizer report (the ASan build runs these tests too) ends the harness non-zero.
        expected = 1 if any(e["event"] == "factoryError" for e in self.seen) else 0
        if self.proc.returncode != expected:
            raise AssertionError(f"the harness exited with {self.proc.returncode}: "
                                 f"{''.join(self.stderr)[-3000:]}")


class SocksRelay:
    """A SOCKS5 server on a unix socket in `directory`, standing in for the egress broker:
    workers/channel/whatsapp/bridge/test/socks5_unix.py (written from RFC 1928, independently
    of chitin's clients), which prints one "CONNECT host:port" line per tunnel."""

    SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "workers",
                          "channel", "whatsapp", "bridge", "test", "socks5_unix.py")

    def __init__(self, directory):
        self.socket = os.path.join(directory, "egress.sock")
        self._targets = []
        self.proc = subprocess.Popen(["/usr/bin/python3", self.SERVER, self.socket],
                                     stdout=subprocess.PIPE, text=True)
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("socks5_unix.py did not start")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith("CONNECT "):
                self._targets.append(line.split()[1])

    def targets(self):
        return list(self._targets)

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


class PlatformTest(unittest.TestCase):
    """A test case whose harnesses and peers are stopped at its end, newest first."""

    def setUp(self):
        self.cleanup = []

    def tearDown(self):
        for f in reversed(self.cleanup):
            f()


def tempdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def rmtree(path):
    shutil.rmtree(path, ignore_errors=True)
