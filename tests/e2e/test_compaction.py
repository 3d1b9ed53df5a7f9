# SPDX-License-Identifier: Apache-2.0
"""Compaction end to end: the real gateway, session worker and model worker, the fake model.

A session whose turns carry about a thousand tokens each crosses the configured threshold
(agent.compaction: window 12000, reserve 2000, keep 2000). Then, before that turn:
a silent memory-flush turn writes a note under the shipped policy; the model is asked for a
summary (no tools); a compaction entry is appended; and the turn's own request holds the summary
and the recent turns, not the oldest, and fits the window. /compact does it by hand from the web
chat and the CLI; a kill -9 during the summary call loses nothing.
"""
import json
import os
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SKIP = harness.skip_reason()
WINDOW = 12000
FILLER = " ".join(["filler"] * 420)  # ~2.9 KB: about a thousand tokens by chitin's estimate

CONFIG = """
agent {
  compaction {
    context_window_tokens: %d
    reserve_tokens: 2000
    keep_recent_tokens: 2000
    memory_flush_prompt: "[[scenario:flush]] Save anything worth keeping to memory/ now."
    instructions: "[[scenario:summary]]"
  }
}
policy { approval_timeout_seconds: 2 }
""" % WINDOW

SCENARIOS = {
    "flush": [
        {"tool_calls": [{"name": "write", "arguments": {
            "path": "memory/flush-note.md", "content": "remembered: KIWI-CANARY\n"}}]},
        {"text": "NO_REPLY"},
    ],
    "summary": [{"text": "SUMMARY-CANARY: the user sent numbered turns of filler."}],
    "manual": [{"text": "MANUAL-SUMMARY of the earlier turns."}],
    "slow": [{"text": "SLOW-SUMMARY", "delay_ms": 20000}],
}


def user_texts(body):
    return [m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
            for m in body["messages"] if m["role"] == "user"]


