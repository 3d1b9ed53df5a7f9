#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The IRC platform against a real ngircd (Debian) on 127.0.0.1, with a raw RFC 2812 peer
(ircpeer.py) on the other side: DMs, channel messages with and without a mention, /me, replies
cut into 512-byte lines, flood pacing, nick-in-use fallback, reconnect after the server dies.
SASL and account tags need IRCv3 services: test_irc_sasl.py runs InspIRCd + Atheme.

Runs in: tests. Each case takes about a second (ngircd penalises a new client ~1 s).
"""
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ircpeer import IrcPeer  # noqa: E402
from support import Daemon, Harness, PlatformTest, SocksRelay, free_port, require, rmtree, tempdir, wait_port  # noqa: E402

NGIRCD_CONF = """[Global]
Name = irc.test.local
Info = chitin test server
Listen = 127.0.0.1
Ports = {port}
MotdPhrase = "test"
[Options]
PAM = no
Ident = no
DNS = no
[Channel]
Name = #test
"""


class Ngircd(Daemon):
    def __init__(self, directory, port, ssl_port=None):
        conf = os.path.join(directory, "ngircd.conf")
        with open(conf, "w") as f:
            f.write(NGIRCD_CONF.format(port=port))
            if ssl_port:
                f.write(f"[SSL]\nPorts = {ssl_port}\nCertFile = {directory}/cert.pem\n"
                        f"KeyFile = {directory}/key.pem\n")
        super().__init__(["ngircd", "-n", "-f", conf], port, os.path.join(directory, "ngircd.log"))


class IrcTest(PlatformTest):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempdir("chitin-irc-")
        os.chmod(cls.dir, 0o755)  # ngircd reads its MOTD after dropping to nobody
        cls.port = free_port()
        cls.server = Ngircd(cls.dir, cls.port).start()
        cls.relay = SocksRelay(cls.dir)

    @classmethod
    def tearDownClass(cls):
        cls.relay.stop()
        cls.server.stop()
        rmtree(cls.dir)

    def platform(self, nick="chitin", **options):
        opts = {"server": "127.0.0.1", "port": str(self.port), "tls": "false", "nick": nick,
                "channels": "#test"}
        opts.update({k: str(v) for k, v in options.items()})
        h = Harness("irc", opts, egress_socket=self.relay.socket)
        self.cleanup.append(h.stop)
        connected = h.wait_status("CONNECTED", timeout=10)
        return h, connected

    def peer(self, nick, join="#test"):
        p = IrcPeer(self.port, nick)
        self.cleanup.append(p.close)
        if join:
            p.join(join)
        return p

    def bot_in_channel(self, peer, nick="chitin"):
        """Waits until the bot's JOIN is done (its channel messages would be lost before)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            peer.raw("NAMES #test")
            _, line = peer.expect(lambda c, p, l: c == "353")
            if nick in line.decode().split(":")[-1].replace("@", "").split():
                return
            time.sleep(0.1)
        self.fail(f"{nick} never joined #test")

    def test_direct_message_is_delivered_and_answered(self):
        h, connected = self.platform()
        self.assertEqual(connected["identity"], "chitin")
        alice = self.peer("alice", join=None)
        alice.privmsg("chitin", "hello bot, what's up?")
        m = h.wait_deliver()
        self.assertFalse(m["group"])
        self.assertEqual(m["chatId"], "alice")
        self.assertEqual(m["senderId"], "nick:alice")
        self.assertEqual(m["senderName"], "alice")
        self.assertEqual(m["text"], "hello bot, what's up?")
        self.assertTrue(m["messageId"])
        self.assertGreater(m["timestampMs"], 1_600_000_000_000)

        ids = h.send("alice", "Hi **alice**, all fine.")
        self.assertEqual(len(ids), 1)
        _, raw, target, text = alice.privmsgs_from("chitin")[0]
        self.assertEqual((target, text), ("alice", "Hi alice, all fine."))  # Markdown made plain
        self.assertIn(f"127.0.0.1:{self.port}", self.relay.targets())  # through the egress socket

    def test_channel_message_is_group_and_mention_is_flagged_as_a_word(self):
        h, _ = self.platform()
        bob = self.peer("Bob")
        self.bot_in_channel(bob)
        bob.privmsg("#test", "just chatting among ourselves")
        m = h.wait_deliver()
        self.assertTrue(m["group"])
        self.assertEqual(m["chatId"], "#test")
        self.assertEqual(m["senderId"], "nick:bob")  # lower-cased: nicks are case-insensitive
        self.assertFalse(m["mentioned"])
        bob.privmsg("#test", "chitinous creatures are not the bot")
        self.assertFalse(h.wait_deliver()["mentioned"])
        bob.privmsg("#test", "CHITIN: what time is it?")
        m = h.wait_deliver()
        self.assertTrue(m["mentioned"])
        h.send("#test", "It is time.")
        _, _, target, text = bob.privmsgs_from("chitin")[0]
        self.assertEqual((target, text), ("#test", "It is time."))

    def test_action_and_formatting_and_notice(self):
        h, _ = self.platform()
        carol = self.peer("carol", join=None)
        carol.raw("NOTICE chitin :a notice is never answered, so never delivered")
        carol.privmsg("chitin", "\x01ACTION waves at \x02chitin\x02\x01")
        m = h.wait_deliver()
        self.assertEqual(m["text"], "/me waves at chitin")
        self.assertEqual(len(h.delivered()), 1)
        h.send("carol", "/me waves back")
        _, _, _, text = carol.privmsgs_from("chitin")[0]
        self.assertEqual(text, "\x01ACTION waves back\x01")
        carol.privmsg("chitin", "\x01VERSION\x01")
        _, line = carol.expect(lambda c, p, l: c == "NOTICE" and b"VERSION" in l)
        self.assertIn(b"\x01VERSION chitin\x01", line)
        self.assertEqual(len(h.delivered()), 1)  # CTCP VERSION is answered, not delivered

    def test_long_reply_becomes_lines_of_at_most_512_bytes(self):
        h, _ = self.platform(floodBurst=50)
        dave = self.peer("dave", join=None)
        words = ["sch\u00f6n", "\u20ac\u20ac", "\U0001F600", "word"] * 110
        text = " ".join(words)  # about 1,500 bytes of 1- to 4-byte characters
        ids = h.send("dave", text)
        got = dave.privmsgs_from("chitin", count=len(ids), timeout=20)
        self.assertGreaterEqual(len(got), 4)
        for _, raw, _, _ in got:
            # What dave received, CRLF included, is at most 512 bytes, and valid UTF-8.
            self.assertLessEqual(len(raw) + 2, 512, raw[:80])
            raw.decode("utf-8")
        rebuilt = "".join(t for _, _, _, t in got)
        self.assertEqual(rebuilt.replace(" ", ""), text.replace(" ", ""))
        # Nothing was cut short by the server: the longest line used most of the budget.
        self.assertGreater(max(len(raw) for _, raw, _, _ in got), 400)

    def test_flood_control_paces_lines_after_the_burst(self):
        h, _ = self.platform(floodBurst=2, floodIntervalMs=700)
        erin = self.peer("erin", join=None)
        time.sleep(1.5)  # let the bucket refill after registration's JOIN
        h.send("erin", "\n".join(f"line {i}" for i in range(5)))
        got = erin.privmsgs_from("chitin", count=5, timeout=20)
        arrivals = [a for a, _, _, _ in got]
        self.assertEqual([t for _, _, _, t in got], [f"line {i}" for i in range(5)])
        self.assertLess(arrivals[1] - arrivals[0], 0.3)  # the burst
        for before, after in zip(arrivals[1:], arrivals[2:]):
            self.assertGreater(after - before, 0.6)  # then one per 700 ms

    def test_long_replies_are_capped_at_max_lines(self):
        h, _ = self.platform(floodBurst=50, maxLines=3)
        fay = self.peer("fay", join=None)
        h.send("fay", "\n".join(f"l{i}" for i in range(10)))
        got = [t for _, _, _, t in fay.privmsgs_from("chitin", count=3)]
        self.assertEqual(got, ["l0", "l1", "[8 more lines not sent]"])

    def test_nick_in_use_falls_back(self):
        # A nick of its own: "chitin" may still be leaving the server after the previous case.
        squatter = self.peer("taken", join=None)
        h, connected = self.platform(nick="taken")
        self.assertEqual(connected["identity"], "taken_")
        squatter.privmsg("taken_", "you took the fallback")
        self.assertEqual(h.wait_deliver()["chatId"], "taken")

    def test_unreachable_server_reconnects_with_backoff(self):
        port = free_port()  # nothing listens
        h = Harness("irc", {"server": "127.0.0.1", "port": str(port), "tls": "false", "nick": "x"})
        self.cleanup.append(h.stop)
        first = h.wait_status("RECONNECTING")
        self.assertIn("127.0.0.1:" + str(port), first["detail"])
        h.wait_status("RECONNECTING", timeout=5)  # and tries again

    def test_a_credential_needs_sasl_and_ngircd_offers_none(self):
        h = Harness("irc", {"server": "127.0.0.1", "port": str(self.port), "tls": "false",
                            "nick": "chitin"}, credential="secret-pw")
        self.cleanup.append(h.stop)
        failed = h.wait_status("FAILED")
        self.assertIn("does not offer SASL PLAIN", failed["detail"])
        self.assertNotIn("secret-pw", failed["detail"])

    def test_bad_options_fail_the_factory(self):
        h = Harness("irc", {"server": "127.0.0.1", "nick": "1bad"})
        event = h.wait(lambda e: e["event"] == "factoryError")
        self.assertIn('"nick"', event["what"])


