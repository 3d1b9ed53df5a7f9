# SPDX-License-Identifier: Apache-2.0
"""End-to-end tests: the real `chitin gateway` with real sandboxed workers, against a fake model
API written independently in Python (tests/fakes/fake_model.py) and a stdlib WebSocket client.

Run by meson (`meson test --suite e2e`); each test starts its own gateway on 127.0.0.1.
"""
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import FakeModel, Gateway, agent_over_ws, wait_for  # noqa: E402
from wsclient import HandshakeError, WsClient  # noqa: E402

SKIP = harness.skip_reason()

# What the web chat's approval test writes: terminal escapes, a bidi override and a zero-width
# space in the first line, then enough lines that the card's one line must be shortened.
WEB_NOTE = "noted \u202eevil\u200b\x1b[2J\n" + "".join("line %d\n" % i for i in range(300))

SCRIPT = {"scenarios": {
    "multistep": [
        {"tool_calls": [{"name": "exec", "arguments": {"command": "echo hello > a.txt && cat a.txt"}}]},
        {"tool_calls": [{"name": "write", "arguments": {"path": "notes/plan.md", "content": "step one\n"}}]},
        {"tool_calls": [{"name": "edit", "arguments": {"path": "notes/plan.md", "oldText": "one", "newText": "two"}}]},
        {"tool_calls": [{"name": "read", "arguments": {"path": "notes/plan.md"}}]},
        {"text": "Final: {{last_tool_result}}"},
    ],
    "stream": [{"text": "one two three four five six seven eight nine ten", "chunk_size": 4, "chunk_delay_ms": 5}],
    "secret": [{"text": "noted"}],
    "slow": [{"text": "this answer streams slowly and never ends", "chunk_size": 5, "wait_for_abort": True}],
    "slowtool": [{"text": "too late", "delay_ms": 4000}],
    "ratelimit": [{"text": "after the wait", "error": {"status": 429, "retry_after": "1", "times": 1}}],
    "servererror": [{"text": "never", "error": {"status": 500, "times": 1000}}],
    "truncated": [{"text": "a partial answer that is cut off", "truncate": True}],
    "webapprove": [
        {"tool_calls": [{"name": "read", "arguments": {"path": "downloads/page.txt"}}]},
        {"tool_calls": [{"name": "write", "arguments": {"path": "notes/from-web.txt", "content": WEB_NOTE}}]},
        {"text": "saved"},
    ],
    "webtool": [
        {"tool_calls": [{"name": "exec", "arguments": {"command": "echo from-the-sandbox"}}]},
        {"text": "the tool said {{last_tool_result}}"},
    ],
    "steal": [
        {"tool_calls": [{"name": "exec", "arguments": {"command": "cat \"$CHITIN_HOME/gateway.token\" /proc/1/environ 2>&1; cat TOKEN_PATH 2>&1; ls / 2>&1"}}]},
        {"text": "tool said: {{last_tool_result}}"},
    ],
    "escape": [
        {"tool_calls": [{"name": "read", "arguments": {"path": "../../gateway.token"}}]},
        {"tool_calls": [{"name": "exec", "arguments": {"command": "ln -sf TOKEN_PATH link.txt && echo linked"}}]},
        {"tool_calls": [{"name": "read", "arguments": {"path": "link.txt"}}]},
        {"text": "done escaping"},
    ],
}}


