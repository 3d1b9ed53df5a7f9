# SPDX-License-Identifier: Apache-2.0
"""Email end to end: the real gateway, the sandboxed chitin-worker-channel-email reaching a real
Dovecot (IMAP) and aiosmtpd (submission) through the egress broker, the fake model answering.

The mail servers and the human's side (smtplib, imaplib) are tests/channels/test_email.py's
`Mail`, imported. The worker sees no test directory, so the servers' self-signed CA is put in the
account's state directory (/state in the sandbox) before the gateway's second start.
Run by meson (`meson test --suite e2e`).
"""
import json
import os
import shutil
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "channels"))
import channels  # noqa: E402
import harness  # noqa: E402
from test_email import Mail  # noqa: E402

SKIP = harness.skip_reason() or next(
    (f"{p} is not installed" for p in ("dovecot", "openssl") if not shutil.which(p)), None)
if not SKIP:
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        SKIP = "aiosmtpd is not installed"
ALICE = "alice@example.org"


@unittest.skipIf(SKIP, SKIP or "")
class EmailChat(unittest.TestCase):
    """A fake model, Dovecot + aiosmtpd, and a gateway with one email account on them."""

    def setUp(self):
        self.mail = Mail()
        self.model = harness.FakeModel(self.mail.dir)
        token = channels.write_credential(self.mail.dir, "email-password", "botpass")
        imap, smtp = f"127.0.0.1:{self.mail.imaps}", f"127.0.0.1:{self.mail.smtp}"
        options = self.mail.options(imapHost="127.0.0.1", smtpHost="127.0.0.1",
                                    caFile="/state/ca.pem")
        config = channels.channels_config([channels.account("email", token, options=options)],
                                          allow_private=[imap, smtp])
        self.gw = harness.Gateway(self.model, config=config)
        # The CA where the sandboxed worker can read it; then the account starts for real.
        self.gw.stop()
        state = os.path.join(self.gw.home, "state", "channels", "email", "default")
        os.makedirs(state, mode=0o700, exist_ok=True)
        shutil.copy(os.path.join(self.mail.dir, "cert.pem"), os.path.join(state, "ca.pem"))
        if harness.running_as_root():
            for root, dirs, files in os.walk(os.path.join(self.gw.home, "state")):
                for name in dirs + files:
                    shutil.chown(os.path.join(root, name), harness.TEST_USER, harness.TEST_USER)
        self.gw.restart()
        channels.wait_for_state(self.gw, "email", "connected", timeout=30)

    def tearDown(self):
        self.gw.cleanup()
        self.model.stop()
        self.mail.stop()

    def pair(self):
        """Alice writes first, gets a code by mail, the owner approves it: then she may chat."""
        self.mail.send_as_alice("hello", "hello?")
        code_mail = self.mail.alice_inbox(1, timeout=30)[0]
        pending = harness.wait_for(lambda: channels.pending_pairing(self.gw), what="a pairing")
        self.assertEqual(len(pending), 1, pending)
        self.assertIn(pending[0]["code"], code_mail.get_body(("plain",)).get_content())
        self.assertEqual(pending[0]["sender"], ALICE)
        channels.approve_pairing(self.gw, pending[0]["code"])
        return 1  # mails alice got so far

    def assert_inbox_stays(self, count, seconds=3):
        time.sleep(seconds)  # a repeat would have arrived by now
        with self.assertRaises(AssertionError):
            self.mail.alice_inbox(count + 1, timeout=0)

    def test_pairing_then_a_threaded_reply_exactly_once(self):
        got = self.pair()
        sent = self.mail.send_as_alice("Plans", "what are we doing today")
        reply = self.mail.alice_inbox(got + 1, timeout=30)[-1]
        self.assertEqual(reply["In-Reply-To"], sent["Message-ID"])
        self.assertIn(sent["Message-ID"], reply["References"])
        self.assertEqual(reply["Subject"], "Re: Plans")
        # The model saw the subject and the body (the platform delivers both).
        body = reply.get_body(("plain",)).get_content()
        self.assertTrue(body.startswith("echo: Subject: Plans"), body)
        self.assertIn("what are we doing today", body)
        self.assert_inbox_stays(got + 1)

    def test_an_attachment_lands_in_inbox_and_taints_the_session(self):
        got = self.pair()
        self.mail.send_as_alice("notes", "my notes",
                                attachment=("notes.txt", b"hello from the mail\n", "text", "plain"))
        self.mail.alice_inbox(got + 1, timeout=30)
        name, content = channels.inbox_file(self.gw)
        self.assertTrue(name.endswith("notes.txt"), name)
        self.assertEqual(content, b"hello from the mail\n")
        r = self.gw.cli("sessions", "--json")
        sessions = [s for s in json.loads(r.stdout)["sessions"] if ":email:" in s["key"]]
        self.assertEqual(len(sessions), 1, r.stdout)
        self.assertTrue(sessions[0]["tainted"], sessions)


if __name__ == "__main__":
    unittest.main(verbosity=2)
