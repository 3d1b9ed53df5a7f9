# SPDX-License-Identifier: Apache-2.0
"""`chitin memory status | index | search` end to end: the real CLI starts the real memory worker
in its shipped sandbox profile, over a real workspace, with the gateway running and without it.

Bad input is refused before any worker starts (exit 2, the input named); status, index and search
print what the index holds; a file edited is found by its new words; the index deleted is rebuilt;
the CLI's workers and the gateway's (memory_search through the fake model) use one index at the
same time without an error (the index's lock); a sandbox that cannot be set up means no answer
(exit 1).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_memory import search, write_note, write_sample_notes  # noqa: E402

SKIP = harness.skip_reason()


@unittest.skipIf(SKIP, SKIP or "")
class MemoryCli(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ctx = harness.own_gateway({"scenarios": {"plumber": search("plumber")}}, policies={},
                                      prepare_home=cls.prepare)
        cls.model, cls.gw = cls.ctx.__enter__()

    @staticmethod
    def prepare(gw):
        write_sample_notes(gw)
        write_note(gw, "memory/2026-11-30.md", "# 2026-11-30\nCalled the plumber.\n")

    @classmethod
    def tearDownClass(cls):
        cls.ctx.__exit__(None, None, None)

    def memory(self, *args, env=None):
        return self.gw.cli("memory", *args, timeout=120, env=env)

    def ok(self, *args):
        r = self.memory(*args)
        self.assertEqual(r.returncode, 0, f"memory {args}: {r.stdout} {r.stderr}")
        return r.stdout

    def index_path(self):
        return os.path.join(self.gw.home, "state", "memory", "main", "index.sqlite")

    def test_1_bad_input_is_named_and_no_worker_runs(self):
        cases = [
            (["serch", "x"], 'unknown subcommand "serch": expected status, index or search QUERY'),
            (["search", ""], "the query is empty; expected words to search for"),
            (["search"], "expected a QUERY (words to search for)"),
            (["search", "tea", "--max", "many"],
             '--max: expected a whole number from 1 to 50, got "many"'),
            (["search", "tea", "--max", "0"], '--max: expected a whole number from 1 to 50, got "0"'),
            (["status", "--verbose"], 'memory status: unknown argument "--verbose"'),
            ([], "expected a subcommand: status, index or search QUERY"),
        ]
        for args, message in cases:
            r = self.memory(*args)
            self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
            self.assertIn(message, r.stderr)
            self.assertIn("usage: chitin memory", r.stderr)
            self.assertEqual(r.stdout, "")
        self.assertFalse(os.path.exists(self.index_path()))

    def test_2_status_index_and_search(self):
        status = self.ok("status")
        self.assertIn('Memory index of agent "main"', status)
        self.assertIn("files indexed  0\n", status)
        self.assertIn("stale files    3 (3 new, 0 changed, 0 removed)", status)
        self.assertIn("last update    never", status)

        indexed = self.ok("index")
        self.assertIn("Indexed: 3 new, 0 changed, 0 removed, 0 unchanged file(s)", indexed)
        status = self.ok("status")
        self.assertIn("files indexed  3\n", status)
        self.assertIn("stale files    0\n", status)
        self.assertRegex(status, r"last update    \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \(\d+ s ago\)")
        self.assertRegex(status, r"index size     [\d.]+ KiB")
        self.assertRegex(status, r"chunks         [1-9]")

        found = self.ok("search", "giraffe")
        self.assertRegex(found, r"memory/2026-12-01\.md:5  score \d+\.\d\d\n    The \*\*giraffe\*\* project")
        self.assertIn('1 match for "giraffe"', found)
        two = self.ok("search", "tea plumber")  # no chunk has both: any of them
        self.assertIn("MEMORY.md:1-2", two)
        self.assertIn("memory/2026-11-30.md:1-2", two)
        one = self.ok("search", "tea plumber", "--max", "1")
        self.assertIn('1 match for "tea plumber"', one)
        none = self.ok("search", "okapi")
        self.assertIn('no matches for "okapi" (3 files indexed)', none)
        if harness.running_as_root():
            # Root became the home's owner: the index is the service user's, as the gateway's.
            import pwd
            owner = pwd.getpwuid(os.stat(self.index_path()).st_uid).pw_name
            self.assertEqual(owner, harness.TEST_USER)

    def test_3_an_edited_file_is_found_by_its_new_words(self):
        self.assertIn("memory/2026-12-01.md:3", self.ok("search", "oranges"))
        time.sleep(0.05)
        write_note(self.gw, "memory/2026-12-01.md", "# 2026-12-01\n\nBought a pomegranate.\n")
        status = self.ok("status")
        self.assertIn("stale files    1 (0 new, 1 changed, 0 removed)", status)
        self.assertIn("memory/2026-12-01.md:3", self.ok("search", "pomegranate"))
        self.assertIn('no matches for "oranges"', self.ok("search", "oranges"))

    def test_4_a_deleted_index_is_rebuilt(self):
        self.ok("index")
        os.unlink(self.index_path())
        status = self.ok("status")
        self.assertIn("rebuilt        the index did not exist", status)
        self.assertIn("files indexed  0\n", status)
        self.assertIn("MEMORY.md:1-2", self.ok("search", "tea"))
        self.assertTrue(os.path.exists(self.index_path()))
        self.assertIn("stale files    0\n", self.ok("status"))

    def test_5_the_cli_and_the_gateway_use_the_index_at_once(self):
        # Enough notes that an update takes a while, all changed at once, then three CLI
        # processes and the gateway's memory_search work on the one index together.
        for i in range(400):
            write_note(self.gw, f"memory/bulk/{i:03}.md",
                       f"# note {i}\n\nThe giraffe count was {i} today.\n" + "filler words " * 50)
        self.ok("index")
        time.sleep(0.05)
        for i in range(400):
            write_note(self.gw, f"memory/bulk/{i:03}.md",
                       f"# note {i}\n\nThe zebra count was {i} today.\n" + "other words " * 50)
        replies = []

        def through_gateway():
            for n in range(3):
                replies.append(self.gw.agent_json("[[scenario:plumber]] go",
                                                  f"agent:main:e2e:direct:cli-{n}", timeout=120))

        thread = threading.Thread(target=through_gateway)
        thread.start()
        procs = [subprocess.Popen([harness.CHITIN, "memory", *args], env=self.gw.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for args in (["index"], ["search", "zebra", "--max", "3"], ["status"],
                              ["search", "giraffe"])]
        outs = [p.communicate(timeout=120) + (p.returncode,) for p in procs]
        thread.join(timeout=180)
        for out, err, code in outs:
            self.assertEqual(code, 0, f"{out} {err}")
            self.assertNotIn("locked", err)
        self.assertEqual(len(replies), 3)
        for code, data, err in replies:
            self.assertEqual(code, 0, err)
            self.assertEqual(data["tools"][0]["status"], "ok", data)
            self.assertIn("memory/2026-11-30.md:1-2", data["reply"])
        self.assertIn("3 matches for \"zebra\"", outs[1][0])
        status = self.ok("status")
        self.assertIn("files indexed  403\n", status)
        self.assertIn("stale files    0\n", status)

    def test_6_a_sandbox_that_cannot_be_set_up_means_no_answer(self):
        empty = tempfile.mkdtemp(prefix="chitin-no-profiles-")
        os.chmod(empty, 0o755)
        try:
            # `index` runs here whether or not the gateway does (a search would ask it).
            r = self.memory("index", env={"CHITIN_PROFILE_DIR": empty})
        finally:
            shutil.rmtree(empty)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn("chitin memory index: the tool did not run", r.stderr)
        self.assertIn("memory", r.stderr)

    @unittest.skipUnless(harness.running_as_root(), "only root can own a home as root")
    def test_7_as_root_on_roots_own_home_no_worker_runs(self):
        home = tempfile.mkdtemp(prefix="chitin-root-home-")
        try:
            os.makedirs(os.path.join(home, "workspace", "main", "memory"))
            r = self.memory("status", env={"CHITIN_HOME": home})
        finally:
            shutil.rmtree(home)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("chitin never runs workers as uid 0", r.stderr)

    def test_8_without_the_gateway(self):
        self.gw.stop()
        write_note(self.gw, "memory/2026-12-02.md", "Met the okapi keeper.\n")
        found = self.ok("search", "okapi")
        self.assertIn("memory/2026-12-02.md:1", found)
        self.assertIn("stale files    0\n", self.ok("status"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