@unittest.skipIf(SKIP, SKIP or "")
class Compaction(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ctx = harness.own_gateway({"scenarios": SCENARIOS}, config=CONFIG, policies={})
        cls.model, cls.gw = cls.ctx.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.ctx.__exit__(None, None, None)

    def say(self, text, session):
        return self.gw.agent_ok(text, session)

    def fill(self, session, turns, tag):
        for i in range(turns):
            out = self.say(f"{tag}-{i} {FILLER}", session)
            self.assertTrue(out["reply"].startswith(f"echo: {tag}-{i} "), out)

    def compactions(self, session):
        return [e for e in self.gw.transcript(session) if e["role"] == "compaction"]

    def test_1_a_long_session_is_compacted_before_the_turn_that_would_not_fit(self):
        session = "agent:main:e2e:direct:long"
        sent = 0
        while not self.compactions(session):
            self.assertLess(sent, 12, "no compaction after 12 turns of ~2000 tokens each")
            out = self.say(f"TURN-{sent} {FILLER}", session)
            # The flush turn's NO_REPLY is nobody's reply: the user gets the answer to their turn.
            self.assertEqual(out["reply"], f"echo: TURN-{sent} {FILLER}")
            sent += 1
        last = sent - 1
        requests = [r["body"] for r in self.model.requests() if "body" in r]

        # The flush turn ran first, with the tools, and wrote its note under the shipped policy.
        flush = [b for b in requests if any("[[scenario:flush]]" in t for t in user_texts(b))]
        self.assertEqual(len(flush), 2, "the flush turn: a write, then NO_REPLY")
        self.assertTrue(flush[0].get("tools"), "the flush turn has the agent's tools")
        with open(os.path.join(self.gw.workspace, "memory", "flush-note.md")) as f:
            self.assertEqual(f.read(), "remembered: KIWI-CANARY\n")

        # The summary call: the supervisor's own prompt, no tools, the old turns as material.
        summary = [b for b in requests if any("[[scenario:summary]]" in t for t in user_texts(b))]
        self.assertEqual(len(summary), 1)
        self.assertFalse(summary[0].get("tools"))
        self.assertIn("<conversation>", user_texts(summary[0])[0])
        self.assertIn("User: TURN-0 ", user_texts(summary[0])[0])

        # The transcript keeps every line and gains one compaction entry.
        transcript = self.gw.transcript(session)
        users = [e["content"].split(" ")[0] for e in transcript
                 if e["role"] == "user" and e.get("kind") != "memory-flush"]
        self.assertEqual(users, [f"TURN-{i}" for i in range(sent)])
        entry = self.compactions(session)[0]
        self.assertTrue(entry["content"].startswith("SUMMARY-CANARY"))
        self.assertGreater(entry["kept"], 0)
        flush_at = next(i for i, e in enumerate(transcript) if e.get("kind") == "memory-flush")
        self.assertLess(flush_at, transcript.index(entry))
        self.assertEqual(transcript[-2]["content"].split(" ")[0], f"TURN-{last}")

        # The turn itself: the summary, then the recent turns; the oldest are gone; it fits.
        turn = [b for b in requests if user_texts(b) and user_texts(b)[-1].startswith(f"TURN-{last} ")]
        self.assertEqual(len(turn), 1)
        texts = user_texts(turn[0])
        self.assertIn("SUMMARY-CANARY", texts[0])
        self.assertTrue(texts[0].startswith("[The earlier part of this conversation was summarized"))
        self.assertFalse(any(t.startswith("TURN-0 ") for t in texts))
        self.assertTrue(any(t.startswith(f"TURN-{last - 1} ") for t in texts), texts)
        size = len(json.dumps(turn[0]["messages"])) + len(json.dumps(turn[0].get("tools", [])))
        self.assertLess(size / 3, WINDOW, "the request after compaction fits the window")

        audit = [r for r in self.gw.audit() if r["kind"] == "COMPACTION"]
        self.assertEqual(audit[-1]["outcome"], "ok")
        self.assertEqual(audit[-1]["session"], session)
        self.assertIn("automatic: Compacted", audit[-1]["detail"])

        # The next turn replays from the summary on, without compacting again.
        self.say("after the compaction", session)
        self.assertEqual(len(self.compactions(session)), 1)

    def test_2_compact_by_hand_from_the_web_chat(self):
        session = "agent:main:e2e:direct:webchat"
        self.fill(session, 3, "W")
        ws = self.gw.connect()
        try:
            _, events, final = harness.agent_over_ws(
                ws, "/compact [[scenario:manual]] keep the numbers", session=session, timeout=120)
        finally:
            ws.close()
        self.assertTrue(final["ok"], final)
        reply = final["payload"]["reply"]
        self.assertTrue(reply.startswith("Compacted "), reply)
        self.assertNotIn("MANUAL-SUMMARY", reply)
        entry = self.compactions(session)[-1]
        self.assertTrue(entry["content"].startswith("MANUAL-SUMMARY"))
        request = [r["body"] for r in self.model.requests()
                   if "body" in r and any("[[scenario:manual]]" in t for t in user_texts(r["body"]))]
        self.assertIn("Instructions for this summary: [[scenario:manual]] keep the numbers",
                      user_texts(request[-1])[0])
        decisions = [r for r in self.gw.audit()
                     if r["kind"] == "DECISION" and r.get("detail") == "/compact"]
        self.assertEqual(decisions[-1]["decision"]["outcome"], "allow")
        # The command is not part of the conversation.
        self.assertFalse(any("/compact" in e["content"] for e in self.gw.transcript(session)
                             if e["role"] == "user"))

    def test_3_compact_by_hand_from_the_cli_and_nothing_to_do(self):
        session = "agent:main:e2e:direct:cli"
        out = self.say("/compact", session)
        self.assertEqual(out["reply"], "Nothing to compact yet: the conversation is too short.")
        self.fill(session, 2, "C")
        out = self.say("/compact [[scenario:manual]]", session)
        self.assertTrue(out["reply"].startswith("Compacted "), out)
        self.assertEqual(len(self.compactions(session)), 1)

    def test_4_kill_9_during_compaction_loses_nothing(self):
        session = "agent:main:e2e:direct:killed"
        self.fill(session, 3, "K")
        before = self.gw.transcript(session)
        cli = subprocess.Popen(
            [harness.CHITIN, "agent", "-m", "/compact [[scenario:slow]]", "--session", session],
            env=self.gw.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            harness.wait_for(lambda: any(r.get("event") == "delaying" and r["scenario"] == "slow"
                                         for r in self.model.requests()),
                             timeout=30, what="the summary call")
            self.gw.proc.kill()
            self.gw.proc.wait()
        finally:
            cli.wait(timeout=30)
        self.assertEqual(self.gw.transcript(session), before)
        self.gw.restart()
        out = self.say("still here?", session)
        self.assertEqual(out["reply"], "echo: still here?")
        requests = [r["body"] for r in self.model.requests() if "body" in r]
        texts = user_texts(requests[-1])
        self.assertTrue(texts[0].startswith("K-0 "), "nothing was summarized away")
        out = self.say("/compact [[scenario:manual]]", session)
        self.assertTrue(out["reply"].startswith("Compacted "), out)
        transcript = self.gw.transcript(session)
        self.assertEqual(transcript[:len(before)], before)


if __name__ == "__main__":
    unittest.main()