class TlsTest(unittest.TestCase):
    def test_tls_connection_verified_against_the_ca_file(self):
        directory = tempdir("chitin-irc-tls-")
        os.chmod(directory, 0o755)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", f"{directory}/key.pem", "-out", f"{directory}/cert.pem"],
                       check=True, capture_output=True)
        port, ssl_port = free_port(), free_port()
        server = Ngircd(directory, port, ssl_port).start()
        try:
            wait_port(ssl_port)
            h = Harness("irc", {"server": "localhost", "port": str(ssl_port), "nick": "chitin",
                                "caFile": f"{directory}/cert.pem"})
            try:
                self.assertIn("(TLS)", h.wait_status("CONNECTED")["detail"])
                peer = IrcPeer(port, "hank")
                peer.privmsg("chitin", "over TLS?")
                self.assertEqual(h.wait_deliver()["text"], "over TLS?")
                h.send("hank", "yes")
                self.assertEqual(peer.privmsgs_from("chitin")[0][3], "yes")
                peer.close()
            finally:
                h.stop()
            # Without the CA file the same server is refused: the certificate is checked.
            h = Harness("irc", {"server": "localhost", "port": str(ssl_port), "nick": "chitin"})
            try:
                self.assertIn("certificate", h.wait_status("RECONNECTING")["detail"])
            finally:
                h.stop()
        finally:
            server.stop()
            rmtree(directory)


