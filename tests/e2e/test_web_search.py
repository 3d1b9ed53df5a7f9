# SPDX-License-Identifier: Apache-2.0
"""web_search end to end: the real gateway, guard, egress broker and sandboxed web-search
worker, against local fakes of Brave's Search API, SearXNG's JSON API and DuckDuckGo's HTML
endpoint (tests/fakes/fake_search.py). search.test resolves to 127.0.0.1 through the owner's
resolver overrides and is allowed privately at exactly its host:port.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import wait_for  # noqa: E402

SKIP = harness.skip_reason()
FAKE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes", "fake_search.py")
KEY = "BSA-test-key-0123456789"
SCRIPT = {"scenarios": {"search": [
    {"tool_calls": [{"name": "web_search", "arguments": {"query": "cedar policy", "count": 3}}]},
    {"text": "found: {{last_tool_result}}"},
]}}


@unittest.skipIf(SKIP, SKIP or "")
class WebSearch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="chitin-e2e-search-")
        os.chmod(cls.dir, 0o755)
        port_file = os.path.join(cls.dir, "port")
        cls.log = os.path.join(cls.dir, "search.log")
        cls.proc = subprocess.Popen([harness.PYTHON, FAKE, "--port-file", port_file, "--log", cls.log,
                                     "--brave-key", KEY])
        cls.port = int(wait_for(lambda: harness._read(port_file).strip(), what="search port"))
        cls.hosts = os.path.join(cls.dir, "hosts")
        with open(cls.hosts, "w") as f:
            f.write("search.test 127.0.0.1\n")
        os.chmod(cls.hosts, 0o644)

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(timeout=10)

    def config(self, provider, path):
        return (f'web_search {{ provider: "{provider}" url: "http://search.test:{self.port}{path}" }}\n'
                f'egress {{ allow_private: "search.test:{self.port}" resolver_hosts_file: "{self.hosts}" }}\n')

    def search(self, provider, path, key=None):
        def prepare(gw):
            if key is not None:
                creds = os.path.join(gw.home, "credentials")
                os.makedirs(creds, mode=0o700, exist_ok=True)
                with open(os.path.join(creds, "brave-search"), "w") as f:
                    f.write(key + "\n")
                os.chmod(os.path.join(creds, "brave-search"), 0o600)
        with harness.own_gateway(SCRIPT, config=self.config(provider, path), policies={},
                                 prepare_home=prepare) as (model, gw):
            code, out, err = gw.agent_json("[[scenario:search]] go", f"agent:main:e2e:direct:{provider}")
            self.assertEqual(code, 0, err + gw.stderr()[-2000:])
            sent = json.dumps(model.requests(), ensure_ascii=False)
            audit = gw.audit()
            return out, sent, audit, gw

    def check_results(self, out, sent, audit):
        self.assertEqual(out["tools"][0]["status"], "ok", out)
        self.assertIn("1. Cedar policy language\\n   https://docs.cedarpolicy.test/", sent)
        self.assertIn("Cedar is a language for policies.", sent)
        self.assertNotIn("javascript:", sent)
        self.assertIn("content from outside (web_search: web_search of cedar policy)", sent)
        decision = [r for r in audit if r["kind"] == "DECISION" and r.get("tool") == "web_search"][0]
        self.assertEqual(decision["decision"]["outcome"], "allow")
        egress = [r for r in audit if r["kind"] == "EGRESS" and r.get("worker") == "tool:web_search"]
        self.assertEqual([r["host"] for r in egress], ["search.test"])
        # The worker may exit (closing its endpoint) before the broker saw the tunnel's end.
        self.assertIn(egress[0]["outcome"], ("ok", "closed: the worker's endpoint was closed"))
        self.assertGreater(int(egress[0]["bytesDown"]), 0)

    def test_brave_gets_the_key_from_the_supervisor_and_it_is_nowhere_else(self):
        out, sent, audit, gw = self.search("brave", "/res/v1/web/search", key=KEY)
        self.check_results(out, sent, audit)
        logged = [json.loads(l) for l in harness._read(self.log).splitlines()]
        brave = [r for r in logged if r["path"].startswith("/res/v1/web/search")]
        self.assertEqual(brave[-1]["token"], KEY)
        self.assertIn("count=3", brave[-1]["path"])
        self.assertNotIn(KEY, sent)
        self.assertNotIn(KEY, json.dumps(audit))

    def test_brave_without_a_key_says_where_to_put_it(self):
        out, sent, audit, gw = self.search("brave", "/res/v1/web/search")
        self.assertEqual(out["tools"][0]["status"], "error")
        self.assertIn("credentials/brave-search", sent)

    def test_searxng_json_api(self):
        self.check_results(*self.search("searxng", "/")[:3])

    def test_duckduckgo_html_endpoint(self):
        self.check_results(*self.search("duckduckgo", "/html/")[:3])


if __name__ == "__main__":
    unittest.main(verbosity=2)
