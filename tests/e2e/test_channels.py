# SPDX-License-Identifier: Apache-2.0
"""Channel accounts through the real gateway: what it refuses before any worker starts, what
`chitin channels` and `chitin doctor` report. (Each platform's own end-to-end tests, with its fake
server and sandboxed worker, build on tests/e2e/channels.py.)

Run by meson (`meson test --suite e2e`); each test starts its own gateway on 127.0.0.1.
"""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import channels  # noqa: E402
import harness  # noqa: E402

SKIP = harness.skip_reason()


@unittest.skipIf(SKIP, SKIP or "")
class ChannelAccounts(unittest.TestCase):
    def test_an_exposed_credential_stops_its_account_with_the_fix_and_nothing_of_it_leaks(self):
        d = tempfile.mkdtemp(prefix="chitin-e2e-chan-")
        os.chmod(d, 0o755)
        exposed = channels.write_credential(d, "tg-token", "123:sekrit-token")
        os.chmod(exposed, 0o644)
        missing = os.path.join(d, "absent-token")
        config = channels.channels_config([
            channels.account("telegram", exposed),
            channels.account("discord", missing, name="work"),
            channels.account("slack", name="off", disabled=True),
        ])
        gw = harness.Gateway(config=config)
        try:
            tg = channels.wait_for_state(gw, "telegram", "failed")
            self.assertIn(f"run `chmod 600 {exposed}`", tg["detail"])
            self.assertFalse(tg.get("running", False))
            self.assertIn("api.telegram.org:443 (telegram platform)", tg["egress"])
            dc = channels.wait_for_state(gw, "discord", "failed", name="work")
            self.assertIn(f"{missing}: no such file", dc["detail"])
            self.assertEqual(channels.account_status(gw, "slack", "off")["state"], "disabled")
            r = gw.cli("channels", "status")
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)  # an account failed
            self.assertIn("telegram/default", r.stdout)
            self.assertEqual(gw.worker_pids("channel-telegram"), [])
            # The secret is in no output and no log.
            doctor = gw.cli("doctor")
            self.assertIn(f"FAIL  channel telegram/default: credential {exposed}", doctor.stdout)
            for text in (r.stdout, doctor.stdout, gw.stderr(), str(gw.audit())):
                self.assertNotIn("sekrit", text)
        finally:
            gw.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)
