# SPDX-License-Identifier: Apache-2.0
"""End-to-end tests of the session tools (sessions_list, sessions_history, sessions_send) under
the shipped policy: the real gateway, guard and sandboxed session worker, the owner's CLI session
driven by the independent fake model (tests/fakes/fake_model.py).

The owner's CLI session lists the sessions it may read (its own and the owner's Telegram one;
not a stranger's), reads the owner's Telegram session, sends it a message and gets the reply of
the turn that ran there; reading or sending to the stranger's session is denied by the policy,
and nothing of it reaches the model.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_policy import ENTITIES  # noqa: E402 (the owner and the owner's telegram:100)

SKIP = harness.skip_reason()

CLI_KEY = "agent:main:cli:direct:e2e"
OWNER_TELEGRAM = "agent:main:telegram:direct:100"
STRANGER = "agent:main:telegram:direct:999"


def tool_then_say(name, args, label):
    return [{"tool_calls": [{"name": name, "arguments": args}]},
            {"text": label + ": {{last_tool_result}}"}]


SCRIPT = {"scenarios": {
    "list": tool_then_say("sessions_list", {}, "listed"),
    "read": tool_then_say("sessions_history", {"sessionKey": OWNER_TELEGRAM}, "read"),
    "read-stranger": tool_then_say("sessions_history", {"sessionKey": STRANGER}, "got"),
    "send": tool_then_say("sessions_send", {"sessionKey": OWNER_TELEGRAM,
                                            "message": "[[scenario:pong]] are you there?"}, "sent"),
    "send-stranger": tool_then_say("sessions_send", {"sessionKey": STRANGER,
                                                     "message": "[[scenario:pong]] hi"}, "sent"),
    "send-self": tool_then_say("sessions_send", {"sessionKey": CLI_KEY,
                                                 "message": "[[scenario:pong]] me"}, "sent"),
    "pong": [{"text": "pong from the telegram session"}],
}}

TRANSCRIPTS = {
    OWNER_TELEGRAM: [
        {"ts": "2026-12-01T10:00:00Z", "role": "user", "content": "remember the blue door"},
        {"ts": "2026-12-01T10:00:01Z", "role": "assistant", "content": "noted: the blue door"},
    ],
    STRANGER: [
        {"ts": "2026-12-01T11:00:00Z", "role": "user", "content": "the stranger's secret",
         "untrusted": "a message from Sender::\"telegram:999\", who is not an owner"},
    ],
}


def prepare(gw):
    with open(os.path.join(gw.home, "entities.json"), "w") as f:
        json.dump(ENTITIES, f)
    d = os.path.join(gw.home, "state", "sessions")
    os.makedirs(d, exist_ok=True)
    for key, entries in TRANSCRIPTS.items():
        name = "".join(c if c.isalnum() or c in "._-" else "%%%02X" % ord(c) for c in key)
        with open(os.path.join(d, name + ".jsonl"), "w") as f:
            for e in entries:
                f.write(json.dumps(e) + "\n")


@unittest.skipIf(SKIP, SKIP or "")
class SessionTools(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ctx = harness.own_gateway(SCRIPT, policies={}, prepare_home=prepare)
        cls.model, cls.gw = cls.ctx.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.ctx.__exit__(None, None, None)

    def run_scenario(self, name):
        return self.gw.scenario_turn(name, CLI_KEY)

    def decisions(self, tool):
        return [r for r in self.gw.audit() if r["kind"] == "DECISION" and r.get("tool") == tool]

    def test_1_list_shows_the_owners_sessions_and_hides_the_strangers(self):
        out = self.run_scenario("list")
        self.assertEqual(out["tools"][0]["status"], "ok", out)
        self.assertIn(OWNER_TELEGRAM, out["reply"])
        self.assertIn(CLI_KEY, out["reply"])
        self.assertIn("(this session)", out["reply"])
        self.assertNotIn(STRANGER, out["reply"])
        self.assertIn("hidden by the policy", out["reply"])
        self.assertIn("owners-sessions-list", self.decisions("sessions_list")[-1]["decision"]["policies"])

    def test_2_history_reads_the_owners_other_session(self):
        out = self.run_scenario("read")
        self.assertEqual(out["tools"][0]["status"], "ok", out)
        self.assertIn("[user] remember the blue door", out["reply"])
        self.assertIn("[assistant] noted: the blue door", out["reply"])
        d = self.decisions("sessions_history")[-1]
        self.assertEqual(d["decision"]["outcome"], "allow")
        self.assertIn("owners-own-sessions", d["decision"]["policies"])

    def test_3_another_senders_session_is_denied(self):
        out = self.run_scenario("read-stranger")
        self.assertEqual(out["tools"][0]["status"], "denied", out)
        self.assertIn("denied by policy", out["reply"])
        self.assertNotIn("secret", json.dumps(self.model.requests()))
        d = self.decisions("sessions_history")[-1]
        self.assertEqual(d["decision"]["outcome"], "deny")
        self.assertIn(STRANGER, d["arguments"])
        out = self.run_scenario("send-stranger")
        self.assertEqual(out["tools"][0]["status"], "denied", out)
        self.assertEqual(self.decisions("sessions_send")[-1]["decision"]["outcome"], "deny")
        self.assertEqual(len(self.gw.transcript(STRANGER)), 1)  # no turn ran there

    def test_4_send_runs_a_turn_there_and_returns_its_reply(self):
        out = self.run_scenario("send")
        self.assertEqual(out["tools"][0]["status"], "ok", out)
        self.assertIn("reply from " + OWNER_TELEGRAM + ":\npong from the telegram session",
                      out["reply"])
        there = self.gw.transcript(OWNER_TELEGRAM)
        self.assertEqual(there[-2]["role"], "user")
        self.assertIn("are you there?", there[-2]["content"])
        self.assertEqual(there[-1]["content"], "pong from the telegram session")
        # Sending to itself is refused before the policy, on record.
        out = self.run_scenario("send-self")
        self.assertEqual(out["tools"][0]["status"], "error", out)
        self.assertIn("cannot send to the calling session itself", out["reply"])
        self.assertIn("invalid-call", self.decisions("sessions_send")[-1]["decision"]["policies"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
