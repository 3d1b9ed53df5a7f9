# SPDX-License-Identifier: Apache-2.0
"""Discord end to end: the real gateway, the sandboxed chitin-worker-channel-discord reaching
tests/fakes/fake_discord.py (gateway WebSocket + REST) through the egress broker, the fake model
answering.

The user's side is played by the fake's control API (a user's message arrives as a
MESSAGE_CREATE dispatch); what the bot did is read back from the fake's log (`/_control/state`)
the gateway (`chitin` CLI) and the workspace.
Run by meson (`meson test --suite e2e`).
"""
import json
import os
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import channels  # noqa: E402
import harness  # noqa: E402

SKIP = harness.skip_reason()
if not SKIP:
    try:
        import aiohttp  # noqa: F401  (the fake's server)
    except ImportError:
        SKIP = "aiohttp is not installed (python3-aiohttp)"
FAKE_DISCORD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes",
                            "fake_discord.py")
TOKEN = "e2e-discord-bot-token"
ALICE = {"id": "200000000000000002", "username": "alice", "discriminator": "0"}
DM = "300000000000000003"
GUILD_CHANNEL = "400000000000000004"
BOT = {"id": "100000000000000001", "username": "chitin", "discriminator": "0"}  # the fake's bot
MESSAGES_ROUTE = "POST /channels/{channel_id}/messages"  # the fake's name for the bucket
# A run under way when the worker is killed: its answer is ready while the worker is down (the
# supervisor restarts it after 0.5-1 s) and must wait for the next one.
SCRIPT = {"scenarios": {"slow": [{"text": "slow answer", "delay_ms": 400}]}}


class FakeDiscord(channels.FakeServer):
    def __init__(self, workdir):
        super().__init__(workdir, "discord", FAKE_DISCORD, ["--token", TOKEN])

    def control(self, name, body=None):
        data = json.dumps(body if body is not None else {}).encode()
        request = urllib.request.Request(f"{self.url}/_control/{name}", data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())

    def say(self, text, channel=DM, **extra):
        """Alice's message (in a DM unless `channel` is a guild's): its id."""
        message = {"channel_id": channel, "author": ALICE, "content": text, **extra}
        if channel != DM:
            message["guild_id"] = "500000000000000005"
        return self.control("message", message)["id"]

    def records(self, kind, channel=DM):
        return [r for r in self.control("state")["log"]
                if r["kind"] == kind and r.get("channel_id") == channel]


