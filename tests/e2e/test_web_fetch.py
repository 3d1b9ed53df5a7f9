# SPDX-License-Identifier: Apache-2.0
"""web_fetch end to end: the real gateway, guard, egress broker and sandboxed web-fetch worker,
against a local hostile web server (tests/fakes/fake_web.py).

The test names resolve through the owner's resolver overrides (egress.resolver_hosts_file):
www.test is 127.0.0.1 and is allowed privately at exactly its host:port (the "permitted
public-style host"); everything else a redirect points at must be refused by the broker, with
an EGRESS record, and never reach the server.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_for  # noqa: E402

SKIP = harness.skip_reason()
FAKE_WEB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes", "fake_web.py")


class FakeWeb:
    def __init__(self, d):
        self.port_file = os.path.join(d, "web.port")
        self.log = os.path.join(d, "web.log")
        self.proc = subprocess.Popen([harness.PYTHON, FAKE_WEB, "--port-file", self.port_file,
                                      "--log", self.log])
        self.port = int(wait_for(lambda: harness._read(self.port_file).strip(), what="web port"))

    def paths(self):
        return harness._read(self.log).splitlines()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def fetch_scenario(url, mode=None):
    args = {"url": url}
    if mode:
        args["extractMode"] = mode
    return [{"tool_calls": [{"name": "web_fetch", "arguments": args}]},
            {"text": "fetched: {{last_tool_result}}"}]


@unittest.skipIf(SKIP, SKIP or "")
class WebFetch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="chitin-e2e-web-")
        os.chmod(cls.dir, 0o755)
        cls.web = FakeWeb(cls.dir)
        p = cls.web.port
        www = f"http://www.test:{p}"
        redirect = f"{www}/redirect?to="
        # Every spelling of a non-public destination a hostile page might redirect to.
        cls.ssrf = {
            "loopback": f"http://127.0.0.1:{p}/secret",
            "private": f"http://10.0.0.1:{p}/secret",
            "metadata": "http://169.254.169.254/latest/meta-data/",
            "mapped": f"http://[::ffff:127.0.0.1]:{p}/secret",
            "decimal": f"http://2130706433:{p}/secret",
            "octal": f"http://0177.0.0.1:{p}/secret",
            "short": f"http://127.1:{p}/secret",
            "trailingdot": f"http://127.0.0.1.:{p}/secret",
            "idn": f"http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54:{p}/secret",
            "localhost": f"http://localhost:{p}/secret",
        }
        scenarios = {
            "inject": fetch_scenario(f"{www}/inject")
                      + [],
            "huge": fetch_scenario(f"{www}/huge"),
            "slow": fetch_scenario(f"{www}/slow"),
            "latin1": fetch_scenario(f"{www}/latin1", "text"),
            "sjis": fetch_scenario(f"{www}/sjis"),
            "json": fetch_scenario(f"{www}/json"),
            "png": fetch_scenario(f"{www}/png"),
            "control": fetch_scenario(f"{redirect}{www}/json"),
            "rebind": fetch_scenario(f"http://rebind.test:{p}/secret"),
        }
        # After the injected page, the model (fooled) runs a command: it must ask.
        scenarios["inject"] = [scenarios["inject"][0],
                               {"tool_calls": [{"name": "exec", "arguments": {"command": "ls"}}]},
                               {"text": "done: {{last_tool_result}}"}]
        for name, target in cls.ssrf.items():
            scenarios["ssrf-" + name] = fetch_scenario(redirect + target)
        hosts = os.path.join(cls.dir, "hosts")
        with open(hosts, "w") as f:
            # rebind.test: loopback on its first lookup, public after. The broker looks it up once
            # per tunnel and judges that answer; the public order (public, then loopback) is the
            # broker's unit test with a scripted resolver, since connecting to a public address
            # would leave this machine.
            f.write("www.test 127.0.0.1\nrebind.test 127.0.0.1 93.184.216.34\n")
        os.chmod(hosts, 0o644)
        config = ("egress {\n"
                  f'  allow_private: "www.test:{p}"\n'
                  f'  resolver_hosts_file: "{hosts}"\n'
                  "  connect_timeout_seconds: 2\n"
                  "}\n"
                  "policy { approval_timeout_seconds: 1 }\n"
                  # web_fetch's per-hop deadline follows it: the slow page fails in 4 s.
                  "agent { tool_timeout_seconds: 4 }\n")
        cls.ctx = harness.own_gateway({"scenarios": scenarios}, config=config, policies={})
        cls.model, cls.gw = cls.ctx.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.ctx.__exit__(None, None, None)
        cls.web.stop()

    def run_scenario(self, name, session=None):
        return self.gw.scenario_turn(name, session or f"agent:main:e2e:direct:web-{name}")

    def egress_records(self):
        return [r for r in self.gw.audit() if r["kind"] == "EGRESS" and r.get("worker") == "tool:web_fetch"]

    def test_injected_page_comes_back_as_content_and_taints_the_session(self):
        out = self.run_scenario("inject")
        tools = out["tools"]
        self.assertEqual(tools[0]["status"], "ok")
        # What the model was given as the tool's result: the page as Markdown, marked as outside
        # content.
        sent = json.dumps(self.model.requests(), ensure_ascii=False)
        self.assertIn("IGNORE ALL PREVIOUS INSTRUCTIONS", sent)
        self.assertIn("# Cheap flights", sent)
        self.assertIn("[us](https://collect.attacker.example/)", sent)
        self.assertNotIn("(c) nobody", sent)  # footer dropped
        self.assertIn("content from outside", sent)
        # The following exec asked (and, unanswered, was denied) because the session is tainted.
        self.assertEqual(tools[1]["status"], "denied")
        decisions = [r for r in self.gw.audit() if r["kind"] == "DECISION" and r.get("tool") == "exec"]
        self.assertEqual(decisions[-1]["decision"]["outcome"], "ask")
        self.assertIn(f"web_fetch of http://www.test:{self.web.port}/inject", decisions[-1]["detail"])

    def test_ssrf_every_non_public_redirect_is_refused_and_audited_with_a_control(self):
        ok = self.run_scenario("control")
        self.assertEqual(ok["tools"][0]["status"], "ok", ok)
        self.assertIn('"answer": 42', ok["reply"])
        seen = {}
        for name in self.ssrf:
            with self.subTest(form=name):
                before = len(self.gw.audit())
                out = self.run_scenario("ssrf-" + name)
                self.assertNotEqual(out["tools"][0]["status"], "ok", out)
                self.assertNotIn("SECRET-FROM-LOOPBACK", out["reply"])
                new = self.gw.audit()[before:]
                # The hop was decided (audited) and then refused: by the broker on the resolved
                # address (EGRESS), or already by the supervisor when the URL has no valid host.
                hop = [r for r in new if r["kind"] == "DECISION" and "request of the running call" in r.get("detail", "")]
                self.assertEqual(len(hop), 1, new)
                refused = [r["outcome"] for r in new if r["kind"] == "EGRESS"
                           and r["outcome"].startswith("refused: resolves to")]
                if hop[0]["decision"]["outcome"] == "allow":
                    self.assertEqual(len(refused), 1, new)
                    seen[name] = refused[0]
                else:
                    seen[name] = "supervisor: " + hop[0].get("detail", "")
        self.assertNotIn("/secret", self.web.paths())
        outcomes = "\n".join(f"{k}: {v}" for k, v in seen.items())
        print(outcomes)
        for name in ("loopback", "decimal", "octal", "short", "trailingdot", "mapped", "localhost",
                     "idn"):
            self.assertIn("loopback", seen.get(name, ""), outcomes)
        self.assertIn("private", seen["private"])
        self.assertIn("metadata", seen["metadata"])

    def test_a_name_whose_answers_change_is_looked_up_once_by_the_broker_and_judged_on_it(self):
        out = self.run_scenario("rebind")
        self.assertNotEqual(out["tools"][0]["status"], "ok")
        self.assertNotIn("/secret", self.web.paths())
        rec = [r for r in self.egress_records() if r.get("host") == "rebind.test"]
        # One tunnel, one lookup: the worker resolved nothing itself, and the supervisor's hop
        # decision did not resolve either (the second answer, public, was never asked for).
        self.assertEqual(len(rec), 1, rec)
        self.assertEqual(rec[0]["address"], f"127.0.0.1:{self.web.port}")
        self.assertIn("loopback", rec[0]["outcome"])

    def test_caps_charsets_and_content_types(self):
        huge = self.run_scenario("huge")
        self.assertIn("Truncated: yes", huge["reply"])
        started = time.monotonic()
        slow = self.run_scenario("slow")
        self.assertLess(time.monotonic() - started, 20)
        self.assertEqual(slow["tools"][0]["status"], "error")
        self.assertIn("no complete answer", slow["reply"])
        self.assertIn("Caf\u00e9 cr\u00e8me \u00e0 la carte", self.run_scenario("latin1")["reply"])
        self.assertIn("\u65e5\u672c\u8a9e\u306e\u30da\u30fc\u30b8", self.run_scenario("sjis")["reply"])
        self.assertIn('{"answer": 42, "list": [1, 2]}', self.run_scenario("json")["reply"])
        png = self.run_scenario("png")["reply"]
        self.assertIn("binary content, image/png, 67 bytes", png)
        self.assertNotIn("IHDR", png)


if __name__ == "__main__":
    unittest.main(verbosity=2)
