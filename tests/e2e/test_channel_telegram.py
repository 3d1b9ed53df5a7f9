# SPDX-License-Identifier: Apache-2.0
"""Telegram end to end: the real gateway, the sandboxed chitin-worker-channel-telegram reaching
tests/fakes/fake_telegram.py through the egress broker, the fake model answering.

Each test starts its own gateway and fake Bot API on 127.0.0.1. The phone's side is played by
the fake's control API (a user's message arrives as the next getUpdates result); what the bot
did is read back from the fake (`/control/sent`), the gateway (`chitin` CLI) and the workspace.
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
FAKE_TELEGRAM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fakes",
                             "fake_telegram.py")
TOKEN = "5550001:e2e-telegram-bot-token"
BOT = "chitin_e2e_bot"
PHONE = {"id": 1001, "is_bot": False, "first_name": "Owner"}
DM = {"id": 1001, "type": "private", "first_name": "Owner"}
GROUP = {"id": -100555, "type": "supergroup", "title": "Team"}
LONG_REPLY = "\n\n".join(f"**Part {i}**: " + "words and more words " * 40 for i in range(12))
SCRIPT = {"scenarios": {
    "long": [{"text": LONG_REPLY}],
    # A command that is not read-only: the owner is asked, on the chat the run came from.
    "groupask": [{"tool_calls": [{"name": "exec", "arguments": {"command": "rm -f victim.txt"}}]},
                 {"text": "done: {{last_tool_result}}"}],
}}


class FakeTelegram(channels.FakeServer):
    def __init__(self, workdir):
        super().__init__(workdir, "telegram", FAKE_TELEGRAM,
                         ["--token", TOKEN, "--username", BOT])

    def control(self, name, body=None):
        data = None if body is None else json.dumps(body).encode()
        with urllib.request.urlopen(f"{self.url}/control/{name}", data=data, timeout=10) as r:
            return json.loads(r.read())

    def message(self, chat, text=None, **extra):
        m = {"chat": chat, "from": PHONE, **extra}
        if text is not None:
            m["text"] = text
        return self.control("message", m)

    def sent(self, method=None, chat_id=None):
        return [s for s in self.control("sent")["sent"]
                if (method is None or s["method"] == method)
                and (chat_id is None or s.get("chat_id") == chat_id)]


class TelegramTest(unittest.TestCase):
    """A fake model, a fake Bot API, and a gateway with one Telegram account using them."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="chitin-e2e-telegram-")
        os.chmod(self.dir, 0o755)
        self.model = harness.FakeModel(self.dir, SCRIPT)
        self.telegram = FakeTelegram(self.dir)
        token = channels.write_credential(self.dir, "telegram-token", TOKEN)
        where = f"127.0.0.1:{self.telegram.port}"
        config = channels.channels_config(
            [channels.account("telegram", token, egress=[where],
                              options={"apiRoot": self.telegram.url, "pollTimeout": "1"})],
            allow_private=[where])
        self.gw = harness.Gateway(self.model, config=config)
        channels.wait_for_state(self.gw, "telegram", "connected")

    def tearDown(self):
        self.gw.cleanup()
        self.telegram.stop()
        self.model.stop()

    def wait_sent(self, method, chat_id, count, timeout=30):
        return harness.wait_for(
            lambda: (lambda s: s if len(s) >= count else None)(self.telegram.sent(method, chat_id)),
            timeout=timeout, what=f"{count} {method} to {chat_id}\n{self.gw.stderr()[-3000:]}")

    def pair(self):
        """The phone writes first, gets a code, the owner approves it: then it may chat."""
        self.telegram.message(DM, "hello?")
        code_message = self.wait_sent("sendMessage", DM["id"], 1)[0]
        pending = channels.pending_pairing(self.gw)
        self.assertEqual(len(pending), 1, pending)
        self.assertIn(pending[0]["code"], code_message["text"])
        self.assertEqual(pending[0]["sender"], "1001")
        channels.approve_pairing(self.gw, pending[0]["code"])
        return 1  # messages the bot sent so far to the DM

    def replies(self, chat_id):
        return [s["text"] for s in self.telegram.sent("sendMessage", chat_id)]


