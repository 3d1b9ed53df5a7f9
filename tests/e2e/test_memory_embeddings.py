# SPDX-License-Identifier: Apache-2.0
"""memory_search's hybrid ranking end to end: the real gateway with `model { embedding_model }`,
the sandboxed memory worker (no network) embedding through the supervisor's Embedder and the
model worker, against the fake model's /v1/embeddings.

A note that shares no word with the query is found by meaning; chunks are embedded once (a
second search sends only its query); the embeddings go with the provider's key through the
model worker only; when the provider's embeddings fail, memory_search still answers, by keywords,
and the gateway's log says why. `chitin memory search` asks the running gateway, so it ranks the
same way; without one it searches by keywords.
"""
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_memory import search, write_note  # noqa: E402

SKIP = harness.skip_reason()
SCENARIOS = {"automobile": search("automobile"), "tea": search("tea"),
             "canine": search("canine")}


@unittest.skipIf(SKIP, SKIP or "")
class MemoryEmbeddings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        config = 'model { embedding_model: "fake-embed" }\n'
        cls.ctx = harness.own_gateway({"scenarios": SCENARIOS}, config=config, policies={},
                                      prepare_home=cls.prepare)
        cls.model, cls.gw = cls.ctx.__enter__()

    @staticmethod
    def prepare(gw):
        os.makedirs(gw.workspace, exist_ok=True)
        write_note(gw, "MEMORY.md", "The user prefers tea.\n")
        write_note(gw, "memory/garage.md", "Sedan needs new tyres.\n")
        write_note(gw, "memory/pets.md", "Puppy vaccinations due.\n")

    @classmethod
    def tearDownClass(cls):
        cls.ctx.__exit__(None, None, None)

    def embeddings_requests(self):
        return [r for r in self.model.requests() if r.get("path") == "/v1/embeddings"]

    def run_scenario(self, name):
        return self.gw.scenario_turn(name, f"agent:main:e2e:direct:emb-{name}")

    def test_1_meaning_finds_a_note_without_the_word(self):
        out = self.run_scenario("automobile")
        self.assertEqual(out["tools"][0]["status"], "ok", out)
        self.assertIn("memory/garage.md:1", out["reply"])
        self.assertNotIn("memory/pets.md", out["reply"])
        sent = self.embeddings_requests()
        self.assertTrue(sent, self.gw.stderr()[-3000:])
        for r in sent:
            self.assertEqual(r["status"], 200, r)
            self.assertEqual(r["body"]["model"], "fake-embed")
            self.assertEqual(r["headers"]["authorization"], "Bearer sk-test-key")
        texts = [t for r in sent for t in r["body"]["input"]]
        # Every chunk once, then the query.
        self.assertEqual(sorted(texts[:-1]), sorted(["The user prefers tea.",
                                                     "Sedan needs new tyres.",
                                                     "Puppy vaccinations due."]))
        self.assertEqual(texts[-1], "automobile")

    def test_2_a_second_search_embeds_only_its_query(self):
        self.run_scenario("automobile")
        before = len(self.embeddings_requests())
        out = self.run_scenario("canine")
        self.assertIn("memory/pets.md:1", out["reply"])
        after = self.embeddings_requests()[before:]
        self.assertEqual([r["body"]["input"] for r in after], [["canine"]])

    def test_3_failing_embeddings_leave_keyword_ranking(self):
        harness.rewrite_script(self.model, {"scenarios": SCENARIOS,
                                            "embeddings": {"error": {"status": 400}}})
        try:
            out = self.run_scenario("tea")
            self.assertEqual(out["tools"][0]["status"], "ok", out)
            self.assertIn("MEMORY.md:1", out["reply"])
            self.assertIn("**tea**", out["reply"])
            harness.wait_for(lambda: "ranked by keywords alone" in self.gw.stderr(), timeout=10,
                             what="the gateway's warning")
            self.assertEqual(self.embeddings_requests()[-1]["status"], 400)
        finally:
            harness.rewrite_script(self.model, {"scenarios": SCENARIOS})

    def test_4_chitin_memory_search_asks_the_running_gateway(self):
        r = self.gw.cli("memory", "search", "automobile")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("memory/garage.md:1", r.stdout)
        self.assertIn("score: meaning and keywords", r.stdout)
        self.assertEqual(r.stderr, "")
        status = self.gw.cli("memory", "status")
        self.assertIn('embeddings     3 chunk text(s) by "fake-embed"', status.stdout)

    def test_5_without_the_gateway_chitin_memory_search_ranks_by_keywords(self):
        self.gw.stop()
        try:
            r = self.gw.cli("memory", "search", "sedan")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("memory/garage.md:1", r.stdout)
            self.assertIn("score: BM25 keyword ranking", r.stdout)
            self.assertIn("no matches", self.gw.cli("memory", "search", "automobile").stdout)
        finally:
            self.gw.restart()


if __name__ == "__main__":
    unittest.main(verbosity=2)