class DiscordTest(unittest.TestCase):
    """A fake model, a fake Discord, and a gateway with one Discord account using them."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="chitin-e2e-discord-")
        os.chmod(self.dir, 0o755)
        self.model = harness.FakeModel(self.dir, SCRIPT)
        self.discord = FakeDiscord(self.dir)
        token = channels.write_credential(self.dir, "discord-token", TOKEN)
        where = f"127.0.0.1:{self.discord.port}"
        config = channels.channels_config(
            [channels.account("discord", token, egress=[where],
                              options={"apiRoot": f"{self.discord.url}/api/v10"})],
            allow_private=[where])
        self.gw = harness.Gateway(self.model, config=config)
        channels.wait_for_state(self.gw, "discord", "connected")

    def tearDown(self):
        self.gw.cleanup()
        self.discord.stop()
        self.model.stop()

    def wait_posted(self, count, timeout=30, channel=DM):
        return harness.wait_for(
            lambda: (lambda s: s if len(s) >= count else None)(
                self.discord.records("message_posted", channel)),
            timeout=timeout, what=f"{count} messages posted\n{self.gw.stderr()[-3000:]}")

    def pair(self):
        """Alice writes first, gets a code, the owner approves it: then she may chat."""
        self.discord.say("hello?")
        code_message = self.wait_posted(1)[0]
        pending = channels.pending_pairing(self.gw)
        self.assertEqual(len(pending), 1, pending)
        self.assertIn(pending[0]["code"], code_message["content"])
        self.assertEqual(pending[0]["sender"], ALICE["id"])
        channels.approve_pairing(self.gw, pending[0]["code"])
        return 1  # messages posted so far

    def texts(self, since=0):
        return [p["content"] for p in self.discord.records("message_posted")[since:]]


@unittest.skipIf(SKIP, SKIP or "")
class DiscordChat(DiscordTest):
    def test_pairing_then_chat_with_a_reply_reference_ack_and_typing(self):
        sent = self.pair()
        hi = self.discord.say("hi again")
        reply = self.wait_posted(sent + 1)[-1]
        self.assertEqual(reply["content"], "echo: hi again")
        self.assertIsNone(reply["message_reference"])  # a DM reply quotes nothing
        self.assertTrue(self.discord.records("typing"))
        self.assertIn((hi, "\U0001F440"),
                      [(r["message_id"], r["emoji"]) for r in self.discord.records("reaction")])

    def test_a_guild_message_is_answered_only_when_the_bot_is_mentioned_and_quotes_it(self):
        self.pair()
        self.discord.say("lunch at noon?", GUILD_CHANNEL)
        asked = self.discord.say(f"<@{BOT['id']}> what is on the menu", GUILD_CHANNEL,
                                 mentions=[BOT])
        reply = self.wait_posted(1, channel=GUILD_CHANNEL)[0]
        # The worker shows the model the mention as a name, not as a snowflake.
        self.assertEqual(reply["content"], "echo: @chitin what is on the menu")
        self.assertEqual(str(reply["message_reference"]["message_id"]), asked)
        time.sleep(2)  # the unaddressed message would have been answered by now
        self.assertEqual(len(self.discord.records("message_posted", GUILD_CHANNEL)), 1)

    def test_an_attachment_lands_in_inbox_and_taints_the_session(self):
        sent = self.pair()
        file = self.discord.control("attachment", {
            "filename": "notes.txt", "content_type": "text/plain",
            "data_b64": "aGVsbG8gZnJvbSBkaXNjb3JkCg=="})
        self.discord.say("my notes", attachments=[file])
        self.wait_posted(sent + 1)
        # The worker fetched the file itself, through the broker (the fake logs the download).
        self.assertTrue([r for r in self.discord.control("state")["log"]
                         if r["kind"] == "attachment_download"])
        name, data = channels.inbox_file(self.gw, "notes.txt")
        self.assertEqual(data, b"hello from discord\n")
        key = "agent:main:discord:direct:" + ALICE["id"]
        self.assertTrue(channels.session(self.gw, key)["tainted"])
        user = [e for e in self.gw.transcript(key) if e.get("role") == "user"][-1]
        self.assertIn("inbox/" + name, user["content"])


@unittest.skipIf(SKIP, SKIP or "")
class DiscordLifecycle(DiscordTest):
    def test_a_dropped_gateway_connection_resumes_and_a_dm_meanwhile_is_answered_once(self):
        sent = self.pair()
        self.discord.say("before")
        self.wait_posted(sent + 1)
        before = len(self.discord.control("state")["connections"])
        self.discord.control("drop")
        # Said once the fake has seen the connection end (or the client is already back: the
        # worker reconnects at once after a working connection, so this is a race; measured, the
        # DM comes as a replay on RESUME, seq above the RESUME's, every time).
        harness.wait_for(lambda: (lambda s: not s["session"]["connected"]
                                  or len(s["connections"]) > before)(self.discord.control("state")),
                         what="the dropped connection noticed")
        self.discord.say("while dropped")
        self.wait_posted(sent + 2)
        time.sleep(2)  # a repeat would have arrived by now
        self.assertEqual(self.texts(sent), ["echo: before", "echo: while dropped"])
        connections = self.discord.control("state")["connections"]
        self.assertGreaterEqual(len(connections), 2, connections)
        self.assertEqual(connections[-1]["path"], "/resume", connections[-1])
        self.assertEqual(channels.account_status(self.gw, "discord")["state"], "connected")

    def test_a_429_on_a_send_is_waited_out_and_the_reply_arrives_once(self):
        sent = self.pair()
        # The next message post is refused with retry_after 1.5 s (a per-route bucket, not global).
        self.discord.control("rate_limit", {"route": MESSAGES_ROUTE, "retry_after": 1.5})
        self.discord.say("slow down")
        self.wait_posted(sent + 1)
        time.sleep(2)  # a second copy would have arrived by now
        self.assertEqual(self.texts(sent), ["echo: slow down"])
        posts = [r for r in self.discord.control("state")["log"]
                 if r["kind"] == "rest" and r["route"] == MESSAGES_ROUTE][sent:]
        self.assertEqual([p["status"] for p in posts], [429, 200], posts)
        # Not sooner than Discord asked (both times are when the fake received the request).
        self.assertGreaterEqual(posts[1]["t"] - posts[0]["t"], 1.5, posts)

    def test_kill_9_of_the_worker_mid_conversation_restarts_it_and_nothing_is_lost_or_doubled(self):
        sent = self.pair()
        self.discord.say("before")
        self.wait_posted(sent + 1)
        # A run under way when the worker dies (SCRIPT's "slow"): the answer waits for the next
        # worker.
        slow = self.discord.say("[[scenario:slow]] take your time")
        harness.wait_for(lambda: slow in [r["message_id"] for r in self.discord.records("reaction")],
                         what="the slow run acknowledged")
        pids = channels.kill_worker(self.gw, "channel-discord")
        harness.wait_for(lambda: not self.discord.control("state")["session"]["connected"],
                         what="the fake to see the connection end")
        # Said while no worker is connected: the next one must get it (the session is on disk,
        # and RESUME replays what it missed).
        self.discord.say("while down")
        channels.wait_restarted(self.gw, "channel-discord", pids)
        self.discord.say("after")
        self.wait_posted(sent + 4)
        time.sleep(2)  # a repeat would have arrived by now
        self.assertEqual(sorted(self.texts(sent)), ["echo: after", "echo: before",
                                                    "echo: while down", "slow answer"])
        connections = self.discord.control("state")["connections"]
        self.assertEqual(connections[-1]["path"], "/resume", connections[-1])
        self.assertEqual(len(channels.worker_exits(self.gw, "channel-discord")), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
