# SPDX-License-Identifier: Apache-2.0
"""IRC end to end: the real gateway, the sandboxed chitin-worker-channel-irc reaching a real
ngircd (Debian) through the egress broker, the fake model answering.

Each test starts its own ngircd and gateway on 127.0.0.1 (ngircd and the raw RFC 2812 peer are
tests/channels/'s, imported). The other side is played by IrcPeer; what the bot did is read back
from the peer's lines, the gateway (`chitin` CLI) and the worker's pids.

What IRC does not have, and so is not tested here: attachments (IRC carries text only; a file
is a link), a typing indicator bots send, acknowledgement reactions, and a 429: the rate limit
is the client's own flood control, tested as such. A message to a nick that is offline is
refused by the server to its sender (401), never stored, so "nothing lost" while the bot is
disconnected is the server's answer to the sender, not a redelivery.
Run by meson (`meson test --suite e2e`).
"""
import os
import shutil
import signal
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "channels"))
import channels  # noqa: E402
import harness  # noqa: E402
from ircpeer import IrcPeer  # noqa: E402
from support import free_port  # noqa: E402
from test_irc import Ngircd  # noqa: E402

SKIP = harness.skip_reason() or (None if shutil.which("ngircd") else "ngircd is not installed")
BOT = "chitin"
OPER = ("testop", "testop-password")  # an IRC operator of the test's ngircd: may KILL
LONG_REPLY = " ".join(f"word{i}" for i in range(300))  # about 2 KB: four lines at least
SCRIPT = {"scenarios": {"long": [{"text": LONG_REPLY}]}}


class IrcTest(unittest.TestCase):
    """A fake model, an ngircd, and a gateway with one IRC account on it."""

    OPTIONS = {}  # account options a test class adds

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="chitin-e2e-irc-")
        os.chmod(self.dir, 0o755)  # ngircd reads its MOTD after dropping to nobody
        self.port = free_port()
        self.server = Ngircd(self.dir, self.port)
        with open(os.path.join(self.dir, "ngircd.conf"), "a") as f:
            f.write(f"[Operator]\nName = {OPER[0]}\nPassword = {OPER[1]}\n")
        self.server.start()
        self.model = harness.FakeModel(self.dir, SCRIPT)
        self.peers = []
        where = f"127.0.0.1:{self.port}"
        options = {"server": "127.0.0.1", "port": self.port, "tls": "false", "nick": BOT,
                   "channels": "#test", **self.OPTIONS}
        config = channels.channels_config([channels.account("irc", options=options)],
                                          allow_private=[where])
        self.gw = harness.Gateway(self.model, config=config)
        channels.wait_for_state(self.gw, "irc", "connected")

    def tearDown(self):
        for p in self.peers:
            p.close()
        self.gw.cleanup()
        self.server.stop()
        self.model.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def peer(self, nick, join=None):
        p = IrcPeer(self.port, nick)
        self.peers.append(p)
        if join:
            p.join(join)
        return p

    def wait_bot_in_channel(self, peer):
        """The bot's JOIN is done (a channel message before it would never reach the bot)."""
        def joined():
            peer.raw("NAMES #test")
            _, line = peer.expect(lambda c, p, l: c == "353")
            return BOT in line.decode().split(":")[-1].replace("@", "").split()
        harness.wait_for(joined, timeout=15, what=f"{BOT} in #test")

    def replies(self, peer, count, timeout=30):
        """`count` PRIVMSG lines from the bot, each checked against the 512-byte limit."""
        got = peer.privmsgs_from(BOT, timeout=timeout, count=count)
        for _, raw, _, _ in got:
            self.assertLessEqual(len(raw) + 2, 512, raw)  # with CRLF, as the server relays it
        return [(target, text) for _, _, target, text in got]

    def drain_privmsgs(self, peer, seconds):
        """The bot's PRIVMSGs that arrive within `seconds`: [(target, text)]."""
        time.sleep(seconds)
        out = []
        while not peer.lines.empty():
            _, line = peer.lines.get()
            if line is None:
                continue
            prefix, command, params = peer.parse(line)
            if command == "PRIVMSG" and prefix.split("!")[0].lower() == BOT:
                self.assertLessEqual(len(line) + 2, 512, line)
                out.append((params[0], params[-1]))
        return out

    def assert_no_more(self, peer, seconds=2):
        self.assertEqual(self.drain_privmsgs(peer, seconds), [])

    def bot_online(self, peer):
        """The bot's nick is registered on the server (a new connection's, once it is back)."""
        def online():
            peer.raw(f"ISON {BOT}")
            _, line = peer.expect(lambda c, p, l: c == "303")
            return BOT in peer.parse(line)[2][-1].split()
        harness.wait_for(online, timeout=30, what=f"{BOT} back on the server")

    def pair(self, peer):
        """A stranger writes first, gets a code, the owner approves it: then it may chat."""
        peer.privmsg(BOT, "hello?")
        code_text = " ".join(text for _, text in self.replies(peer, 1))
        pending = channels.pending_pairing(self.gw)
        self.assertEqual(len(pending), 1, pending)
        self.assertIn(pending[0]["code"], code_text)
        self.assertEqual(pending[0]["sender"], f"nick:{peer.nick}")
        self.drain_privmsgs(peer, 0.5)  # a code cut into more than one line arrives in full
        channels.approve_pairing(self.gw, pending[0]["code"])

    @staticmethod
    def parse_nick(peer, line):
        return peer.parse(line)[0].split("!")[0].lower()


