# SPDX-License-Identifier: Apache-2.0
"""Slack end to end: the real gateway, the sandboxed chitin-worker-channel-slack reaching
tests/fakes/fake_slack.py (Web API and Socket Mode) through the egress broker, the fake model
answering.

Each test starts its own gateway and fake Slack on 127.0.0.1. A person's message arrives as an
Events API envelope over the fake's Socket Mode connection (`/_control/event`); what the bot did
is read back from the fake's log (`/_control/state`) and the gateway (`chitin` CLI).
Slack offers bots no typing indicator, so there is none to check; the acknowledgement is the
`eyes` reaction. Run by meson (`meson test e2e-slack`).
"""
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

try:
    import channels  # noqa: E402  (the channel host's e2e helpers)
    SKIP = harness.skip_reason()
except ImportError:
    SKIP = "the channel host is not in this tree (tests/e2e/channels.py)"
if importlib.util.find_spec("aiohttp") is None:  # the fake's server
    SKIP = SKIP or "python3-aiohttp is not installed (tests/fakes/fake_slack.py needs it)"
FAKE_SLACK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes",
                          "fake_slack.py")
APP_TOKEN = "xapp-1-A0APP-e2e-app-token"
BOT_TOKEN = "xoxb-e2e-bot-token"
OWNER = "U0OWNER"
DM = "D0OWNER"
CHANNEL = "C0TEAM"
BOT_USER = "U0BOT"  # the fake's bot user (auth.test)


class FakeSlack(channels.FakeServer if not SKIP else object):
    def __init__(self, workdir):
        super().__init__(workdir, "slack", FAKE_SLACK,
                         ["--app-token", APP_TOKEN, "--bot-token", BOT_TOKEN])

    def control(self, action, body=None):
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(f"{self.url}/_control/{action}", data=data,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read())

    def message(self, text, thread_ts=None, channel=DM, **extra):
        event = {"type": "message", "channel": channel,
                 "channel_type": "im" if channel == DM else "channel", "user": OWNER,
                 "text": text, "team": "T0FAKE", **extra}
        if thread_ts:
            event["thread_ts"] = thread_ts
        return self.control("event", {"event": event})

    def mention(self, text, ts=None):
        """The `app_mention` event Slack sends when a channel message names the bot (`ts`: the
        same message's `message` event, when the app also subscribes to channel messages)."""
        event = {"type": "app_mention", "channel": CHANNEL, "user": OWNER,
                 "text": f"<@{BOT_USER}> {text}", "team": "T0FAKE"}
        if ts:
            event["ts"] = ts
        return self.control("event", {"event": event})

    def state(self):
        return self.control("state")

    def log(self, kind):
        return [r for r in self.state()["log"] if r["kind"] == kind]

    def posted(self, channel=DM):
        return [r for r in self.log("posted") if r["channel"] == channel]