@unittest.skipIf(SKIP, SKIP or "")
class E2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.modeldir = tempfile.mkdtemp(prefix="chitin-e2e-model-")
        cls.model = FakeModel(cls.modeldir, SCRIPT, expect_key="sk-test-key")
        cls.gw = Gateway(cls.model)
        # The token path is only known now; the "steal" scenarios name it literally.
        token_path = os.path.join(cls.gw.home, "gateway.token")
        script = json.loads(json.dumps(SCRIPT).replace("TOKEN_PATH", token_path))
        with open(os.path.join(cls.modeldir, "script.json"), "w") as f:
            json.dump(script, f)

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.model.stop()

    def test_multi_step_turn_runs_exec_write_edit_read_each_in_a_sandbox(self):
        code, out, err = self.gw.agent_json("[[scenario:multistep]] please work", "agent:main:e2e:direct:multi")
        self.assertEqual(code, 0, err)
        self.assertEqual([t["name"] for t in out["tools"]], ["exec", "write", "edit", "read"])
        self.assertTrue(all(t["status"] == "ok" for t in out["tools"]), out["tools"])
        self.assertIn("step two", out["reply"])
        self.assertEqual(out["session"], "agent:main:e2e:direct:multi")
        self.assertTrue(out["runId"])
        with open(os.path.join(self.gw.workspace, "a.txt")) as f:
            self.assertEqual(f.read(), "hello\n")
        with open(os.path.join(self.gw.workspace, "notes/plan.md")) as f:
            self.assertEqual(f.read(), "step two\n")
        entries = self.gw.transcript("agent:main:e2e:direct:multi")
        self.assertEqual([e["role"] for e in entries],
                         ["user"] + ["assistant", "tool"] * 4 + ["assistant"])
        self.assertIn("hello", entries[2]["content"])

    def test_assistant_text_streams_as_events_before_the_final_reply(self):
        ws = self.gw.connect()
        try:
            accepted, events, final = agent_over_ws(ws, "[[scenario:stream]] go", "agent:main:e2e:direct:stream")
        finally:
            ws.close()
        self.assertEqual(accepted["status"], "accepted")
        deltas = [e["payload"]["delta"] for e in events if e["payload"].get("stream") == "assistant"]
        self.assertGreaterEqual(len(deltas), 3)
        self.assertEqual("".join(deltas), final["payload"]["reply"])
        seqs = [e["seq"] for e in events]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(final["payload"]["status"], "ok")

    def test_two_senders_sessions_are_kept_apart(self):
        code, out, _ = self.gw.agent_json("[[scenario:secret]] the word is PINEAPPLE", "agent:main:e2e:direct:alice")
        self.assertEqual(code, 0)
        code, out, _ = self.gw.agent_json("what is the word?", "agent:main:e2e:direct:bob")
        self.assertEqual(code, 0)
        self.assertNotIn("PINEAPPLE", out["reply"])
        bob_requests = [r for r in self.model.requests() if "what is the word?" in json.dumps(r.get("body"))]
        self.assertTrue(bob_requests)
        for r in bob_requests:
            self.assertNotIn("PINEAPPLE", json.dumps(r["body"]))
        ws = self.gw.connect()
        try:
            ws.send_json({"type": "req", "id": "h", "method": "chat.history",
                          "params": {"sessionKey": "agent:main:e2e:direct:bob"}})
            hist = ws.recv_json()
        finally:
            ws.close()
        self.assertTrue(hist["ok"])
        self.assertNotIn("PINEAPPLE", json.dumps(hist["payload"]))
        self.assertEqual(len(self.gw.transcript("agent:main:e2e:direct:alice")), 2)

    def test_abort_stops_a_streaming_run(self):
        ws = self.gw.connect()
        try:
            params = {"message": "[[scenario:slow]] go", "sessionKey": "agent:main:e2e:direct:abort"}
            ws.send_json({"type": "req", "id": "r", "method": "agent", "params": params})
            accepted = ws.recv_json()
            self.assertTrue(accepted["ok"], accepted)
            run_id = accepted["payload"]["runId"]
            while True:  # wait until text is flowing
                frame = ws.recv_json()
                if frame["type"] == "event" and frame["payload"].get("stream") == "assistant":
                    break
            started = time.monotonic()
            ws.send_json({"type": "req", "id": "x", "method": "agent.abort", "params": {"runId": run_id}})
            final = abort_res = None
            while final is None or abort_res is None:
                frame = ws.recv_json()
                if frame["type"] == "res" and frame["id"] == "x":
                    abort_res = frame
                elif frame["type"] == "res" and frame["id"] == "r":
                    final = frame
            self.assertTrue(abort_res["ok"], abort_res)
            self.assertEqual(final["payload"]["status"], "aborted")
            self.assertLess(time.monotonic() - started, 5)
        finally:
            ws.close()
        code, out, _ = self.gw.agent_json("still there?", "agent:main:e2e:direct:abort")
        self.assertEqual(code, 0)
        self.assertIn("still there?", out["reply"])

    def test_rate_limited_model_call_is_retried_after_retry_after(self):
        started = time.monotonic()
        code, out, err = self.gw.agent_json("[[scenario:ratelimit]] hi", "agent:main:e2e:direct:ratelimit")
        self.assertEqual(code, 0, err)
        self.assertEqual(out["reply"], "after the wait")
        self.assertGreaterEqual(time.monotonic() - started, 0.9)

    def test_truncated_stream_fails_the_turn_and_the_session_survives(self):
        key = "agent:main:e2e:direct:trunc"
        code, out, err = self.gw.agent_json("[[scenario:truncated]] hi", key)
        self.assertEqual(code, 1)
        self.assertEqual(out["status"], "error")
        self.assertIn("ended before the reply was complete", out.get("error", ""))
        code, out, err = self.gw.agent_json("and now?", key)
        self.assertEqual(code, 0, err)
        self.assertIn("and now?", out["reply"])
        for e in self.gw.transcript(key):
            self.assertIn(e["role"], ("user", "assistant", "tool"))

    def test_tool_cannot_read_the_gateway_token_or_other_process_secrets(self):
        code, out, err = self.gw.agent_json("[[scenario:steal]] hi", "agent:main:e2e:direct:steal")
        self.assertEqual(code, 0, err)
        for r in self.model.requests():
            self.assertNotIn(self.gw.token, json.dumps(r.get("body")))
        self.assertNotIn(self.gw.token, out["reply"])
        self.assertIn("No such file", out["reply"])

    def test_symlink_and_dotdot_cannot_leave_the_workspace(self):
        code, out, err = self.gw.agent_json("[[scenario:escape]] hi", "agent:main:e2e:direct:escape")
        self.assertEqual(code, 0, err)
        statuses = [t["status"] for t in out["tools"]]
        self.assertEqual(statuses[0], "denied")  # ../../gateway.token: refused before any worker
        self.assertEqual(statuses[2], "error")   # link.txt -> the token
        for r in self.model.requests():
            self.assertNotIn(self.gw.token, json.dumps(r.get("body")))

    def test_wrong_token_is_refused_and_the_connection_closed(self):
        ws = WsClient("127.0.0.1", self.gw.port)
        challenge = ws.recv_json()
        ws.send_json({"type": "req", "id": "1", "method": "connect",
                      "params": {"auth": {"token": "wrong"}, "nonce": challenge["payload"]["nonce"]}})
        res = ws.recv_json()
        self.assertFalse(res["ok"])
        self.assertEqual(res["error"]["code"], "UNAUTHORIZED")
        self.assertIsNone(ws.recv_json())  # closed
        ws.close()
        r = self.gw.cli("status", env={"CHITIN_GATEWAY_TOKEN": "0" * 64})
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_bad_frames_get_error_frames_and_the_connection_survives(self):
        ws = self.gw.connect()
        try:
            ws.send_text("{not json")
            res = ws.recv_json()
            self.assertFalse(res["ok"])
            self.assertEqual(res["error"]["code"], "INVALID_REQUEST")
            ws.send_text("x" * (2 << 20))
            res = ws.recv_json()
            self.assertEqual(res["error"]["code"], "FRAME_TOO_LARGE")
            ws.send_json({"type": "req", "id": "u", "method": "no.such.method"})
            self.assertEqual(ws.recv_json()["error"]["code"], "UNKNOWN_METHOD")
            ws.send_json({"type": "req", "id": "bad", "method": "agent", "params": {"message": 5}})
            self.assertEqual(ws.recv_json()["error"]["code"], "INVALID_REQUEST")
            ws.send_json({"type": "req", "id": "h", "method": "health"})
            res = ws.recv_json()
            self.assertTrue(res["ok"], res)
        finally:
            ws.close()

    def test_browser_from_another_origin_is_refused(self):
        with self.assertRaises(HandshakeError) as ctx:
            WsClient("127.0.0.1", self.gw.port, origin="http://evil.example")
        self.assertEqual(ctx.exception.status, 403)
        ws = WsClient("127.0.0.1", self.gw.port, origin=f"http://127.0.0.1:{self.gw.port}")
        ws.close()

    def test_cli_status_health_sessions(self):
        r = self.gw.cli("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        status = json.loads(r.stdout)
        self.assertEqual(status["modelProvider"], "openai")
        self.assertEqual(status["sandbox"], "ok")
        self.assertEqual(self.gw.cli("health").returncode, 0)
        r = self.gw.cli("sessions", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)

    @unittest.skipUnless(os.access("/usr/bin/chromium", os.X_OK) and os.path.isdir(
        os.path.join(os.environ.get("CHITIN_WEBCHAT_DIR", ""), "node_modules", "playwright-core")),
        "needs Debian's chromium and `npm ci` in tests/e2e/webchat (scripts/test does both)")
    def test_web_chat_in_headless_chromium_streams_a_reply_and_shows_tool_calls(self):
        webchat = os.environ["CHITIN_WEBCHAT_DIR"]
        env = dict(os.environ)
        env.update({
            "WEBCHAT_URL": f"http://127.0.0.1:{self.gw.port}/#token={self.gw.token}",
            "WEBCHAT_SCREENSHOT": os.path.join(self.gw.tmp, "webchat.png"),
            "WEBCHAT_MESSAGE": "hello from chromium",
            "WEBCHAT_EXPECT_REPLY": "echo: hello from chromium",
            "WEBCHAT_TOOL_MESSAGE": "[[scenario:webtool]] run something",
            "WEBCHAT_ABORT_MESSAGE": "[[scenario:slow]] go",
            # Reading downloads/ taints the turn, so the write after it waits for a click.
            "WEBCHAT_APPROVAL_MESSAGE": "[[scenario:webapprove]] save what the page says",
            "WEBCHAT_EXPECT_APPROVAL": "write notes/from-web.txt (%d bytes, 301 lines): "
                                       "noted \\u202eevil\\u200b\\x1b[2J\\nline 0\\nline 1"
                                       % len(WEB_NOTE.encode()),
            "WEBCHAT_EXPECT_FULL_CALL": "content: %d bytes, 301 lines, ends with a newline\n"
                                        "  | noted \\u202eevil\\u200b\\x1b[2J\n  | line 0\n"
                                        % len(WEB_NOTE.encode()),
            "WEBCHAT_EXPECT_SHORTENED": "1",
        })
        downloads = os.path.join(self.gw.workspace, "downloads")
        os.makedirs(downloads, exist_ok=True)
        os.chmod(downloads, 0o755)
        with open(os.path.join(downloads, "page.txt"), "w") as f:
            f.write("a page from outside\n")
        os.chmod(os.path.join(downloads, "page.txt"), 0o644)
        r = subprocess.run(["node", os.path.join(webchat, "webchat-test.mjs")], env=env,
                           capture_output=True, text=True, timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # The page's session went through the real core: its transcript holds the tool result.
        sessions = json.loads(self.gw.cli("sessions", "--json").stdout)["sessions"]
        web = [s["key"] for s in sessions if ":webchat:" in s["key"]]
        self.assertTrue(web, sessions)
        self.assertTrue(any("from-the-sandbox" in e["content"] for e in self.gw.transcript(web[0])))
        with open(os.path.join(self.gw.workspace, "notes", "from-web.txt")) as f:
            self.assertEqual(f.read(), WEB_NOTE)

    def test_doctor_reports_every_check(self):
        r = self.gw.cli("doctor")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for check in ("bubblewrap:", "user namespaces:", "seccomp:", "sandbox:", "cgroup limits:",
                      "snapshots: libgit2 loads (libgit2.so.", "gateway: answering"):
            self.assertIn(check, r.stdout)
        # As the service user (the gateway's), one real session worker is started: forked by the
        # session zygote, or (where cgroup limits are in force) spawned by bwrap, said so. (As
        # root the doctor starts no sandbox: asked again as the test user then.)
        out = r.stdout
        if "sandbox: not tried as root" in out:
            pw = pwd.getpwnam(harness.TEST_USER)
            home = tempfile.mkdtemp()
            os.chmod(home, 0o777)
            try:
                out = subprocess.run(
                    ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
                     "env", f"HOME={home}", harness.CHITIN, "doctor"],
                    capture_output=True, text=True, timeout=60).stdout
            finally:
                shutil.rmtree(home, ignore_errors=True)
        self.assertIn("ok    sandbox: a test worker started", out)
        self.assertRegex(out, r"ok    session workers: (forked by one zygote|one bwrap each "
                              r"\(cgroup limits are in force)")
        self.assertIn(f"at {self.model.base_url}: reachable", r.stdout)

    def test_api_key_reaches_the_model_only_as_a_header(self):
        self.gw.agent_json("key check", "agent:main:e2e:direct:key")
        reqs = self.model.requests()
        self.assertTrue(reqs)
        self.assertTrue(any("sk-test-key" in json.dumps(r.get("headers", {})) for r in reqs))
        for r in reqs:
            self.assertNotIn("sk-test-key", json.dumps(r.get("body")))
        for pid in self.gw.worker_pids("model"):
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                self.assertNotIn(b"sk-test-key", f.read())
            with open(f"/proc/{pid}/environ", "rb") as f:
                self.assertNotIn(b"sk-test-key", f.read())

    def test_model_traffic_goes_only_through_the_egress_broker_and_is_audited(self):
        reply = self.gw.agent_json("egress check", "agent:main:e2e:direct:egress")
        self.assertIn("egress check", json.dumps(reply))
        pids = self.gw.worker_pids("model")
        self.assertTrue(pids)
        for pid in pids:
            # Its own network namespace (not the host's), and its egress socket in its argv.
            self.assertNotEqual(os.readlink(f"/proc/{pid}/ns/net"), os.readlink("/proc/self/ns/net"))
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                self.assertIn(b"--chitin-egress=/run/chitin/egress.sock", f.read())
        # A tunnel is recorded when it ends: end the worker's (libcurl keeps them alive).
        for pid in pids:
            os.kill(pid, signal.SIGKILL)

        def model_records():
            return [r for r in self.gw.audit() if r["kind"] == "EGRESS" and r.get("worker") == "model"]
        records = wait_for(model_records, what="EGRESS records of the model worker")
        for r in records:
            self.assertEqual(r["host"], "127.0.0.1")
            self.assertEqual(r["port"], self.model.port)
            self.assertEqual(r["address"], f"127.0.0.1:{self.model.port}")
            # The worker was killed: a tunnel still carrying data to it ends on the worker side.
            self.assertTrue(r["outcome"] == "ok" or r["outcome"].startswith("error: worker side:"),
                            r["outcome"])
            self.assertGreater(int(r["bytesUp"]), 0)
            self.assertGreater(int(r["bytesDown"]), 0)
        # The worker comes back on the next turn, through a socket of its own again. (Once the
        # gateway has seen it go: a turn sent before that would meet the dead worker, and is
        # answered that the model worker stopped and restarts on the next message.)
        wait_for(lambda: "model worker killed by signal 9" in harness._read(self.gw.stderr_path),
                 what="the gateway to see the model worker's end")
        self.assertIn("after", json.dumps(self.gw.agent_json("after", "agent:main:e2e:direct:egress")))


def own_gateway(setup=None, **gateway_args):
    return harness.own_gateway(SCRIPT, setup, **gateway_args)


def hostile_workers(d):
    """Session workers are the hostile stand-in; the other kinds are the real ones."""
    workers = harness.workers_dir(d, {"session": os.environ["CHITIN_HOSTILE_SESSION_WORKER"]})
    return {"config": f'sandbox {{ worker_dir: "{workers}" }}\n'}


@unittest.skipIf(SKIP, SKIP or "")
class E2EWithoutSharedGateway(unittest.TestCase):
    def test_server_errors_after_retries_fail_the_turn_with_a_clear_message(self):
        with own_gateway(config="model { max_retries: 1 }\n") as (model, gw):
            code, out, err = gw.agent_json("[[scenario:servererror]] hi", "agent:main:e2e:direct:err")
            self.assertEqual(code, 1, err)
            self.assertEqual(out["status"], "error")
            self.assertIn("500", out["error"])

    def test_anthropic_provider_runs_a_tool_turn(self):
        with own_gateway(provider="anthropic") as (model, gw):
            code, out, err = gw.agent_json("[[scenario:multistep]] go", "agent:main:e2e:direct:anth")
            self.assertEqual(code, 0, err)
            self.assertIn("step two", out["reply"])
            self.assertTrue(any("/v1/messages" in r.get("path", "") for r in model.requests()))

    def test_kill_9_of_the_session_worker_mid_turn_fails_cleanly(self):
        with own_gateway() as (model, gw):  # its own gateway: the only session worker is this turn's
            key = "agent:main:e2e:direct:killed"
            proc = subprocess.Popen([harness.CHITIN, "agent", "-m", "[[scenario:slowtool]] hi",
                                     "--session", key, "--json"],
                                    env=gw.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            pids = wait_for(lambda: gw.worker_pids("session"), what="a session worker")
            self.assertEqual(len(pids), 1)
            time.sleep(0.3)  # let the turn reach the model
            os.kill(pids[0], signal.SIGKILL)
            out, err = proc.communicate(timeout=30)
            self.assertEqual(proc.returncode, 1, err)
            result = json.loads(out)
            self.assertEqual(result["status"], "error")
            self.assertIn("session worker stopped", result["error"])
            for e in gw.transcript(key):  # every line still parses
                self.assertIn(e["role"], ("user", "assistant", "tool"))
            code, out2, err2 = gw.agent_json("hello again", key)
            self.assertEqual(code, 0, err2)
            self.assertIsNone(gw.proc.poll())

    def test_an_idle_session_worker_gives_back_its_stack_and_serves_on(self):
        # Idle for TRIM_AFTER_IDLE (2 s), the worker's loop returns to runWorker, which gives
        # back the heap's free pages and the stack below its frame (common/worker-main.h), then
        # waits again: the same worker answers the next turn. (A turn leaves 36-40 KiB of stack
        # resident; idle, 8-12 KiB of its own and the top page it shares with the zygote.)
        if os.geteuid() != 0:
            self.skipTest("a worker's smaps (it is not dumpable) are readable by root only")
        with own_gateway() as (model, gw):
            key = "agent:main:e2e:direct:trimmed"
            self.assertEqual(gw.agent_json("first", key)[0], 0)
            (pid,) = gw.worker_pids("session")

            def stack_kib():
                kib, in_stack = 0, False
                with open(f"/proc/{pid}/smaps") as f:
                    for line in f:
                        if "-" in line.split()[0] and ":" not in line.split()[0]:
                            in_stack = line.rstrip().endswith("[stack]")
                        elif in_stack and line.startswith("Rss:"):
                            kib = int(line.split()[1])
                return kib

            # What a turn leaves resident (its deeper frames), then what stays once idle: the
            # frames from the stack's top down to the event loop's wait, a few pages.
            after_turn = stack_kib()
            wait_for(lambda: stack_kib() <= 16, timeout=10, what="the idle worker's stack given back")
            self.assertLess(stack_kib(), after_turn)
            code, out, err = gw.agent_json("second", key)
            self.assertEqual(code, 0, err)
            self.assertEqual(out["reply"], "echo: second")
            self.assertEqual(gw.worker_pids("session"), [pid])

    def test_idle_session_worker_exits_and_is_recreated_from_the_transcript(self):
        with own_gateway(config="agent { session_idle_seconds: 1 }\n") as (model, gw):
            key = "agent:main:e2e:direct:idle"
            self.assertEqual(gw.agent_json("[[scenario:secret]] first", key)[0], 0)
            self.assertEqual(len(gw.worker_pids("session")), 1)
            wait_for(lambda: not gw.worker_pids("session"), timeout=10, what="the idle worker to exit")
            code, out, err = gw.agent_json("second", key)
            self.assertEqual(code, 0, err)
            self.assertEqual(out["reply"], "echo: second")
            # The fresh worker was given the whole conversation from the transcript.
            last = model.requests()[-1]["body"]["messages"]
            self.assertIn("[[scenario:secret]] first", json.dumps(last))
            self.assertIn("noted", json.dumps(last))

    def test_rarely_used_libraries_are_opened_when_first_used_not_at_start(self):
        # The supervisor does not link them (common/lazy-library.h): a start on an existing home
        # maps none; a turn with mutating calls opens libgit2 (snapshots) and libyaml (the
        # bundled skills' front matter); nothing here needs libidn2 or libqrencode.
        lazy = ("/libgit2.so", "/libyaml-0.so", "/libidn2.so", "/libqrencode.so")
        with own_gateway(prepare_home=lambda gw: None) as (model, gw):
            def mapped():
                with open(f"/proc/{gw.proc.pid}/maps") as f:
                    maps = f.read()
                return [lib for lib in lazy if lib in maps]
            self.assertEqual(gw.cli("status").returncode, 0)
            self.assertEqual(mapped(), [])
            code, out, err = gw.agent_json("[[scenario:multistep]] go", "agent:main:e2e:direct:git")
            self.assertEqual(code, 0, err)
            self.assertTrue(all(t["status"] == "ok" for t in out["tools"]), out["tools"])
            self.assertEqual(mapped(), ["/libgit2.so", "/libyaml-0.so"])
            # Each mutating call's intent names the snapshot taken before it.
            starts = [r for r in gw.audit() if r.get("kind") == "TOOL_START"
                      and r.get("tool") in ("exec", "write", "edit")]
            self.assertEqual(len(starts), 3, starts)
            self.assertTrue(all(r.get("snapshot") for r in starts), starts)

    def test_session_worker_inventing_a_tool_call_is_killed_and_nothing_runs(self):
        with own_gateway(hostile_workers) as (model, gw):
            key = "agent:main:e2e:direct:hostile"
            code, out, err = gw.agent_json("invent a call", key)
            self.assertEqual(code, 1, err)
            self.assertIn("broke the protocol", out["error"])
            self.assertFalse(os.path.exists(os.path.join(gw.workspace, "pwned")))
            self.assertIn("protocol violation", gw.stderr())
            self.assertEqual(gw.cli("health").returncode, 0)
            code, out, err = gw.agent_json("keep going", "agent:main:e2e:direct:other")
            self.assertEqual(code, 0, err)
            self.assertEqual(out["reply"], "echo: keep going")

    def test_session_worker_reusing_a_finished_turns_capability_is_killed(self):
        with own_gateway(hostile_workers) as (model, gw):
            key = "agent:main:e2e:direct:reuse"
            code, out, err = gw.agent_json("keep this turn's model", key)
            self.assertEqual(code, 0, err)
            requests_before = len(model.requests())
            code, out, err = gw.agent_json("reuse the old one", key)
            self.assertEqual(code, 1, err)
            self.assertIn("broke the protocol", out["error"])
            self.assertEqual(len(model.requests()), requests_before)  # the model was not called
            self.assertIn("capability of a turn that has ended", gw.stderr())
            self.assertIsNone(gw.proc.poll())

    def test_no_model_configured_replies_how_to_configure_one(self):
        gw = Gateway(None)
        try:
            code, out, err = gw.agent_json("hello")
            self.assertEqual(code, 0, err)
            self.assertIn("No model is configured", out["reply"])
            self.assertIn("CHITIN_MODEL_PROVIDER", out["reply"])
        finally:
            gw.cleanup()

    def test_sigterm_stops_the_gateway_with_status_0(self):
        gw = Gateway(None)
        try:
            gw.agent_json("hello")
            self.assertEqual(gw.stop(), 0, gw.stderr())
            r = gw.cli("status")
            self.assertEqual(r.returncode, 3, r.stderr)
        finally:
            gw.cleanup()

    def test_bad_config_exits_2_naming_file_line_column(self):
        with self.assertRaises(RuntimeError) as ctx:
            Gateway(None, config="gateway {\n  prot: 1\n}\n")
        self.assertIn("exited with 2", str(ctx.exception))
        self.assertIn("chitin.conf:2:7:", str(ctx.exception))

    @unittest.skipUnless(os.geteuid() == 0, "only meaningful as root")
    def test_root_without_user_is_refused(self):
        home = tempfile.mkdtemp()
        r = subprocess.run([harness.CHITIN, "gateway", "--port", "0"], env={"CHITIN_HOME": home},
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 2)
        self.assertIn("refusing to run as root", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
