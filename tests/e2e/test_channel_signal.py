# SPDX-License-Identifier: Apache-2.0
"""Signal end to end: the real gateway, the sandboxed chitin-worker-channel-signal reaching
tests/fakes/fake_signal_cli.py (signal-cli's HTTP daemon: JSON-RPC + SSE) through the egress
broker, the fake model answering.

The phone's side is played by the fake's control API (a user's message arrives as the next
`receive` event); what the bot did is read back from the fake's call log (`/_control/calls`),
the gateway (`chitin` CLI) and the workspace.
Run by meson (`meson test --suite e2e`).
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import channels  # noqa: E402
import harness  # noqa: E402

SKIP = harness.skip_reason()
FAKE_SIGNAL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes",
                           "fake_signal_cli.py")
BOT, BOT_UUID = "+15550000000", "00000000-0000-4000-8000-000000000001"
ALICE_UUID = "a11ce000-0000-4000-8000-00000000a11c"
GROUP_ID = base64.b64encode(bytes(range(32))).decode()  # a group id is 32 bytes, in base64
OBJECT_REPLACEMENT = "\uFFFC"  # where Signal puts a mention in the text
LONG_REPLY = "\n\n".join(f"**Part {i}**: " + "words and more words " * 40 for i in range(12))
SCRIPT = {"scenarios": {
    "long": [{"text": LONG_REPLY}],
    # A run under way when the worker is killed: its answer is ready while the worker is down
    # (the supervisor restarts it after 0.5-1 s) and must wait for the next one.
    "slow": [{"text": "slow answer", "delay_ms": 400}],
}}


def rate_limited(recipient, seconds):
    """signal-cli's answer to a `send` that Signal's server refused for rate limiting
    (SendMessageResultUtils.outputResult, SignalJsonRpcCommandHandler): error -5, the send
    results in data.response, each with the wait it was given."""
    return {"code": -5, "message": "Failed to send message due to rate limiting",
            "data": {"response": {"timestamp": int(time.time() * 1000), "results": [
                {"recipientAddress": {"uuid": recipient, "number": None, "username": None},
                 "type": "RATE_LIMIT_FAILURE", "retryAfterSeconds": seconds}]}}}


class FakeSignal:
    """tests/fakes/fake_signal_cli.py on 127.0.0.1, with its control API."""

    def __init__(self, d):
        port_file = os.path.join(d, "signal.port")
        self._err = open(os.path.join(d, "signal.err"), "w")
        # The daemon notices a client is gone only when a write to it fails: signal-cli writes a
        # keep-alive every 15 s; 0.5 s here so a test does not wait for it.
        self.proc = subprocess.Popen([harness.PYTHON, FAKE_SIGNAL, "--port", "0", "--port-file",
                                      port_file, "--account", BOT, "--account-uuid", BOT_UUID,
                                      "--keepalive", "0.5"],
                                     stdout=subprocess.DEVNULL, stderr=self._err)
        self.port = int(harness.wait_for(lambda: harness._read(port_file).strip(), what="port"))
        self.url = f"http://127.0.0.1:{self.port}"

    def control(self, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/_control/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def message(self, text, **extra):
        """Alice's message (to the bot unless `groupId` says): its timestamp, Signal's id."""
        return self.control("message", {"fromUuid": ALICE_UUID, "name": "Alice", "text": text,
                                        **extra})["timestamp"]

    def calls(self, method, failed=False):
        """The calls of `method`, only those answered with a result unless `failed`."""
        return [c for c in self.control("calls")
                if c["method"] == method and (failed or "error" not in c)]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._err.close()


def to(call, chat):
    """Whether a call's parameters name `chat` (a recipient, or "group:<id>")."""
    params = call["params"]
    if chat.startswith("group:"):
        return params.get("groupId") == chat[6:]
    return params.get("recipient") in (chat, [chat])