@unittest.skipIf(SKIP, SKIP or "")
class SlackChat(unittest.TestCase):
    """A fake model, a fake Slack, and a gateway with one Slack account using them."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="chitin-e2e-slack-")
        os.chmod(self.dir, 0o755)
        self.model = harness.FakeModel(self.dir)
        self.slack = FakeSlack(self.dir)
        self.slack.control("config", {"users": [{"id": OWNER, "name": "owner",
                                                 "real_name": "Owner", "is_bot": False}]})
        token = channels.write_credential(self.dir, "slack-tokens", f"{APP_TOKEN}\n{BOT_TOKEN}")
        where = f"127.0.0.1:{self.slack.port}"
        config = channels.channels_config(
            [channels.account("slack", token, egress=[where],
                              options={"apiRoot": self.slack.url + "/api"})],
            allow_private=[where])
        self.gw = harness.Gateway(self.model, config=config)
        channels.wait_for_state(self.gw, "slack", "connected")

    def tearDown(self):
        self.gw.cleanup()
        self.slack.stop()
        self.model.stop()

    def wait_posted(self, count, timeout=30, channel=DM):
        return harness.wait_for(
            lambda: (lambda p: p if len(p) >= count else None)(self.slack.posted(channel)),
            timeout=timeout,
            what=f"{count} messages posted to {channel}\n{self.gw.stderr()[-3000:]}")

    def pair(self):
        """The owner writes first, gets a code, approves it: then they may chat."""
        self.slack.message("hello?")
        code_message = self.wait_posted(1)[0]
        pending = channels.pending_pairing(self.gw)
        self.assertEqual(len(pending), 1, pending)
        self.assertIn(pending[0]["code"], code_message["text"])
        self.assertEqual(pending[0]["sender"], OWNER)
        channels.approve_pairing(self.gw, pending[0]["code"])
        return 1

    def texts(self, since):
        return [p["text"] for p in self.slack.posted()[since:]]

    def test_pairing_then_chat_in_a_thread_with_the_eyes_reaction(self):
        sent = self.pair()
        root = self.slack.message("start a thread")
        self.wait_posted(sent + 1)
        hi = self.slack.message("hi in the thread", thread_ts=root["ts"])
        reply = self.wait_posted(sent + 2)[-1]
        self.assertEqual(reply["text"], "echo: hi in the thread")
        self.assertEqual(reply["thread_ts"], root["ts"])  # answered in the thread
        reactions = harness.wait_for(
            lambda: [r for r in self.slack.log("reaction") if r["timestamp"] == hi["ts"]],
            what="the eyes reaction on the threaded message")
        self.assertEqual([(r["channel"], r["name"]) for r in reactions], [(DM, "eyes")])
        # Every envelope was acknowledged, each once.
        acks = self.slack.log("ack")
        self.assertEqual(len(acks), len({a["envelope_id"] for a in acks}))

    def test_a_channel_message_is_answered_only_when_the_bot_is_mentioned(self):
        self.pair()
        self.slack.message("lunch at noon?", channel=CHANNEL)
        # Named in a channel, Slack sends the message twice: as `message` (to an app subscribed
        # to channel messages) and as `app_mention`, with one ts. One answer.
        named = self.slack.message(f"<@{BOT_USER}> what is on the menu", channel=CHANNEL)
        self.slack.mention("what is on the menu", ts=named["ts"])
        # An app subscribed to mentions only gets the `app_mention` alone.
        self.slack.mention("and for dessert?")
        self.wait_posted(2, channel=CHANNEL)
        time.sleep(2)  # an answer to the unnamed message, or a second one, would be here by now
        self.assertEqual(sorted(p["text"] for p in self.slack.posted(CHANNEL)),
                         ["echo: @chitin and for dessert?", "echo: @chitin what is on the menu"])
        # The acknowledgement went on the message that was answered, and only there.
        reactions = [(r["channel"], r["timestamp"]) for r in self.slack.log("reaction")
                     if r["channel"] == CHANNEL]
        self.assertIn((CHANNEL, named["ts"]), reactions)
        self.assertEqual(len(reactions), 2, reactions)

    def test_an_inbound_file_lands_in_inbox_and_taints_the_session(self):
        sent = self.pair()
        file = self.slack.control("file", {"name": "notes.txt", "mimetype": "text/plain",
                                           "data_b64": "aGVsbG8gZnJvbSBzbGFjawo="})
        self.slack.message("my notes", subtype="file_share", files=[file])
        self.wait_posted(sent + 1)
        # Fetched from url_private with the bot token (without it Slack redirects to a sign-in
        # page, which the fake logs as file_download_unauthorized).
        self.assertEqual([d["id"] for d in self.slack.log("file_download")], [file["id"]])
        self.assertEqual(self.slack.log("file_download_unauthorized"), [])
        _, content = channels.inbox_file(self.gw, "notes.txt")
        self.assertEqual(content, b"hello from slack\n")
        # The owner's direct session (an id with capitals is hashed into the key).
        self.assertTrue(channels.only_session(self.gw, ":slack:direct:")["tainted"])

    def test_a_429_on_chat_post_message_is_waited_out_and_the_reply_posted_once(self):
        sent = self.pair()
        self.slack.control("rate_limit", {"method": "chat.postMessage", "retry_after": 1})
        self.slack.message("slow down")
        reply = self.wait_posted(sent + 1)[-1]
        self.assertEqual(reply["text"], "echo: slow down")
        calls = [c for c in self.slack.log("api") if c["method"] == "chat.postMessage"][sent:]
        self.assertEqual([c.get("status") for c in calls], [429, 200], calls)
        # Not before Retry-After (the fake logs each call when it arrives).
        self.assertGreaterEqual(calls[1]["t"] - calls[0]["t"], 1.0, calls)
        time.sleep(2)  # a second post of the same reply would be here by now
        self.assertEqual(self.texts(sent), ["echo: slow down"])

    def test_a_disconnect_refresh_reconnects_and_the_event_meanwhile_is_answered_once(self):
        sent = self.pair()
        opened = len(self.slack.state()["connections"])
        self.slack.control("disconnect", {"reason": "refresh_requested", "close_after": 1})
        self.slack.message("during the refresh")
        harness.wait_for(lambda: len(self.slack.state()["connections"]) > opened, timeout=20,
                         what=f"a new Socket Mode connection\n{self.gw.stderr()[-3000:]}")
        self.wait_posted(sent + 1)
        self.slack.message("after the refresh")
        self.wait_posted(sent + 2)
        time.sleep(4)  # past the fake's redelivery timeout: a double would be here by now
        self.assertEqual(sorted(self.texts(sent)),
                         ["echo: after the refresh", "echo: during the refresh"])

    def test_kill_9_of_the_worker_restarts_it_and_the_journaled_event_is_answered_once(self):
        sent = self.pair()
        pids = harness.wait_for(lambda: self.gw.worker_pids("channel-slack"),
                                what="the slack worker")
        event = self.slack.message("just before the kill")
        # Killed once the worker has acknowledged (journaled) the event: Slack will not send it
        # again, so only the worker's journal can bring it back.
        harness.wait_for(lambda: [a for a in self.slack.log("ack")
                                  if a["envelope_id"] == event["envelope_id"]],
                         what="the acknowledgement of the event")
        os.kill(pids[0], signal.SIGKILL)
        self.slack.message("while down")
        harness.wait_for(lambda: (lambda p: p and p != pids)(self.gw.worker_pids("channel-slack")),
                         timeout=30, what="a new slack worker")
        self.wait_posted(sent + 2)
        time.sleep(4)  # past the fake's redelivery timeout
        self.assertEqual(sorted(self.texts(sent)),
                         ["echo: just before the kill", "echo: while down"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
