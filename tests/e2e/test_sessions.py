# SPDX-License-Identifier: Apache-2.0
"""End-to-end tests of slash commands and the session lifecycle: through the CLI
(`chitin agent -m "/status"`, `chitin sessions show|reset`) and the gateway's WebSocket `agent`
method that the web chat and channel bridges use, with the real gateway, sandboxed workers and
the shipped policy, against the independent fake model (tests/fakes/fake_model.py).

A slash command is answered by the supervisor: the fake model's request log proves no model call.
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from test_policy import ENTITIES as OWNER_ENTITIES  # noqa: E402 (the owner and telegram:100)

SKIP = harness.skip_reason()

SCRIPT = {"scenarios": {
    "hi": [{"text": "hello there"}],
    # Long enough to be stopped mid-turn.
    "slow": [{"text": "finally", "delay_ms": 20000}],
}}

# The built-in owner, an owner's Telegram account, and a paired friend who may chat (an extra
# policy below) but is not an owner: the shipped policy gives the friend no commands.
ENTITIES = OWNER_ENTITIES + [
    {"uid": {"type": "Group", "id": "friends"}, "attrs": {}, "parents": []},
    {"uid": {"type": "User", "id": "friend"}, "attrs": {}, "parents": [{"type": "Group", "id": "friends"}]},
    {"uid": {"type": "Sender", "id": "telegram:200"}, "attrs": {},
     "parents": [{"type": "User", "id": "friend"}]},
]
FRIENDS_CHAT = """@id("friends-chat")
permit (principal in Group::"friends", action == Action::"chat", resource is Agent);
"""

CLI_KEY = "agent:main:cli:direct:e2e"


def gateway(config=None, transcripts=None):
    """A gateway with the shipped policy plus friends-chat; `transcripts` ({key: [entry]}) are
    written into its home before it starts."""
    def prepare(gw):
        with open(os.path.join(gw.home, "entities.json"), "w") as f:
            json.dump(ENTITIES, f)
        for key, entries in (transcripts or {}).items():
            d = os.path.join(gw.home, "state", "sessions")
            os.makedirs(d, exist_ok=True)
            name = "".join(c if c.isalnum() or c in "._-" else "%%%02X" % ord(c) for c in key)
            with open(os.path.join(d, name + ".jsonl"), "w") as f:
                for e in entries:
                    f.write(json.dumps(e) + "\n")
    return harness.own_gateway(SCRIPT, policies={"friends.cedar": FRIENDS_CHAT}, config=config,
                               prepare_home=prepare)


def channel_message(ws, text, sender, req_id):
    params = {"message": text, "channel": "telegram", "sender": sender, "chatType": "direct"}
    accepted, events, final = None, [], None
    ws.sock.settimeout(60)
    ws.send_json({"type": "req", "id": req_id, "method": "agent", "params": params})
    while True:
        frame = ws.recv_json()
        assert frame is not None, "gateway closed the connection"
        if frame["type"] == "res" and frame["id"] == req_id:
            assert frame["ok"], frame
            if accepted is None:
                accepted = frame["payload"]
                continue
            return frame["payload"]


def model_calls(model):
    return sum(1 for r in model.requests() if "body" in r)


@unittest.skipIf(SKIP, SKIP or "")
class SlashCommandsCli(unittest.TestCase):

    def test_commands_over_the_cli_answer_without_the_model(self):
        with gateway() as (model, gw):
            code, out, err = gw.agent_json("/status", CLI_KEY)
            self.assertEqual(code, 0, err)
            self.assertIn("Session: " + CLI_KEY, out["reply"])
            self.assertIn("Model: fake-model (openai)", out["reply"])
            code, out, _ = gw.agent_json("/whoami", CLI_KEY)
            self.assertIn('Principal: Sender::"local:operator"', out["reply"])
            self.assertIn('Member of: User::"owner", Group::"owners"', out["reply"])
            code, out, _ = gw.agent_json("/compact keep the names", CLI_KEY)
            self.assertEqual(out["reply"], "Nothing to compact yet: the conversation is too short.")
            code, out, _ = gw.agent_json("/frobnicate", CLI_KEY)
            self.assertIn("Unknown command /frobnicate.", out["reply"])
            self.assertIn("/status - ", out["reply"])
            code, out, _ = gw.agent_json("/model", CLI_KEY)
            self.assertEqual(out["reply"], "Model: fake-model (openai)")
            self.assertEqual(model_calls(model), 0)
            # Each was a policy decision, audited with the rule that allowed it.
            decisions = [r for r in gw.audit() if r.get("kind") == "DECISION" and r.get("tool") == "command"]
            self.assertEqual([r["detail"] for r in decisions],
                             ["/status", "/whoami", "/compact", "/frobnicate", "/model"])
            self.assertTrue(all("owners-commands" in r["decision"]["policies"] for r in decisions))
            # A path is a message for the model, not a command.
            code, out, _ = gw.agent_json("/etc/hosts [[scenario:hi]]", CLI_KEY)
            self.assertEqual(out["reply"], "hello there")
            self.assertEqual(model_calls(model), 1)

    def test_new_archives_and_sessions_show_prints_the_transcript(self):
        with gateway() as (model, gw):
            code, out, err = gw.agent_json("[[scenario:hi]] hi \x1b[31m", CLI_KEY)
            self.assertEqual(out["reply"], "hello there", err)
            r = gw.cli("sessions", "show", CLI_KEY)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("session " + CLI_KEY + ": 2 entries", r.stdout)
            self.assertIn("] user:\n", r.stdout)
            self.assertIn("hello there", r.stdout)
            self.assertNotIn("\x1b", r.stdout)  # display text: the escape is shown, not sent
            code, out, _ = gw.agent_json("/new", CLI_KEY)
            self.assertIn("Started a new session. The old conversation is archived as", out["reply"])
            archive = os.path.join(gw.home, "state", "sessions", "archive")
            self.assertEqual(len(os.listdir(archive)), 1)
            self.assertEqual(gw.cli("sessions", "show", CLI_KEY).stdout.splitlines()[0],
                             "session " + CLI_KEY + ": 0 entries")
            code, out, _ = gw.agent_json("/reset", CLI_KEY)
            self.assertIn("already new", out["reply"])
            resets = [r for r in gw.audit() if r.get("kind") == "SESSION_RESET"]
            self.assertEqual(len(resets), 1)
            self.assertEqual(resets[0]["principal"], 'Sender::"local:operator"')
            r = gw.cli("sessions", "show")
            self.assertEqual(r.returncode, 2)
            self.assertIn("expected `sessions show KEY`", r.stderr)


@unittest.skipIf(SKIP, SKIP or "")
class SlashCommandsWs(unittest.TestCase):

    def test_stop_aborts_the_running_turn_of_that_session(self):
        with gateway() as (model, gw):
            ws = gw.connect()
            key = "agent:main:e2e:direct:stopper"
            ws.sock.settimeout(60)
            ws.send_json({"type": "req", "id": "slow", "method": "agent",
                          "params": {"message": "[[scenario:slow]] take your time", "sessionKey": key}})
            # The turn has started (its lifecycle event) and waits on the model's 20 s reply.
            while True:
                frame = ws.recv_json()
                assert frame is not None, "gateway closed the connection"
                if (frame["type"] == "event" and frame.get("event") == "agent"
                        and frame["payload"].get("stream") == "lifecycle"):
                    break
            time.sleep(1)
            ws.send_json({"type": "req", "id": "stop", "method": "agent",
                          "params": {"message": "/stop", "sessionKey": key}})
            finals = {}
            deadline = time.time() + 15
            while len(finals) < 2 and time.time() < deadline:
                frame = ws.recv_json()
                if frame["type"] == "res" and frame["payload"].get("status") != "accepted":
                    finals[frame["id"]] = frame["payload"]
            self.assertEqual(finals["stop"]["reply"], "Stopped 1 run.")
            self.assertEqual(finals["slow"]["status"], "aborted")
            ws.close()

    def test_channel_senders_owner_friend_and_stranger(self):
        with gateway() as (model, gw):
            ws = gw.connect()
            out = channel_message(ws, "/whoami", "100", "w1")
            self.assertIn("Sender: 100 on telegram", out["reply"])
            self.assertIn('Member of: User::"owner", Group::"owners"', out["reply"])
            # A friend may chat (friends-chat) but the shipped policy gives no commands.
            out = channel_message(ws, "/new", "200", "w2")
            self.assertEqual(out["reply"], "You are not allowed to use /new here.")
            out = channel_message(ws, "/status", "200", "w3")
            self.assertEqual(out["reply"], "You are not allowed to use /status here.")
            # A stranger may not talk at all: the pairing answer, no command runs.
            out = channel_message(ws, "/status", "999", "w4")
            self.assertEqual(out["status"], "pairing")
            denied = [r for r in gw.audit() if r.get("kind") == "DECISION" and r.get("tool") == "command"
                      and r["decision"]["outcome"] == "deny"]
            self.assertEqual([(r["principal"], r["detail"]) for r in denied],
                             [('Sender::"telegram:200"', "/new"), ('Sender::"telegram:200"', "/status")])
            self.assertEqual(model_calls(model), 0)
            ws.close()


@unittest.skipIf(SKIP, SKIP or "")
class ResetPolicy(unittest.TestCase):

    def test_idle_reset_archives_the_old_conversation_when_the_next_message_arrives(self):
        old = [{"ts": "2020-01-01T00:00:00.000Z", "runId": "r0", "role": "user", "content": "old secret"},
               {"ts": "2020-01-01T00:00:01.000Z", "runId": "r0", "role": "assistant", "content": "noted"}]
        fresh = [{"ts": "2100-01-01T00:00:00.000Z", "runId": "r1", "role": "user", "content": "future"},
                 {"ts": "2100-01-01T00:00:01.000Z", "runId": "r1", "role": "assistant", "content": "ok"}]
        with gateway(config="agent { session_reset { idle_minutes: 60 } }\n",
                     transcripts={CLI_KEY: old, "agent:main:cli:direct:other": fresh}) as (model, gw):
            code, out, err = gw.agent_json("[[scenario:hi]] hi again", CLI_KEY)
            self.assertEqual(out["reply"], "hello there", err)
            # The model saw only the new message: the old conversation was archived first.
            sent = json.dumps(model.requests()[-1])
            self.assertNotIn("old secret", sent)
            resets = [r for r in gw.audit() if r.get("kind") == "SESSION_RESET"]
            self.assertEqual(len(resets), 1)
            self.assertIn("idle for", resets[0]["detail"])
            self.assertIn("agent.session_reset.idle_minutes: 60", resets[0]["detail"])
            # A session active recently is kept.
            code, out, _ = gw.agent_json("[[scenario:hi]] still here", "agent:main:cli:direct:other")
            self.assertIn("future", json.dumps(model.requests()[-1]))
            self.assertEqual(len([r for r in gw.audit() if r.get("kind") == "SESSION_RESET"]), 1)

    def test_a_bad_reset_time_stops_the_gateway_with_the_field_named(self):
        with self.assertRaises(Exception) as caught:
            with gateway(config='agent { session_reset { daily_at: "4am" } }\n'):
                pass
        self.assertIn("agent.session_reset.daily_at", str(caught.exception))


if __name__ == "__main__":
    unittest.main(verbosity=2)
