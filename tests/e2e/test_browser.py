# SPDX-License-Identifier: Apache-2.0
"""End to end: the `browser` tool through the real gateway, the real browser worker (headless
Chromium in sandbox-profiles/browser.textproto) and the real egress broker, against a local web
server on 127.0.0.1 that the owner listed in egress.allow_private (exact host:port).

One gateway and one browser (one session) for the whole class, so the suite takes seconds:
navigate -> snapshot -> click a ref -> the page changed -> screenshot in the workspace, session
tainted; what a page's script cannot reach (the gateway's port, an unlisted loopback service,
file://) next to a listed one it can; a policy that forbids browse on one host stops both a
navigation and a link click to it (audited); and what the worker's processes can see.
"""
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
import channels  # noqa: E402
import harness  # noqa: E402

SKIP = harness.skip_reason() or (
    None if os.access("/usr/lib/chromium/chromium", os.X_OK)
    else "Chromium is not installed (apt-get install chromium)")

KEY = "agent:main:e2e:direct:browser"
FORBID_BLOCKED = """
@id("no-browse-blocked-test")
forbid (principal, action == Action::"browse", resource == Host::"blocked.test");
"""


class Site:
    """A directory served on 127.0.0.1 by a thread of this test; `pages` may hold callables
    (filled in once the gateway's port is known)."""

    def __init__(self, pages):
        self.pages = pages
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                page = site.pages.get(self.path.split("?")[0].lstrip("/") or "index.html")
                if page is None:
                    self.send_error(404)
                    return
                body = (page() if callable(page) else page).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}/{path}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def nav(url, then=None):
    """A turn: navigate, then a snapshot (or `then`), then the last result as the reply."""
    steps = [{"tool_calls": [{"name": "browser", "arguments": {"action": "navigate", "url": url}}]}]
    steps.append({"tool_calls": [{"name": "browser", "arguments": then or {"action": "snapshot"}}]})
    steps.append({"text": "result: {{last_tool_result}}"})
    return steps


def ref_of(snapshot, what):
    for line in snapshot.splitlines():
        if what in line and "[" in line:
            return int(line.split("[", 1)[1].split("]", 1)[0])
    raise AssertionError(f"no {what!r} in the snapshot:\n{snapshot}")