class ReconnectTest(unittest.TestCase):
    def test_server_killed_and_restarted_the_platform_reconnects_and_rejoins(self):
        directory = tempdir("chitin-irc-rc-")
        os.chmod(directory, 0o755)
        port = free_port()
        server = Ngircd(directory, port).start()
        h = Harness("irc", {"server": "127.0.0.1", "port": str(port), "tls": "false",
                            "nick": "chitin", "channels": "#test"})
        try:
            h.wait_status("CONNECTED")
            server.stop(signal.SIGKILL)
            h.wait_status("RECONNECTING", timeout=5)
            time.sleep(0.3)
            server.start()
            h.wait_status("CONNECTED", timeout=20)
            peer = IrcPeer(port, "gus")
            peer.join("#test")
            deadline = time.monotonic() + 10
            while not any("chitin" in l.decode(errors="replace") and b" 353 " in l for _, l in peer.all):
                if time.monotonic() > deadline:
                    self.fail("chitin did not rejoin #test after the reconnect")
                peer.raw("NAMES #test")
                time.sleep(0.2)
            peer.privmsg("#test", "chitin: are you back?")
            m = h.wait_deliver()
            self.assertTrue(m["mentioned"])
            self.assertEqual(len(h.delivered()), 1)
            h.send("#test", "I am back.")
            self.assertEqual(peer.privmsgs_from("chitin")[0][3], "I am back.")
            peer.close()
        finally:
            h.stop()
            server.stop()
            rmtree(directory)


if __name__ == "__main__":
    require("ngircd")
    unittest.main(verbosity=2)