class SignalTest(unittest.TestCase):
    """A fake model, a fake signal-cli daemon, and a gateway with one Signal account using them."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="chitin-e2e-signal-")
        os.chmod(self.dir, 0o755)
        self.model = harness.FakeModel(self.dir, SCRIPT)
        self.signal = FakeSignal(self.dir)
        config = channels.channels_config([channels.account(
            "signal", options={"url": self.signal.url, "account": BOT, "accountUuid": BOT_UUID})])
        self.gw = harness.Gateway(self.model, config=config)
        channels.wait_for_state(self.gw, "signal", "connected")

    def tearDown(self):
        self.gw.cleanup()
        self.signal.stop()
        self.model.stop()

    def sends(self, chat=ALICE_UUID):
        return [c for c in self.signal.calls("send") if to(c, chat)]

    def wait_sent(self, count, chat=ALICE_UUID, timeout=30):
        return harness.wait_for(
            lambda: (lambda s: s if len(s) >= count else None)(self.sends(chat)),
            timeout=timeout, what=f"{count} messages sent to {chat}\n{self.gw.stderr()[-3000:]}")

    def texts(self, since=0, chat=ALICE_UUID):
        return [c["params"].get("message") for c in self.sends(chat)[since:]]

    def pair(self):
        """Alice writes first, gets a code, the owner approves it: then she may chat."""
        self.signal.message("hello")
        code_message = self.wait_sent(1)[0]["params"]["message"]
        self.assertIn("pairing code", code_message)
        [request] = channels.pending_pairing(self.gw)
        self.assertEqual((request["channel"], request["sender"]), ("signal", ALICE_UUID))
        self.assertIn(request["code"], code_message)
        self.assertEqual(self.signal.calls("sendReaction"), [])  # nothing but the code
        channels.approve_pairing(self.gw, request["code"])
        return 1  # messages the bot sent so far to Alice


@unittest.skipIf(SKIP, SKIP or "")
class SignalChat(SignalTest):
    def test_pairing_then_chat_with_typing_ack_and_a_chunked_plain_reply(self):
        sent = self.pair()
        hi = self.signal.message("hi again")
        self.wait_sent(sent + 1)
        self.assertEqual(self.texts(sent), ["echo: hi again"])  # on the same chat
        # Typing while the run was active, and the acknowledgement on the message itself
        # (Signal names a message by its author and timestamp).
        self.assertTrue([c for c in self.signal.calls("sendTyping") if to(c, ALICE_UUID)])
        acks = [c["params"] for c in self.signal.calls("sendReaction") if to(c, ALICE_UUID)]
        self.assertIn(("\U0001F440", ALICE_UUID, hi),
                      [(a["emoji"], a["targetAuthor"], a["targetTimestamp"]) for a in acks])

        before = len(self.sends())
        self.signal.message("[[scenario:long]] tell me everything")
        self.wait_sent(before + 2)
        time.sleep(1)  # every piece is out
        pieces = self.texts(before)
        self.assertGreaterEqual(len(pieces), 2)
        text = "".join(pieces)
        self.assertNotIn("**", text)  # converted (Signal shows no Markdown), not raw
        for i in range(12):
            self.assertEqual(text.count(f"Part {i}:"), 1, text[:200])  # nothing lost or doubled
        for p in pieces:
            self.assertLessEqual(len(p), 4000)  # code points, as Signal counts

    def test_a_group_message_is_answered_only_when_the_bot_is_mentioned(self):
        self.pair()
        group = {"groupId": GROUP_ID, "groupName": "Team"}
        self.signal.message("lunch at noon?", **group)
        asked = self.signal.message(
            OBJECT_REPLACEMENT + " what is on the menu", **group,
            mentions=[{"uuid": BOT_UUID, "number": BOT, "start": 0, "length": 1}])
        [reply] = self.wait_sent(1, chat="group:" + GROUP_ID)
        # The worker writes the mention out for the model, where Signal left a placeholder.
        self.assertEqual(reply["params"]["message"], f"echo: @{BOT} what is on the menu")
        acks = [c["params"] for c in self.signal.calls("sendReaction") if to(c, "group:" + GROUP_ID)]
        self.assertEqual([(a["targetAuthor"], a["targetTimestamp"]) for a in acks],
                         [(ALICE_UUID, asked)])
        time.sleep(2)  # the unaddressed message would have been answered by now
        self.assertEqual(len(self.sends("group:" + GROUP_ID)), 1)

    def test_an_attachment_lands_in_inbox_and_taints_the_session(self):
        sent = self.pair()
        self.signal.message("what is this?", attachments=[{
            "name": "../../notes.txt", "mime": "text/plain",
            "data": base64.b64encode(b"hello from signal\n").decode()}])
        self.wait_sent(sent + 1)
        name, data = channels.inbox_file(self.gw, "-notes.txt")  # the "../" are gone
        self.assertEqual(data, b"hello from signal\n")
        self.assertTrue(self.signal.calls("getAttachment"))  # fetched by the worker
        key = "agent:main:signal:direct:" + ALICE_UUID
        self.assertTrue(channels.session(self.gw, key)["tainted"])
        user = [e for e in self.gw.transcript(key) if e.get("role") == "user"][-1]
        self.assertIn("inbox/" + name, user["content"])
        self.assertIn("files attached by signal:" + ALICE_UUID, user.get("untrusted", ""))


@unittest.skipIf(SKIP, SKIP or "")
class SignalLifecycle(SignalTest):
    def test_a_rate_limited_send_is_waited_out_and_the_reply_arrives_once(self):
        sent = self.pair()
        self.signal.control("fail", {"method": "send", "times": 1, **rate_limited(ALICE_UUID, 2)})
        self.signal.message("slow down")
        self.wait_sent(sent + 1)
        time.sleep(1)  # a second copy would have arrived by now
        self.assertEqual(self.texts(sent), ["echo: slow down"])
        tries = [c for c in self.signal.calls("send", failed=True) if to(c, ALICE_UUID)][sent:]
        self.assertEqual([c.get("error") for c in tries], [-5, None], tries)
        # Not sooner than signal-cli said (2 s: more than the worker's 1 s floor).
        self.assertGreaterEqual(tries[1]["t"] - tries[0]["t"], 2, tries)

    def test_a_dropped_event_stream_reconnects_and_a_message_meanwhile_is_answered_once(self):
        sent = self.pair()
        self.signal.message("before")
        self.wait_sent(sent + 1)
        pids = self.gw.worker_pids("channel-signal")
        opened = self.signal.control("streams")["opened"]
        self.signal.control("drop")
        # Said once the old stream is gone (an envelope written into a stream as it breaks is
        # lost, by signal-cli too: signal-channel.h); it waits for the next stream, or goes
        # into it if the worker is already back.
        harness.wait_for(lambda: (lambda s: s["open"] == 0 or s["opened"] > opened)(
            self.signal.control("streams")), what="the old stream gone")
        self.signal.message("while dropped")
        self.wait_sent(sent + 2)
        time.sleep(2)  # a repeat would have arrived by now
        self.assertEqual(self.texts(sent), ["echo: before", "echo: while dropped"])
        self.assertGreater(self.signal.control("streams")["opened"], opened)
        # The same worker reconnected (not a restart after it gave up).
        self.assertEqual(self.gw.worker_pids("channel-signal"), pids)
        status = channels.account_status(self.gw, "signal")
        self.assertEqual((status["state"], status.get("restarts", 0)), ("connected", 0), status)

    def test_kill_9_of_the_worker_mid_conversation_restarts_it_and_nothing_is_lost_or_doubled(self):
        sent = self.pair()
        self.signal.message("before")
        self.wait_sent(sent + 1)
        # A run under way when the worker dies (SCRIPT's "slow"): the answer waits for the next
        # worker.
        slow = self.signal.message("[[scenario:slow]] take your time")
        harness.wait_for(lambda: slow in [c["params"]["targetTimestamp"]
                                          for c in self.signal.calls("sendReaction")],
                         what="the slow run acknowledged")
        opened = self.signal.control("streams")["opened"]
        pids = channels.kill_worker(self.gw, "channel-signal")
        # Said once the daemon has let the dead stream go (or the new worker's is open): it waits
        # on the "server" for the next worker.
        harness.wait_for(lambda: (lambda s: s["open"] == 0 or s["opened"] > opened)(
            self.signal.control("streams")), what="the dead stream gone")
        self.signal.message("while down")
        channels.wait_restarted(self.gw, "channel-signal", pids)
        self.signal.message("after")
        self.wait_sent(sent + 4)
        time.sleep(2)  # a repeat would have arrived by now
        self.assertEqual(sorted(self.texts(sent)), ["echo: after", "echo: before",
                                                    "echo: while down", "slow answer"])
        self.assertEqual(len(channels.worker_exits(self.gw, "channel-signal")), 1)
        self.assertEqual(channels.account_status(self.gw, "signal").get("restarts"), 1)
        self.assertEqual(len(channels.seen_ids(self.gw, "signal")), sent + 4)


if __name__ == "__main__":
    unittest.main(verbosity=2)
