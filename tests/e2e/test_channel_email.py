# SPDX-License-Identifier: Apache-2.0
"""Email end to end: the real gateway, the sandboxed chitin-worker-channel-email reaching a real
Dovecot (IMAP) and aiosmtpd (submission) through the egress broker, the fake model answering.

The mail servers and the human's side (smtplib, imaplib) are tests/channels/test_email.py's
`Mail`, imported. The worker sees no test directory, so the servers' self-signed CA is put in the
account's state directory (/state in the sandbox) before the gateway's second start.

Mail has no groups (every mail is a direct conversation with its sender), no typing indicator
and no reactions, so there is no mention gating, typing or acknowledgement to test here; nor
an HTTP 429 (SMTP and IMAP have none). Dropped connections and a killed worker are tested: the
worker's IMAP connection kicked by `doveadm kick`, and kill -9 of the worker while the model is
still answering.
Run by meson (`meson test --suite e2e`).
"""
import os
import shutil
import subprocess
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
    (f"{p} is not installed" for p in ("dovecot", "doveadm", "openssl") if not shutil.which(p)), None)
if not SKIP:
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        SKIP = "aiosmtpd is not installed"
ALICE = "alice@example.org"
# A reply that takes the model a while: the worker is killed while the run is active.
SCRIPT = {"scenarios": {"slow": [{"text": "thought it over", "delay_ms": 3000}]}}


@unittest.skipIf(SKIP, SKIP or "")
class EmailChat(unittest.TestCase):
    """A fake model, Dovecot + aiosmtpd, and a gateway with one email account on them."""

    def setUp(self):
        self.mail = Mail()
        self.model = harness.FakeModel(self.mail.dir, SCRIPT)
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
        _, content = channels.inbox_file(self.gw, "notes.txt")
        self.assertEqual(content, b"hello from the mail\n")
        self.assertTrue(channels.only_session(self.gw, ":email:")["tainted"])

    def answered(self, since, total):
        """The Message-IDs alice's mails since..total answer, in order of arrival."""
        return [m["In-Reply-To"] for m in self.mail.alice_inbox(total, timeout=0)[since:]]

    def wait_answers(self, count):
        """alice's first `count` mails; fails naming the gateway's log when they do not come."""
        try:
            return self.mail.alice_inbox(count, timeout=30)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.gw.stderr()[-3000:]}") from None

    def test_a_dropped_imap_connection_reconnects_and_mail_meanwhile_is_answered_once(self):
        got = self.pair()
        before = self.mail.send_as_alice("before", "before the drop")
        self.wait_answers(got + 1)
        pids = self.gw.worker_pids("channel-email")
        # Dovecot drops the worker's connection (in IDLE); a mail arrives at once, while the
        # worker waits out its backoff (at least 250 ms), so the next connection's UID SEARCH
        # must find it: no IDLE is there to announce it.
        kick = subprocess.run(["doveadm", "-c", os.path.join(self.mail.dir, "dovecot.conf"),
                               "kick", "bot@test.local"], capture_output=True, text=True)
        self.assertEqual(kick.returncode, 0, kick.stderr)
        meanwhile = self.mail.send_as_alice("meanwhile", "while IMAP was down")
        self.wait_answers(got + 2)
        status = channels.wait_for_state(self.gw, "email", "connected")
        self.assertEqual(self.gw.worker_pids("channel-email"), pids)  # reconnected, not restarted
        self.assertIn("IDLE", status["detail"])
        after = self.mail.send_as_alice("after", "after the reconnect")
        self.wait_answers(got + 3)
        self.assert_inbox_stays(got + 3)
        self.assertEqual(self.answered(got, got + 3),
                         [before["Message-ID"], meanwhile["Message-ID"], after["Message-ID"]])
        # The drop was seen as one, and answered by a new login (the kicked one and the next).
        logins = self.dovecot_logins("bot@test.local")
        self.assertEqual(len(logins), 2, logins)

    def imap_progress(self):
        """The last UID the worker handed over (its /state/imap-INBOX.state: validity, uid)."""
        path = os.path.join(self.gw.home, "state", "channels", "email", "default",
                            "imap-INBOX.state")
        with open(path) as f:
            return int(f.read().split()[1])

    def dovecot_logins(self, user):
        with open(os.path.join(self.mail.dir, "dovecot.log"), errors="replace") as f:
            return [l for l in f if "imap-login: Info: Login: user=<%s>" % user in l]

    def test_kill_9_of_the_worker_mid_conversation_answers_each_mail_once(self):
        got = self.pair()
        before = self.mail.send_as_alice("before", "before the kill")
        self.wait_answers(got + 1)
        last_uid = self.imap_progress()
        slow = self.mail.send_as_alice("slow", "[[scenario:slow]] think it over")
        # Killed while the model is still at it, once the gateway holds the mail and the worker
        # has moved its UID progress past it (/state/imap-INBOX.state): the next worker must
        # neither hand it over again nor skip what comes after, and the reply must go out
        # through the next worker.
        slow_id = slow["Message-ID"].strip("<>")
        harness.wait_for(lambda: any(line.endswith(" " + slow_id)
                                     for line in channels.seen_ids(self.gw, "email"))
                         and self.imap_progress() > last_uid,
                         what=f"{slow_id} recorded and passed\n{self.gw.stderr()[-3000:]}")
        pids = channels.kill_worker(self.gw, "channel-email")
        down = self.mail.send_as_alice("down", "while the worker was down")
        channels.wait_restarted(self.gw, "channel-email", pids)
        replies = self.wait_answers(got + 3)
        self.assert_inbox_stays(got + 3)
        self.assertEqual(sorted(self.answered(got, got + 3)),
                         sorted([before["Message-ID"], slow["Message-ID"], down["Message-ID"]]))
        slow_reply = next(r for r in replies if r["In-Reply-To"] == slow["Message-ID"])
        self.assertEqual(slow_reply.get_body(("plain",)).get_content().strip(), "thought it over")


if __name__ == "__main__":
    unittest.main(verbosity=2)
