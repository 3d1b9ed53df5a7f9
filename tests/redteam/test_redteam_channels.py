# SPDX-License-Identifier: Apache-2.0
"""Red-team scenario 21: a hostile channel worker beside a real one.

`hostile-channel-worker` runs as the IRC account's worker (same framework, profile and lockdown)
and does what a compromised channel worker would: it asks the egress broker for hosts outside its
allowlist, floods the supervisor from 8 threads for several seconds, then sends an inbound
message that breaks the bounds. Meanwhile a stranger writes on Signal (the real Signal worker
against tests/fakes/fake_signal_cli.py). The supervisor must refuse every host, throttle and
refuse the flood without stalling Signal, attribute everything the hostile worker delivered to
irc/evil (it has no way to speak for another channel), and kill it for the bad message.

Run by meson (`meson test --suite redteam`); one gateway of its own on 127.0.0.1.
"""
import os
import re
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(__file__)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import channels  # noqa: E402
import harness  # noqa: E402
from test_channel_signal import ALICE_UUID, BOT, BOT_UUID, FakeSignal  # noqa: E402

SKIP = harness.skip_reason()


@unittest.skipIf(SKIP, SKIP or "")
class HostileChannelWorker(unittest.TestCase):
    def test_21_hostile_channel_worker_is_refused_throttled_and_killed_while_others_go_on(self):
        d = tempfile.mkdtemp(prefix="chitin-redteam-chan-")
        signal = FakeSignal(d)
        # The real workers, and the hostile one as the IRC worker.
        workers = harness.workers_dir(d, {"channel-irc": os.environ["CHITIN_HOSTILE_CHANNEL_WORKER"]})
        config = channels.channels_config([
            channels.account("signal", options={"url": signal.url, "account": BOT,
                                                "accountUuid": BOT_UUID}),
            channels.account("irc", name="evil", options={"server": "irc.example.org",
                                                          "floodSeconds": "8"}),
        ], extra=f'sandbox {{ worker_dir: "{workers}" }}\n')
        gw = harness.Gateway(config=config)
        try:
            channels.wait_for_state(gw, "signal", "connected")
            harness.wait_for(lambda: "hostile: refused 127.0.0.1:22" in gw.stderr(), timeout=30,
                             what="the hostile worker's egress attempts")

            # While it floods, a stranger on Signal still gets an answer at once.
            self.assertNotIn("hostile: flood accepted", gw.stderr())
            started = time.monotonic()
            signal.control("message", {"fromUuid": ALICE_UUID, "text": "hello",
                                       "timestamp": 1700000000001})
            sent = harness.wait_for(lambda: signal.calls("send"), timeout=20, what="Signal's reply")
            latency = time.monotonic() - started
            self.assertIn("pairing code", sent[0]["params"]["message"])
            self.assertLess(latency, 3.0)
            self.assertNotIn("hostile: flood accepted", gw.stderr(), "the flood had ended already")

            # The flood: held back to 20 a second after a burst of 40, whatever it tried (callers
            # beyond 16 waiting would be refused: the router's unit test floods that way).
            report = harness.wait_for(
                lambda: re.search(r"hostile: flood accepted (\d+) refused (\d+)", gw.stderr()),
                timeout=30, what="the flood's report")
            accepted = int(report.group(1))
            print(f"\nflood: {accepted} messages taken in 8 s; Signal answered in {latency:.3f} s",
                  file=sys.stderr)
            self.assertGreater(accepted, 40)
            self.assertLess(accepted, 40 + 20 * 9 + 8)

            # Killed for the message that broke the bounds; audited as such.
            exits = harness.wait_for(lambda: [r for r in gw.audit() if r.get("kind") == "WORKER_EXIT"
                                              and r.get("tool") == "channel-irc"], timeout=20,
                                     what="the hostile worker's exit")
            self.assertEqual(exits[0]["outcome"], "killed")
            self.assertIn("protocol violation: inbound message: chatId", exits[0]["detail"])

            # The broker refused every host it asked for, by the socket it came in on.
            egress = [r for r in gw.audit() if r.get("kind") == "EGRESS"
                      and r.get("worker") == "channel:irc:evil"]
            asked = {(r.get("host"), r.get("port")) for r in egress}
            for target in [("example.org", 443), ("169.254.169.254", 80), ("127.0.0.1", 22)]:
                self.assertIn(target, asked)
            for r in egress:
                self.assertTrue(r.get("outcome", "").startswith("refused"), r)
            self.assertNotIn("hostile: REACHED", gw.stderr())

            # Everything it delivered was irc/evil's: the only senders that asked to pair are
            # its own "666" on irc and Alice on Signal.
            pending = {(p["channel"], p["sender"]) for p in channels.pending_pairing(gw)}
            self.assertEqual(pending, {("irc", "666"), ("signal", ALICE_UUID)})
            self.assertTrue(all(line.split(" ")[0] == "666"
                                for line in channels.seen_ids(gw, "irc", "evil")))
            self.assertEqual(len(channels.seen_ids(gw, "signal")), 1)
        except BaseException:
            print(gw.stderr()[-6000:], file=sys.stderr)
            raise
        finally:
            gw.cleanup()
            signal.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