@unittest.skipIf(SKIP, SKIP or "")
class IrcChat(IrcTest):
    def test_pairing_then_chat_in_lines_of_at_most_512_bytes(self):
        alice = self.peer("alice")
        self.pair(alice)
        alice.privmsg(BOT, "hi again")
        self.assertEqual(self.replies(alice, 1), [("alice", "echo: hi again")])
        alice.privmsg(BOT, "[[scenario:long]] tell me everything")
        lines = self.replies(alice, 4)
        deadline = time.monotonic() + 20  # the rest, paced against flooding
        while len(" ".join(t for _, t in lines).split()) < 300 and time.monotonic() < deadline:
            lines += self.drain_privmsgs(alice, 0.5)
        lines += self.drain_privmsgs(alice, 1)  # nothing more
        self.assertTrue(all(target == "alice" for target, _ in lines), lines)
        words = " ".join(text for _, text in lines).split()
        self.assertEqual(words, LONG_REPLY.split())  # nothing lost, doubled or reordered

    def test_a_channel_message_is_answered_only_when_the_bot_is_named(self):
        alice = self.peer("alice", join="#test")
        self.wait_bot_in_channel(alice)
        self.pair(alice)
        alice.privmsg("#test", "lunch at noon?")
        alice.privmsg("#test", f"{BOT}: what is on the menu")
        self.assertEqual(self.replies(alice, 1), [("#test", f"echo: {BOT}: what is on the menu")])
        self.assert_no_more(alice)

    def test_kill_9_of_the_worker_restarts_it_and_the_next_message_is_answered_once(self):
        alice = self.peer("alice")
        self.pair(alice)
        alice.privmsg(BOT, "before")
        self.assertEqual(self.replies(alice, 1), [("alice", "echo: before")])
        pids = harness.wait_for(lambda: self.gw.worker_pids("channel-irc"), what="the irc worker")
        os.kill(pids[0], signal.SIGKILL)
        harness.wait_for(lambda: (lambda p: p and p != pids)(self.gw.worker_pids("channel-irc")),
                         timeout=30, what="a new irc worker")
        channels.wait_for_state(self.gw, "irc", "connected", timeout=30)
        self.bot_online(alice)  # the new connection registered the nick (the old may linger)
        alice.privmsg(BOT, "after")
        self.assertEqual(self.replies(alice, 1), [("alice", "echo: after")])
        self.assert_no_more(alice)

    def test_a_dropped_connection_reconnects_and_the_next_message_is_answered_once(self):
        alice = self.peer("alice", join="#test")
        self.wait_bot_in_channel(alice)
        self.pair(alice)
        alice.privmsg(BOT, "before")
        self.assertEqual(self.replies(alice, 1), [("alice", "echo: before")])
        pids = self.gw.worker_pids("channel-irc")
        # An operator drops the bot's connection; the worker process lives on.
        op = self.peer("op")
        op.raw(f"OPER {OPER[0]} {OPER[1]}")
        op.expect(lambda c, p, l: c == "381")  # RPL_YOUREOPER
        op.raw(f"KILL {BOT} :dropped by the test")
        alice.expect(lambda c, p, l: c == "QUIT" and self.parse_nick(alice, l) == BOT)
        self.bot_online(alice)
        channels.wait_for_state(self.gw, "irc", "connected", timeout=30)
        self.assertEqual(self.gw.worker_pids("channel-irc"), pids)  # reconnected, not restarted
        self.wait_bot_in_channel(alice)  # and joined its channel again
        alice.privmsg(BOT, "after")
        alice.privmsg("#test", f"{BOT}: and in the channel?")
        self.assertEqual(sorted(self.replies(alice, 2)),
                         [("#test", f"echo: {BOT}: and in the channel?"), ("alice", "echo: after")])
        self.assert_no_more(alice)  # nothing before the drop answered again


@unittest.skipIf(SKIP, SKIP or "")
class IrcFloodControl(IrcTest):
    """An account with a flood rate of its own: a burst of 2 lines, then one per 700 ms (ngircd
    itself would pass about three lines a second, so only the worker's pacing can make the
    gaps this wide)."""

    OPTIONS = {"floodBurst": 2, "floodIntervalMs": 700}

    def test_a_long_reply_is_held_to_the_configured_rate(self):
        alice = self.peer("alice")
        self.pair(alice)
        time.sleep(1.5)  # the bucket refills (two tokens) after the pairing code's lines
        alice.privmsg(BOT, "[[scenario:long]] tell me everything")
        got = alice.privmsgs_from(BOT, timeout=30, count=5)
        got += [(a, l, *alice.parse(l)[2][:2]) for a, l in self.drain_lines(alice, 1.5)]
        words = " ".join(text for _, _, _, text in got).split()
        self.assertEqual(words, LONG_REPLY.split())  # nothing lost, doubled or reordered
        arrivals = [a for a, _, _, _ in got]
        self.assertLess(arrivals[1] - arrivals[0], 0.3, arrivals)  # the burst
        # Then one per 700 ms: line k (from the third on) leaves the worker no sooner than
        # (k - 1) x 700 ms after the burst. Judged from the burst, not line to line: ngircd's
        # own pacing can hold one line back and let the next follow it closely, but it never
        # lets a line through sooner than the worker wrote it.
        for k, arrival in enumerate(arrivals[2:], start=1):
            self.assertGreater(arrival - arrivals[0], k * 0.7 - 0.1, arrivals)

    @staticmethod
    def drain_lines(peer, seconds):
        """The bot's PRIVMSG lines arriving within `seconds`: [(arrival, raw)]."""
        time.sleep(seconds)
        out = []
        while not peer.lines.empty():
            arrival, line = peer.lines.get()
            if line is not None and peer.parse(line)[1] == "PRIVMSG" and \
                    IrcTest.parse_nick(peer, line) == BOT:
                out.append((arrival, line))
        return out


if __name__ == "__main__":
    unittest.main(verbosity=2)