@unittest.skipIf(SKIP, SKIP or "")
class TelegramChat(TelegramTest):
    def test_pairing_then_chat_with_typing_ack_and_a_chunked_html_reply(self):
        sent = self.pair()
        hi = self.telegram.message(DM, "hi again")
        reply = self.wait_sent("sendMessage", DM["id"], sent + 1)[-1]
        self.assertEqual(reply["text"], "echo: hi again")  # on the same chat
        # Typing while the run was active, and the acknowledgement on the message itself.
        self.assertTrue(self.telegram.sent("sendChatAction", DM["id"]))
        acks = self.telegram.sent("setMessageReaction", DM["id"])
        self.assertIn((hi["message_id"], ["\U0001F440"]),
                      [(a["message_id"], a["reaction"]) for a in acks])

        before = len(self.replies(DM["id"]))
        self.telegram.message(DM, "[[scenario:long]] tell me everything")
        self.wait_sent("sendMessage", DM["id"], before + 2)
        time.sleep(1)  # every piece is out
        pieces = self.telegram.sent("sendMessage", DM["id"])[before:]
        self.assertGreaterEqual(len(pieces), 2)
        text = "".join(p["text"] for p in pieces)
        self.assertNotIn("**", text)  # converted, not raw Markdown
        for i in range(12):
            self.assertEqual(text.count(f"Part {i}:"), 1, text[:200])  # nothing lost or doubled
        for p in pieces:
            self.assertEqual(p["parse_mode"], "HTML")
            self.assertLessEqual(len(p["text"].encode("utf-16-le")) // 2, 4096)
            self.assertTrue(any(e["type"] == "bold" for e in p["entities"]))

    def test_a_group_message_is_answered_only_when_the_bot_is_addressed(self):
        self.pair()
        with open(os.path.join(self.gw.workspace, "MEMORY.md"), "w") as f:
            f.write("# Memory\nThe owner's bank is MEMORY-MARKER-7.\n")
        self.telegram.message(GROUP, "lunch at noon?")
        self.telegram.message(GROUP, f"@{BOT} what is on the menu",
                              entities=[{"type": "mention", "offset": 0, "length": len(BOT) + 1}])
        reply = self.wait_sent("sendMessage", GROUP["id"], 1)[0]
        self.assertEqual(reply["text"], f"echo: @{BOT} what is on the menu")
        # The owner's memory stays out of a group chat, even one the owner writes in; the prompt
        # says it is a group chat.
        system = json.dumps(self.model.requests()[-1]["body"]["messages"][0])
        self.assertIn("a group chat on telegram", system)
        self.assertNotIn("MEMORY-MARKER-7", system)
        time.sleep(2)
        self.assertEqual(len(self.replies(GROUP["id"])), 1, self.replies(GROUP["id"]))
        # Control: the owner's own private chat carries it.
        self.telegram.message(DM, "what do you remember?")
        self.wait_sent("sendMessage", DM["id"], 2)
        system = json.dumps(self.model.requests()[-1]["body"]["messages"][0])
        self.assertIn("MEMORY-MARKER-7", system)
        self.assertIn("a private chat with your owner on telegram", system)

    def test_in_a_group_the_approval_is_asked_there_and_answered_without_a_mention(self):
        self.pair()
        victim = os.path.join(self.gw.workspace, "victim.txt")
        with open(victim, "w") as f:
            f.write("precious\n")
        self.telegram.message(GROUP, f"@{BOT} [[scenario:groupask]] tidy up",
                              entities=[{"type": "mention", "offset": 0, "length": len(BOT) + 1}])
        question = self.wait_sent("sendMessage", GROUP["id"], 1)[0]["text"]
        self.assertIn("rm -f victim.txt", question)
        code = question.split('"approve ', 1)[1][:6]
        self.assertTrue(os.path.exists(victim), "nothing runs before the approval")
        # The owner answers in the group, as people do, without addressing the bot again.
        self.telegram.message(GROUP, f"approve {code}")
        replies = self.wait_sent("sendMessage", GROUP["id"], 3)
        texts = [r["text"] for r in replies]
        self.assertTrue(any(t.startswith("Approved: exec") for t in texts), texts)
        self.assertTrue(any(t.startswith("done:") for t in texts), texts)
        self.assertFalse(os.path.exists(victim))
        # Without a pending code, the same words in the group are ignored again.
        self.telegram.message(GROUP, f"approve {code}")
        time.sleep(2)
        self.assertEqual(len(self.replies(GROUP["id"])), 3, self.replies(GROUP["id"]))

    def test_an_attachment_lands_in_inbox_and_taints_the_session(self):
        self.pair()
        file = self.telegram.control("file", {"content_b64": "aGVsbG8gZnJvbSB0aGUgcGhvbmUK",
                                              "file_path": "documents/file_1.txt"})
        self.telegram.message(DM, caption="my notes", document={
            "file_id": file["file_id"], "file_unique_id": file["file_unique_id"],
            "file_name": "notes.txt", "mime_type": "text/plain", "file_size": 21})
        self.wait_sent("sendMessage", DM["id"], 2)
        _, data = channels.inbox_file(self.gw, "notes.txt")
        self.assertEqual(data, b"hello from the phone\n")
        self.assertTrue(channels.session(self.gw, "agent:main:telegram:direct:1001")["tainted"])


@unittest.skipIf(SKIP, SKIP or "")
class TelegramLifecycle(TelegramTest):
    def test_429_and_dropped_connections_lose_nothing_and_double_nothing(self):
        sent = self.pair()
        self.telegram.control("fail", {"method": "sendMessage", "status": 429, "retry_after": 1})
        self.telegram.control("fail", {"method": "getUpdates", "drop": True, "times": 2})
        for i in range(3):
            self.telegram.message(DM, f"number {i}")
        self.wait_sent("sendMessage", DM["id"], sent + 3)
        time.sleep(2)  # a repeat would have arrived by now
        texts = self.replies(DM["id"])[sent:]
        self.assertEqual(sorted(texts), [f"echo: number {i}" for i in range(3)], texts)

    def test_kill_9_of_the_worker_restarts_it_and_nothing_is_lost_or_doubled(self):
        sent = self.pair()
        self.telegram.message(DM, "before")
        self.wait_sent("sendMessage", DM["id"], sent + 1)
        pids = channels.kill_worker(self.gw, "channel-telegram")
        # Sent while the worker is dead: the restarted one must take it (the offset is on disk).
        self.telegram.message(DM, "while down")
        channels.wait_restarted(self.gw, "channel-telegram", pids)
        self.telegram.message(DM, "after")
        self.wait_sent("sendMessage", DM["id"], sent + 3)
        time.sleep(2)
        texts = self.replies(DM["id"])[sent:]
        self.assertEqual(sorted(texts), sorted(["echo: before", "echo: while down", "echo: after"]),
                         texts)


if __name__ == "__main__":
    unittest.main(verbosity=2)