@unittest.skipIf(SKIP, SKIP or "")
class BrowserTool(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="chitin-e2e-browser-")
        os.chmod(cls.dir, 0o755)
        # Another loopback service the owner did not list, and one they did (the control for
        # a cross-origin request from the page's script).
        cls.other = Site({"index.html": "secret-of-another-service"})
        cls.listed = Site({"index.html": "listed-service"})
        cls.gateway_port = None
        cls.site = Site({})
        site = cls.site
        cls.site.pages.update({
            "index.html": "<title>Start</title><h1>Start page</h1>"
                          "<a href=\"next.html\">Go next</a> "
                          f"<a href=\"http://blocked.test:{site.port}/next.html\">Forbidden link</a>",
            "next.html": "<title>Next</title><h1>Second page</h1>",
            "probe.html": lambda: (
                "<title>Probe</title><p id=out>pending</p><script>\n"
                "async function probe(name, url) {\n"
                "  try { await fetch(url, {mode: 'no-cors'}); return name + '=reached'; }\n"
                "  catch (e) { return name + '=blocked'; } }\n"
                "(async () => { const r = [];\n"
                "  r.push(await probe('own', 'next.html'));\n"
                f"  r.push(await probe('listed', '{cls.listed.url()}'));\n"
                f"  r.push(await probe('gateway', 'http://127.0.0.1:{cls.gateway_port}/'));\n"
                f"  r.push(await probe('loopback', '{cls.other.url()}'));\n"
                "  r.push(await probe('file', 'file:///etc/passwd'));\n"
                "  document.getElementById('out').textContent = 'done ' + r.join(' ');\n"
                "})();\n</script>"),
        })
        hosts = os.path.join(cls.dir, "hosts")
        with open(hosts, "w") as f:
            f.write("blocked.test 127.0.0.1\n")
        os.chmod(hosts, 0o644)
        config = (
            "egress {\n"
            f"  allow_private: \"127.0.0.1:{site.port}\"\n"
            f"  allow_private: \"127.0.0.1:{cls.listed.port}\"\n"
            f"  allow_private: \"blocked.test:{site.port}\"\n"
            f"  resolver_hosts_file: \"{hosts}\"\n"
            "}\n"
            "policy { approval_timeout_seconds: 5 }\n")  # an unexpected ask fails fast
        cls.script = {"scenarios": {
            "nav": nav(site.url("index.html")),
            "snap": [{"tool_calls": [{"name": "browser", "arguments": {"action": "snapshot"}}]},
                     {"text": "result: {{last_tool_result}}"}],
            "probe": nav(site.url("probe.html")),
            "blockednav": [{"tool_calls": [{"name": "browser", "arguments": {
                "action": "navigate", "url": f"http://blocked.test:{site.port}/next.html"}}]},
                {"text": "result: {{last_tool_result}}"}],
            "badscheme": [{"tool_calls": [{"name": "browser", "arguments": {
                "action": "navigate", "url": "file:///etc/passwd"}}]},
                {"text": "result: {{last_tool_result}}"}],
        }}
        cls.model = harness.FakeModel(cls.dir, cls.script)

        def prepare(gw):
            # Another agent's browser profile: this agent's browser must not see it.
            other = os.path.join(gw.home, "state", "browser", "other-agent")
            os.makedirs(other, mode=0o700)
            with open(os.path.join(other, "Cookies"), "w") as f:
                f.write("cookie-of-another-agent")

        policies = {"e2e-operator-exec.cedar": harness.TRUST_OPERATOR_EXEC,
                    "no-blocked.cedar": FORBID_BLOCKED}
        cls.gw = harness.Gateway(cls.model, config=config, policies=policies)
        cls.gw.stop()
        prepare(cls.gw)
        if harness.running_as_root():
            for root, dirs, files in os.walk(cls.gw.home):
                for name in dirs + files:
                    shutil.chown(os.path.join(root, name), harness.TEST_USER, harness.TEST_USER)
        cls.gw.restart()
        cls.gateway_port = cls.gw.port

    @classmethod
    def tearDownClass(cls):
        cls.gw.cleanup()
        cls.model.stop()
        for s in (cls.site, cls.other, cls.listed):
            s.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def turn(self, scenario):
        if self.script["scenarios"][scenario][0]["tool_calls"][0]["arguments"]["action"] == "navigate":
            # A navigation the model chose asks while the session holds a page it read (shipped
            # `tainted-web-asks`; red-team 22 tests that): these tests start such turns from a
            # clean history. (Resetting the session also stops its browser: test_6.)
            # (The first turn has no session to reset yet.)
            self.gw.cli("sessions", "reset", KEY)
        code, out, err = self.gw.agent_json(f"[[scenario:{scenario}]] go", KEY, timeout=120)
        self.assertEqual(code, 0, f"{err}\n{self.gw.stderr()[-3000:]}")
        return out["reply"]

    def add_scenario(self, name, steps):
        self.script["scenarios"][name] = steps
        harness.rewrite_script(self.model, self.script)

    def test_1_navigate_snapshot_click_screenshot_and_taint(self):
        started = time.monotonic()
        first = self.turn("nav")
        print(f"\nbrowser start -> first snapshot through the gateway: "
              f"{time.monotonic() - started:.2f} s", file=sys.stderr)
        self.assertIn('heading "Start page"', first)
        self.assertEqual(len(self.gw.worker_pids("browser")), 1)
        go = ref_of(first, 'link "Go next"')
        self.add_scenario("click", [
            {"tool_calls": [{"name": "browser", "arguments": {"action": "click", "ref": go}}]},
            {"tool_calls": [{"name": "browser", "arguments": {"action": "snapshot"}}]},
            {"tool_calls": [{"name": "browser", "arguments": {"action": "screenshot"}}]},
            {"text": "result: {{last_tool_result}}"}])
        shot = self.turn("click")
        self.assertIn("screenshot saved to screenshots/", shot)
        after = [m for m in self.model.requests()[-1]["body"]["messages"] if m["role"] == "tool"]
        self.assertIn('heading "Second page"', "\n".join(m["content"] for m in after))
        names = os.listdir(os.path.join(self.gw.workspace, "screenshots"))
        self.assertEqual(len(names), 1, names)
        with open(os.path.join(self.gw.workspace, "screenshots", names[0]), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        # Still the one browser of this session.
        self.assertEqual(len(self.gw.worker_pids("browser")), 1)
        session = channels.session(self.gw, KEY)
        self.assertTrue(session["tainted"], session)
        # Every document was decided as browse on its Host, and audited.
        gates = [r for r in self.gw.audit() if r.get("kind") == "DECISION"
                 and r.get("tool") == "browser" and "request of the running call" in r.get("detail", "")]
        self.assertTrue(any('Host::"127.0.0.1"' in r["detail"] for r in gates), gates)

    def test_2_page_script_reaches_only_what_the_owner_listed(self):
        out = self.turn("probe")
        for _ in range(20):
            if "done" in out:
                break
            time.sleep(0.3)
            out = self.turn("snap")
        self.assertIn("own=reached", out)      # control: its own server
        self.assertIn("listed=reached", out)   # control: a listed loopback service, cross-origin
        self.assertIn("gateway=blocked", out)
        self.assertIn("loopback=blocked", out)
        self.assertIn("file=blocked", out)
        self.assertNotIn("secret-of-another-service", out)

    def test_3_policy_denying_a_host_blocks_navigation_and_a_link_click(self):
        reply = self.turn("blockednav")
        self.assertIn("denied by policy", reply)
        first = self.turn("nav")
        link = ref_of(first, 'link "Forbidden link"')
        self.add_scenario("clickblocked", [
            {"tool_calls": [{"name": "browser", "arguments": {"action": "click", "ref": link}}]},
            {"tool_calls": [{"name": "browser", "arguments": {"action": "snapshot"}}]},
            {"text": "result: {{last_tool_result}}"}])
        after = self.turn("clickblocked")
        clicked = [m["content"] for m in self.model.requests()[-1]["body"]["messages"]
                   if m["role"] == "tool"]
        self.assertIn("a navigation was refused", "\n".join(clicked))
        # The document was never requested: Chromium shows its own "blocked" page instead. Its
        # text is filled in by the error page's own script, which may finish after the failed
        # navigation's load event and so after the first snapshot: look again, bounded.
        for _ in range(20):
            self.assertNotIn("Second page", after)
            if "ERR_BLOCKED_BY_CLIENT" in after:
                break
            time.sleep(0.3)
            after = self.turn("snap")
        self.assertIn("ERR_BLOCKED_BY_CLIENT", after)
        denied = [r for r in self.gw.audit() if r.get("kind") == "DECISION"
                  and r.get("tool") == "browser" and r["decision"]["outcome"] == "deny"]
        self.assertTrue(any("no-browse-blocked-test" in r["decision"].get("policies", [])
                            and "request of the running call" not in r.get("detail", "")
                            for r in denied), denied)
        self.assertTrue(any("no-browse-blocked-test" in r["decision"].get("policies", [])
                            and 'Host::"blocked.test"' in r.get("detail", "") for r in denied),
                        denied)
        # A non-http(s) URL is refused before the policy is asked.
        self.assertIn("http:// or https://", self.turn("badscheme"))

    def test_4_worker_holds_no_credential_and_sees_no_other_profile(self):
        self.turn("snap")
        pids = self.gw.worker_pids("browser")
        self.assertEqual(len(pids), 1)
        procs = harness.processes()
        tree, todo = [], list(pids)
        while todo:
            p = todo.pop()
            tree.append(p)
            todo += [c for c, (ppid, _) in procs.items() if ppid == p]
        self.assertGreater(len(tree), 2)  # the worker and Chromium's processes
        root = f"/proc/{pids[0]}/root"
        # Control: the agent's own profile is there, Chromium wrote into it.
        self.assertTrue(os.listdir(root + "/profile"))
        self.assertFalse(os.path.exists(root + "/profile/../other-agent"))
        self.assertFalse(os.path.exists(root + self.gw.home))
        self.assertFalse(os.path.exists(root + "/workspace"))
        for p in tree:
            with open(f"/proc/{p}/environ", "rb") as f:
                env = f.read()
            self.assertNotIn(b"sk-test-key", env)
            self.assertNotIn(b"CHITIN_", env)
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    target = os.readlink(f"/proc/{p}/fd/{fd}")
                except OSError:
                    continue
                self.assertNotIn(self.gw.home, target)
                self.assertNotIn("gateway.token", target)
        with open(f"/proc/{pids[0]}/mountinfo") as f:
            mounts = f.read()
        self.assertIn("/state/browser/main", mounts)  # control: its own profile is mounted
        self.assertNotIn("other-agent", mounts)
        self.assertNotIn("/workspace/", mounts)
        self.assertNotIn("gateway.token", mounts)

    def test_5_one_browser_per_session_and_one_profile_user_at_a_time(self):
        self.turn("snap")
        before = self.gw.worker_pids("browser")
        self.assertEqual(len(before), 1)
        # Another session gets a browser of its own; the agent's profile (its cookies) is one
        # Chromium's at a time, so the first session's idle browser is stopped for it.
        code, out, err = self.gw.agent_json("[[scenario:nav]] go", KEY + "-2", timeout=120)
        self.assertEqual(code, 0, err)
        self.assertIn('heading "Start page"', out["reply"])
        after = self.gw.worker_pids("browser")
        self.assertEqual(len(after), 1, after)
        self.assertNotEqual(after, before)
        self.assertIn("needs the profile", self.gw.stderr())

    def test_6_resetting_the_session_stops_its_browser(self):
        self.turn("snap")
        self.assertEqual(len(self.gw.worker_pids("browser")), 1)
        r = self.gw.cli("sessions", "reset", KEY)
        self.assertEqual(r.returncode, 0, r.stderr)
        # Its pages were part of the old context: the browser goes with it.
        harness.wait_for(lambda: not self.gw.worker_pids("browser"), timeout=10,
                         what="the browser to stop after the reset")
        self.assertIn("browser stopped (the session was reset)", self.gw.stderr())
        # The next action starts a fresh one.
        self.assertIn("RootWebArea", self.turn("nav"))
        self.assertEqual(len(self.gw.worker_pids("browser")), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
